"""What the benchmark suites share: the model under test, problems, prompts, timers, the matmul floor."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from ..checkpoint import load_weights, weights_digest
from ..data import Problem, generate
from ..decoding import Decoded, DecodeOptions, Hypothesis, decode, run_to_completion
from ..device import machine_info, synchronize
from ..model import GPT
from ..prompt import prompt_ids
from ..tokenizer import encode

log = logging.getLogger(__name__)

BENCH_SEED = 1234  # problems are generated with this seed: every run measures the same inputs
TRAINED_MAX_NEW = 40  # trained weights stop by themselves; this only caps a runaway answer
SCORE_TOL = 1e-4  # log-prob: best answers scored closer than this are a float tie, not a different result
SMOKE_ANSWER_CAP = 4  # smoke runs check structure, not speed: a few tokens per answer are enough

Progress = Callable[[float, str], None]


@dataclass
class Subject:
    """The model a suite measures and how its answers end."""
    model: GPT
    label: str          # e.g. "checkpoint weights/default" or "random weights, preset paper"
    trained: bool       # False: random weights, END is unreachable and answer lengths are forced
    device: torch.device
    answer_cap: int | None = None  # smoke runs: at most this many tokens per answer
    check: Callable[[], None] | None = None  # called between decode steps; raises to stop the suite


def load_subject(checkpoint: str | None = None, preset: str | None = None, smoke: bool = False,
                 device: str | torch.device | None = None) -> Subject:
    """--checkpoint PATH (trained), --preset NAME (random weights), smoke (random tiny); default: the
    shipped checkpoint, or random weights of the default preset when it is missing."""
    if smoke and not checkpoint:
        preset = preset or "tiny"
    w = load_weights(checkpoint, preset, device, end_unreachable=True)
    device = next(w.model.parameters()).device
    if w.checkpoint is None:
        return Subject(w.model, w.source, False, device, SMOKE_ANSWER_CAP if smoke else None)
    steps = (w.meta or {}).get("steps")
    trained = f"{steps:,} training steps, " if isinstance(steps, int) else ""
    return Subject(w.model, f"checkpoint {w.source} ({trained}sha256 {weights_digest(w.checkpoint)[:12]})", True,
                   device)


def problems(pair: tuple[int, int], n: int) -> list[Problem]:
    return generate(pair[0], pair[1], n, BENCH_SEED)


def problem_prompts(model: GPT, batch: Sequence[Problem]) -> list[list[int]]:
    """The model's prompts for these problems (in its prompt format)."""
    return [prompt_ids(p.f, model.config.prompt_format) for p in batch]


def max_new_for(subject: Subject, batch: Sequence[Problem]) -> int:
    """Trained: a generous cap (answers stop at END). Random: the longest reference answer plus END."""
    if subject.trained:
        return TRAINED_MAX_NEW
    n = max(len(encode(p.answer)) + 1 for p in batch)
    return min(n, subject.answer_cap) if subject.answer_cap else n


def answer_rule(subject: Subject) -> str:
    """How answer lengths are decided, for the table header."""
    if subject.trained:
        return f"natural stop at END (cap {TRAINED_MAX_NEW})"
    cap = f", capped at {subject.answer_cap}" if subject.answer_cap else ""
    return f"forced: longest reference answer + END{cap} (random weights, END unreachable)"


def result_object(suite: str, subject: Subject, settings: dict, definitions: list[str], columns: list[str],
                  rows: list[dict], summary: dict, notes: list[str] | None = None) -> dict:
    """What every suite returns: {"suite", "machine", "model", "settings", "definitions", "columns", "rows",
    "summary", "notes"}."""
    return {"suite": suite, "machine": machine_info(subject.device), "model": subject.label, "settings": settings,
            "definitions": definitions, "columns": columns, "rows": rows, "summary": summary, "notes": notes or []}


def timed(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    """(milliseconds, result) of one call, device synchronised on both sides."""
    synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    synchronize(device)
    return (time.perf_counter() - t0) * 1e3, out


def interleaved(fns: dict[str, Callable[[], object]], device: torch.device, runs: int,
                warmup: int, check: Callable[[], None] | None = None) -> dict[str, tuple[list[float], object]]:
    """{name: (ms per run, last result)}: `warmup` unmeasured rounds, then `runs` measured ones. The
    contenders take turns run by run, so a slow spell of the machine hits all of them alike instead of
    whichever happened to be measured then. `check` runs before every call (it raises to stop)."""
    for _ in range(warmup):
        for fn in fns.values():
            _check(check)
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    last: dict[str, object] = {}
    for _ in range(runs):
        for name, fn in fns.items():
            _check(check)
            ms, last[name] = timed(fn, device)
            times[name].append(ms)
    return {name: (times[name], last[name]) for name in fns}


def _check(check: Callable[[], None] | None) -> None:
    if check is not None:
        check()


def stats(times: Sequence[float]) -> dict:
    return {"avg_ms": round(sum(times) / len(times), 2), "min_ms": round(min(times), 2),
            "max_ms": round(max(times), 2)}


def run_ours(model: GPT, prompts: Sequence[Sequence[int]], opts: DecodeOptions,
             check: Callable[[], None] | None = None) -> Decoded:
    return run_to_completion(decode(model, prompts, opts), check)


def best_hyps(result: Decoded) -> list[Hypothesis | None]:
    """The best hypothesis of each problem: what identical-output checks compare."""
    return [group[0] if group else None for group in result.hypotheses]


def agreement(a: Sequence[Hypothesis | None], b: Sequence[Hypothesis | None]) -> tuple[bool, int]:
    """(same, near_ties). Same when every problem's best answer has the same tokens in both runs, or the
    two best scores agree within SCORE_TOL: a float-precision tie between equally scored answers, which
    different kernels may order differently (counted in near_ties)."""
    if len(a) != len(b):
        return False, 0
    mismatches = ties = 0
    for x, y in zip(a, b):
        if x is None or y is None:
            mismatches += x is not y
        elif x.ids != y.ids:
            close = abs(x.score - y.score) <= SCORE_TOL
            ties += close
            mismatches += not close
    return mismatches == 0, ties


def matmul_gflops(device: torch.device, n: int = 1024, reps: int = 8) -> float:
    """This machine's float32 matmul rate (GFLOP/s) on an n x n product: the arithmetic floor's yardstick."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    ms, _ = timed(lambda: [a @ b for _ in range(reps)], device)
    return 2 * n ** 3 * reps / (ms / 1e3) / 1e9


def report(progress: Progress | None, fraction: float, message: str) -> None:
    log.info("%s", message)
    if progress is not None:
        progress(min(1.0, max(0.0, fraction)), message)
