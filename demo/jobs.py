"""Heavy work on the shared model: one job at a time, cancellable, and its memory handed back afterwards.

Gradio runs a generator handler one next() at a time and closes it when the user cancels. run() therefore
does the work in a worker thread and yields while it waits; closing the generator sets a stop flag that
the work's `check` raises on between decode steps, so a cancelled job frees the cores within about a
second instead of running on unseen. Gradio frees the queue slot at once, so the worker also holds
MODEL_LOCK until it has really stopped: the next job never overlaps a cancelled one finishing its step.

The page's Stop buttons (stop_button) do not cancel the event: they set the running job's flag for that
browser session and tab (stoppable, press_stop), the work raises at its next check, and the handler ends
normally with a "stopped" progress line (running_line, done_line, failed_line, stopped_line are the lines a
tab shows under its button while and after a job runs).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Generator, Iterator, TypeVar

import gradio as gr

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


def run(name: str, work: Callable[[Check, Report], T], idle: Any = None, status: Callable[[str], Any] | None = None,
        stop_key: tuple[str, str] | None = None) -> Generator[Any, None, T]:
    """Run work(check, report) in a worker thread under MODEL_LOCK; yield `idle` while it runs (the
    handler passes gr.skip()s), return its result or raise its error.
    With `status`, yield status(line) instead: the progress line (running_line) of the latest report,
    and a failure line (failed_line) before an error is raised. With `stop_key` (session_key()), the
    page's Stop button (stop_button()) ends the work at its next check: the last line says so and
    Stopped is raised, for the handler to end quietly.

        result = yield from jobs.run("Benchmark", lambda check, report: ..., status=lambda line: ...)
    """
    closed, done = threading.Event(), threading.Event()
    reports: queue.SimpleQueue = queue.SimpleQueue()
    outcome: dict[str, Any] = {}
    with stoppable(stop_key) as pressed:
        def check() -> None:
            if closed.is_set() or pressed.is_set():
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

        t0 = time.monotonic()
        threading.Thread(target=worker, name=f"job {name}", daemon=True).start()
        latest = None
        if status is not None:
            yield status(running_line(name, None, 0.0))  # at once: the page shows the job has started
        try:
            while not done.wait(POLL_S):
                latest = _latest(reports, latest)
                yield idle if status is None else status(running_line(name, latest, time.monotonic() - t0))
            latest = _latest(reports, latest)
        finally:
            closed.set()  # on GeneratorExit (cancel, client gone) the worker stops at its next check
    elapsed = time.monotonic() - t0
    if "error" in outcome:
        if status is not None:
            yield status(failed_line(name, elapsed))
        raise outcome["error"]
    if "value" not in outcome:  # the worker stopped at a check: Stop was pressed
        if status is not None:
            yield status(stopped_line(name, latest, elapsed))
        raise Stopped(name)
    return outcome["value"]


def _latest(reports: queue.SimpleQueue, latest: tuple[float, str] | None) -> tuple[float, str] | None:
    """Only the latest report matters to a progress line: the newest queued one, else the one before."""
    while not reports.empty():
        latest = reports.get_nowait()
    return latest


# ---------------------------------------------------------------- Stop buttons

class Stopped(Exception):
    """The user pressed Stop: the job ended early, on purpose (its last progress line says so)."""


_PRESSED: dict[tuple[str, str], threading.Event] = {}  # (browser session, tab) -> the running job's Stop flag
_PRESSED_LOCK = threading.Lock()


def session_key(request: gr.Request | None, tab: str) -> tuple[str, str] | None:
    """Which Stop button may stop a job: the same tab in the same browser session (None: no page)."""
    session = getattr(request, "session_hash", None)
    return (session, tab) if session else None


@contextmanager
def stoppable(key: tuple[str, str] | None) -> Iterator[threading.Event]:
    """The Stop flag of a job while it runs (a fresh one per job; never set without a key)."""
    pressed = threading.Event()
    if key is not None:
        with _PRESSED_LOCK:
            _PRESSED[key] = pressed
    try:
        yield pressed
    finally:
        if key is not None:
            with _PRESSED_LOCK:
                if _PRESSED.get(key) is pressed:
                    del _PRESSED[key]


def press_stop(tab: str, request: gr.Request | None = None) -> bool:
    """Stop this session's running job on `tab`; False when none runs."""
    with _PRESSED_LOCK:
        pressed = _PRESSED.get(session_key(request, tab))
    if pressed is None:
        return False
    pressed.set()
    return True


def stop_button(stop: gr.Button, tab: str) -> None:
    """Wire a Stop button. It does not use Gradio's `cancels`: a cancelled event could leave its button
    dead in the browser (a later click was ignored). Stop sets the job's flag instead; the job stops at
    its next check and ends normally, its progress line saying 'Stopped'."""
    def pressed(request: gr.Request) -> None:
        press_stop(tab, request)

    stop.click(pressed, None, None, queue=False, api_visibility="private")


# ---------------------------------------------------------------- the progress line a tab shows

RUNNING, DONE, FAILED, STOPPED = "▶", "✓", "✗", "■"  # glyphs every system font has (no emoji)


def bar(fraction: float, width: int = 20) -> str:
    full = min(width, max(0, round(fraction * width)))
    return "▰" * full + "▱" * (width - full)


def running_line(action: str, report: tuple[float, str] | None, elapsed: float) -> str:
    """What a running job shows: what it is doing, how far it is, the time so far and, once a share of the
    work is known, an estimate of the time left (elapsed time scaled by the share still to do)."""
    fraction, message = report if report is not None else (None, "starting")
    parts = [f"{RUNNING} **{action}**: {message}", f"{elapsed:.0f} s elapsed"]
    if fraction is not None and fraction > 0:
        fraction = min(fraction, 1.0)
        parts.insert(1, f"`{bar(fraction)}` {fraction:.0%}")
        parts.append(f"about {elapsed * (1 - fraction) / fraction:.0f} s left")
    return " · ".join(parts) + " · **Stop** ends it within a second or two."


def done_line(action: str, elapsed: float) -> str:
    return f"{DONE} **{action}** finished in {elapsed:.1f} s."


def rejected_line(action: str, error: Exception) -> str:
    return f"{FAILED} **{action}**: not started: {error}"


def failed_line(action: str, elapsed: float) -> str:
    return f"{FAILED} **{action}** failed after {elapsed:.1f} s: see the message."


def stopped_line(action: str, report: tuple[float, str] | None, elapsed: float) -> str:
    doing = f" during: {report[1]}" if report is not None else ""
    return (f"{STOPPED} **{action}: stopped** by you after {elapsed:.1f} s{doing}. The model is free for the "
            f"next action.")
