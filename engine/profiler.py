"""torch.profiler around one decode: a TensorBoard trace plus a phase summary.

Each recording goes to `<out_dir>/<run>/`: the trace that TensorBoard's PyTorch Profiler plugin reads
(`<run>.pt.trace.json`: the plugin takes the part before `.pt.trace.json` as the worker's name, so
`tensorboard --logdir profiles` lists the run and a downloaded trace keeps the run's name) and a
`summary.json` with the wall time per phase. The decoders run each decode step inside a `ProfilerStep#<k>`
range (device.step_range: the name torch.profiler's step() gives its steps), so the plugin's Overview shows
one step per decode step. The plugin does not aggregate record_function ranges, so
the phase split is computed here from the profiler's own events: every range is charged its exclusive
time (its length minus the phase ranges nested in it), and whatever no phase covers is "other", so the
shares always add up to the total.
"""
from __future__ import annotations

import gzip
import json
import logging
import os
import re
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator

import torch
from torch.profiler import ProfilerActivity, record_function

from .decoding import DecodeOptions, Step, best_answer, decode_polynomials, rank_answers
from .device import STEP_PREFIX, machine_info, peak_rss_bytes, reset_peak_rss, rss_bytes
from .poly import Poly, to_unicode
from .prompt import prompt_ids

log = logging.getLogger(__name__)

# The record_function labels the decoders emit, plus "other" for time outside all of them.
PHASES: tuple[str, ...] = ("prefill", "decode_step", "cache_clone", "cache_reorder", "beam_select", "verify",
                           "other")
RUN_LABEL = "polydecode_run"  # the range around the whole recorded work; its length is the total
TRACE_SUFFIXES = (".pt.trace.json", ".pt.trace.json.gz")
SUMMARY_FILE = "summary.json"
TOP_OPS = 15
MAX_TIMELINE_OPS = 4000  # outermost operators drawn in the trace view; the phases are always all drawn

# torch.profiler is process-global: two recordings at once would mix their events. One at a time.
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Recording:
    run_dir: str
    name: str


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:60] or "run"


