"""Heavy work on the shared model: one job at a time, cancellable, and its memory handed back afterwards.

Gradio runs a generator handler one next() at a time and closes it when the user cancels. run() therefore
does the work in a worker thread and yields while it waits; closing the generator sets a stop flag that
the work's `check` raises on between decode steps, so a cancelled job frees the cores within about a
second instead of running on unseen. Gradio frees the queue slot at once, so the worker also holds
MODEL_LOCK until it has really stopped: the next job never overlaps a cancelled one finishing its step.
"""
from __future__ import annotations

import logging
import queue
import threading
from contextlib import contextmanager
from typing import Any, Callable, Generator, Iterator, TypeVar

import engine

log = logging.getLogger(__name__)

MODEL_LOCK = threading.Lock()  # held while the model works for a request (see exclusive() and run())
POLL_S = 0.5  # how often a waiting handler yields: the longest a cancel waits for the handler to notice

T = TypeVar("T")
Check = Callable[[], None]
Report = Callable[[float, str], None]


class Cancelled(Exception):
    """Raised by a job's check() once its client has cancelled it."""


@contextmanager
def exclusive(name: str) -> Iterator[None]:
    """The model to ourselves for a short job; freed memory goes back to the system afterwards."""
    with MODEL_LOCK:
        try:
            yield
        finally:
            engine.release_memory()
            log.debug("%s done, memory released", name)


def run(name: str, work: Callable[[Check, Report], T], progress: Callable[..., Any] | None = None,
        idle: Any = None) -> Generator[Any, None, T]:
    """Run work(check, report) in a worker thread under MODEL_LOCK; yield `idle` while it runs (the
    handler passes gr.skip()s), forward its reports to `progress`, return its result or raise its error.

        result = yield from jobs.run("Benchmark", lambda check, report: ..., progress, idle)
    """
    stop, done = threading.Event(), threading.Event()
    reports: queue.SimpleQueue = queue.SimpleQueue()
    outcome: dict[str, Any] = {}

    def check() -> None:
        if stop.is_set():
            raise Cancelled(name)

    def report(fraction: float, message: str) -> None:
        check()
        reports.put((fraction, message))

    def worker() -> None:
        try:
            with exclusive(name):
                outcome["value"] = work(check, report)
        except Cancelled:
            log.info("%s cancelled; stopped", name)
        except BaseException as e:  # handed to the handler, which shows it
            outcome["error"] = e
        finally:
            done.set()

    threading.Thread(target=worker, name=f"job {name}", daemon=True).start()
    try:
        while not done.wait(POLL_S):
            _forward(reports, progress)
            yield idle
        _forward(reports, progress)
    finally:
        stop.set()  # on GeneratorExit (cancel, client gone) the worker stops at its next check
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _forward(reports: queue.SimpleQueue, progress: Callable[..., Any] | None) -> None:
    """Only the latest report matters to a progress bar."""
    latest = None
    while not reports.empty():
        latest = reports.get_nowait()
    if latest is not None and progress is not None:
        progress(latest[0], desc=latest[1])