def _new_run_dir(out_dir: str, name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = os.path.join(out_dir, f"{stamp}_{_slug(name)}")
    path, k = base, 1
    while True:
        try:
            os.makedirs(path)  # exist_ok=False: two processes never share a run directory
            return path
        except FileExistsError:
            k += 1
            path = f"{base}-{k}"


def _trace_files(run_dir: str) -> list[str]:
    try:
        names = sorted(os.listdir(run_dir))
    except OSError:
        return []
    return [os.path.join(run_dir, n) for n in names if n.endswith(TRACE_SUFFIXES)]


@contextmanager
def profile(name: str, out_dir: str = "profiles", enabled: bool = True) -> Iterator[Recording | None]:
    """Record everything inside the block into `<out_dir>/<utc>_<name>/`. Yields a Recording (its run_dir
    holds the trace after the block) or None when disabled. Recordings are serialised by a lock."""
    if not enabled:
        yield None
        return
    with _LOCK:
        run_dir = _new_run_dir(out_dir, name)
        activities = [ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(ProfilerActivity.CUDA)
        rec = Recording(run_dir, os.path.basename(run_dir))
        trace = os.path.join(run_dir, rec.name + TRACE_SUFFIXES[0])
        try:
            with torch.profiler.profile(activities=activities, record_shapes=False,
                                        on_trace_ready=lambda p: p.export_chrome_trace(trace)):
                with record_function(RUN_LABEL):
                    yield rec
                    if torch.cuda.is_available():
                        torch.cuda.synchronize()  # queued GPU work belongs to the run it was queued in
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)  # no half-written run left for list_runs to show
            raise


def read_trace(path: str) -> list[dict]:
    """The complete ("X") events of a trace file written by tensorboard_trace_handler."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        events = json.load(fh).get("traceEvents", [])
    return [e for e in events if e.get("ph") == "X" and "dur" in e and "ts" in e]


def _parents(spans: list[dict]) -> list[int | None]:
    """For spans of one kind, the index of the innermost span enclosing each one on the same thread."""
    order = sorted(range(len(spans)), key=lambda i: (spans[i].get("tid"), spans[i]["ts"], -spans[i]["dur"]))
    parent: list[int | None] = [None] * len(spans)
    stack: list[int] = []
    for i in order:
        e = spans[i]
        while stack and not _encloses(spans[stack[-1]], e):
            stack.pop()
        parent[i] = stack[-1] if stack else None
        stack.append(i)
    return parent


def _encloses(outer: dict, inner: dict) -> bool:
    eps = 1e-3  # microseconds: trace timestamps are floats
    return (outer.get("tid") == inner.get("tid") and inner["ts"] >= outer["ts"] - eps
            and inner["ts"] + inner["dur"] <= outer["ts"] + outer["dur"] + eps)


def phase_times(events: list[dict]) -> dict:
    """Exclusive milliseconds and call counts per phase, from the trace's record_function ranges.

    A phase range nested in another phase range (beam_select inside decode_step) is charged to the inner
    phase only; the outer one keeps the rest. "other" is the run range minus all phase time."""
    labels = set(PHASES) - {"other"}
    spans = [e for e in events if e.get("cat") == "user_annotation" and e["name"] in labels | {RUN_LABEL}]
    exclusive = [float(e["dur"]) for e in spans]
    for i, p in enumerate(_parents(spans)):
        if p is not None and spans[p]["name"] in labels and spans[i]["name"] in labels:
            exclusive[p] -= spans[i]["dur"]  # the run range itself keeps its full length: it is the total
    runs = [e for e in spans if e["name"] == RUN_LABEL]
    phase_spans = [(e, x) for e, x in zip(spans, exclusive) if e["name"] in labels]
    total_us = sum(e["dur"] for e in runs) if runs else sum(x for _, x in phase_spans)
    out = {p: {"ms": 0.0, "calls": 0} for p in PHASES}
    for e, x in phase_spans:
        out[e["name"]]["ms"] += x / 1e3
        out[e["name"]]["calls"] += 1
    out["other"]["ms"] = max(0.0, total_us / 1e3 - sum(v["ms"] for v in out.values()))
    total_ms = total_us / 1e3
    for v in out.values():  # the share comes from the exact time, so rounding never skews a short run's shares
        v["share"] = round(v["ms"] / total_ms, 4) if total_ms > 0 else 0.0
        v["ms"] = round(v["ms"], 3)
    return {"total_ms": round(total_ms, 3), "phases": out}


def top_operators(events: list[dict], n: int = TOP_OPS, category: str = "cpu_op") -> list[dict]:
    """The n operators (or, with category="kernel", GPU kernels) with the most self time."""
    spans = [e for e in events if e.get("cat") == category]
    self_us = [float(e["dur"]) for e in spans]
    for i, p in enumerate(_parents(spans)):
        if p is not None:
            self_us[p] -= spans[i]["dur"]
    agg: dict[str, dict] = {}
    for e, own in zip(spans, self_us):
        row = agg.setdefault(e["name"], {"op": e["name"], "calls": 0, "self_ms": 0.0, "total_ms": 0.0})
        row["calls"] += 1
        row["self_ms"] += own / 1e3
        row["total_ms"] += e["dur"] / 1e3
    rows = sorted(agg.values(), key=lambda r: r["self_ms"], reverse=True)[:n]
    return [{**r, "self_ms": round(r["self_ms"], 3), "total_ms": round(r["total_ms"], 3)} for r in rows]


def step_rows(steps: list[Step]) -> list[dict]:
    """One row per decode step as the decoder timed it (device synchronised), with cache bytes and live beams."""
    return [{"step": s.step, "ms": round(s.elapsed_ms, 3), "cache_bytes": s.cache_bytes,
             "beams": sum(not b.finished for b in s.beams)} for s in steps]


def profiled_steps(events: list[dict]) -> list[float]:
    """Lengths in ms of the trace's decode_step ranges, in start order."""
    spans = sorted((e for e in events if e.get("cat") == "user_annotation" and e["name"] == "decode_step"),
                   key=lambda e: e["ts"])
    return [round(e["dur"] / 1e3, 3) for e in spans]


def profiler_steps(events: list[dict]) -> list[dict]:
    """The trace's step ranges (ProfilerStep#k), in start order: step number, start and length in ms."""
    spans = sorted((e for e in events if str(e.get("name", "")).startswith(STEP_PREFIX)), key=lambda e: e["ts"])
    return [{"step": int(e["name"][len(STEP_PREFIX):]), "ts_ms": e["ts"] / 1e3, "ms": e["dur"] / 1e3} for e in spans]


def trace_timeline(events: list[dict], max_ops: int = MAX_TIMELINE_OPS) -> dict:
    """What the in-app trace view draws: every phase range, every step range, and the outermost operators
    (the first max_ops of them), each as {lane, name, start_ms, ms} with times from the start of the recording.
    Lanes: "step", the phase labels, and "operators"; `ops_dropped` counts the operators left out."""
    runs = [e for e in events if e.get("cat") == "user_annotation" and e["name"] == RUN_LABEL]
    t0 = min((e["ts"] for e in (runs or events)), default=0.0)
    labels = set(PHASES) - {"other"}
    spans = []
    for e in events:
        name = str(e.get("name", ""))
        if name.startswith(STEP_PREFIX):
            spans.append({"lane": "step", "name": f"step {name[len(STEP_PREFIX):]}", "start_ms": (e["ts"] - t0) / 1e3,
                          "ms": e["dur"] / 1e3})
        elif e.get("cat") == "user_annotation" and name in labels:
            spans.append({"lane": name, "name": name, "start_ms": (e["ts"] - t0) / 1e3, "ms": e["dur"] / 1e3})
    ops = [e for e in events if e.get("cat") == "cpu_op"]
    outer = sorted((e for e, p in zip(ops, _parents(ops)) if p is None), key=lambda e: e["ts"])
    for e in outer[:max_ops]:
        spans.append({"lane": "operators", "name": e["name"], "start_ms": (e["ts"] - t0) / 1e3, "ms": e["dur"] / 1e3})
    total = sum(e["dur"] for e in runs) / 1e3 if runs else max((s["start_ms"] + s["ms"] for s in spans), default=0.0)
    return {"spans": spans, "total_ms": total, "ops_dropped": max(0, len(outer) - max_ops)}


def read_timeline(path: str, max_ops: int = MAX_TIMELINE_OPS) -> dict:
    """trace_timeline() of a trace file."""
    return trace_timeline(read_trace(path), max_ops)


def _run_decode(model, f: Poly, opts: DecodeOptions, check: Callable[[], None] | None = None):
    gen = decode_polynomials(model, [f], opts)  # the verifier is the acceptance check (stop, cascades)
    steps = []
    while True:
        if check is not None:
            check()
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            return steps, stop.value


def profile_run(model, f: Poly, opts: DecodeOptions, out_dir: str = "profiles", name: str | None = None,
                keep: int = 20, warmup: bool = True, check: Callable[[], None] | None = None) -> dict:
    """Decode f once under the profiler; write the trace and summary.json to a new run; return the summary.

    A first, unrecorded decode (warmup) keeps one-time costs (allocator growth, lazy init) out of the trace;
    the process's peak resident memory is measured over it (else over the recorded decode, profiler buffers
    included). Raises ValueError (from decode) when f does not fit the model's block size. `check` runs
    before every decode step: whatever it raises stops the recording there, and its half-written run folder
    is deleted (how the app's Stop ends a recording)."""
    ids = prompt_ids(f, model.config.prompt_format)
    name = name or f"{opts.decoder}{opts.width if opts.decoder == 'beam' else ''}_{opts.cache}_{opts.attention}"
    rss_before = rss_bytes()
    peak_scope = "decode" if reset_peak_rss() else "process"
    if warmup:
        _run_decode(model, f, opts, check)
        peak = peak_rss_bytes()
    t0 = time.perf_counter()
    with profile(name, out_dir) as rec:
        steps, result = _run_decode(model, f, opts, check)
        with record_function("verify"):
            answers = rank_answers(f, result.hypotheses[0])
    wall_ms = (time.perf_counter() - t0) * 1e3
    if not warmup:
        peak = peak_rss_bytes()
    traces = _trace_files(rec.run_dir)
    if not traces:
        raise RuntimeError(f"the profiler wrote no trace into {rec.run_dir}")
    events = read_trace(traces[0])  # the file TensorBoard reads: far quicker than prof.events()
    best = best_answer(answers)
    summary = {
        "name": rec.name, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "polynomial": to_unicode(f), "prompt_tokens": len(ids), "options": asdict(opts),
        "machine": machine_info(next(model.parameters()).device), **phase_times(events),
        "wall_ms": round(wall_ms, 3),
        "decoder_total_ms": round(result.total_ms, 3), "prefill_ms": round(result.prefill_ms, 3),
        "steps": step_rows(steps), "decode_step_ms": profiled_steps(events),
        "profiler_steps": len(profiler_steps(events)),
        "cache_bytes": max((s.cache_bytes for s in steps), default=0),
        "rss_before_bytes": rss_before, "peak_rss_bytes": peak, "peak_rss_scope": peak_scope,
        "top_ops": top_operators(events), "top_kernels": top_operators(events, category="kernel"),
        "answer": None if best is None else {"q": best.prefix, "verified": best.verified, "reason": best.reason},
        "run_dir": rec.run_dir, "out_dir": out_dir, "trace": os.path.basename(traces[0]),
    }
    with open(os.path.join(rec.run_dir, SUMMARY_FILE), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2, ensure_ascii=False)
    prune(out_dir, keep)
    log.info("profile %s: %.1f ms, trace in %s", rec.name, summary["total_ms"], rec.run_dir)
    return summary


def _run_dirs(out_dir: str) -> list[str]:
    """Directories under out_dir that hold a recording (a trace or a summary), newest first."""
    try:
        names = os.listdir(out_dir)
    except FileNotFoundError:
        return []
    dirs = [os.path.join(out_dir, n) for n in names]
    dirs = [d for d in dirs if os.path.isdir(d) and (_trace_files(d) or os.path.exists(os.path.join(d, SUMMARY_FILE)))]
    return sorted(dirs, key=lambda d: (os.path.getmtime(d), d), reverse=True)


def prune(out_dir: str, keep: int) -> list[str]:
    """Delete all but the newest `keep` recordings; returns the removed paths. Other files are left alone."""
    if keep < 1:
        raise ValueError("keep must be >= 1")
    removed = []
    for d in _run_dirs(out_dir)[keep:]:
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def list_runs(out_dir: str = "profiles") -> list[dict]:
    """Recorded runs, newest first: name, time (UTC ISO), trace path (or None), summary (or None)."""
    runs = []
    for d in _run_dirs(out_dir):
        summary = None
        try:
            with open(os.path.join(d, SUMMARY_FILE), encoding="utf-8") as fh:
                summary = json.load(fh)
        except (OSError, json.JSONDecodeError):
            pass
        traces = _trace_files(d)
        when = datetime.fromtimestamp(os.path.getmtime(d), timezone.utc).isoformat(timespec="seconds")
        runs.append({"name": os.path.basename(d), "time": when, "path": d,
                     "trace": traces[0] if traces else None, "summary": summary})
    return runs
