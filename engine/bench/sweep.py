"""The sweep suite: when does a KV cache pay? Speedup of each cache strategy over no cache across prompt
lengths, beam widths and model sizes, on random weights with a forced answer length (equal work).

The result is JSON like every suite's; demo/figures.py draws its heatmaps (the engine knows no plotting).
"""
from __future__ import annotations

from typing import Callable

from ..checkpoint import random_model
from ..data import generate
from ..decoding import preset
from ..prompt import prompt_ids
from ..tokenizer import SEP_ID
from .util import Progress, Subject, agreement, best_hyps, report, run_ours, timed

# (cache, beam cache) pairs measured against ("none", -) at every grid point.
STRATEGIES: tuple[tuple[str, str], ...] = (("concat", "clone"), ("concat", "gather"), ("static", "gather"),
                                           ("static", "shared-prefix"))
FULL = {"sizes": ("tiny", "default", "paper"), "lengths": (16, 64, 256), "widths": (1, 8, 32), "new": 8}
SMOKE = {"sizes": ("tiny",), "lengths": (16, 48), "widths": (1, 4), "new": 4}


def label(strategy: tuple[str, str]) -> str:
    return f"{strategy[0]}+{strategy[1]}"


def synthetic_prompt(length: int) -> list[int]:
    """A prompt of exactly `length` ids (SEP last), cut from real (4,4) prompts: random weights make the
    content irrelevant, only the length matters."""
    base: list[int] = []
    for p in generate(4, 4, 4, 0):
        base += prompt_ids(p.f)[:-1]
    while len(base) < length:
        base += base
    return base[: length - 1] + [SEP_ID]


def _cell(model, device, prompt: list[int], width: int, new: int, runs: int,
          check: Callable[[], None] | None = None) -> tuple[dict, dict]:
    """ms and best ids per strategy (plus "none") at one grid point."""
    ms, ids = {}, {}
    for strategy in (("none", "gather"),) + STRATEGIES:
        opts = preset("fastest", decoder="beam", width=width, cache=strategy[0], beam_cache=strategy[1],
                      max_new=new)
        times = []
        for _ in range(runs):
            t, result = timed(lambda: run_ours(model, [prompt], opts, check), device)
            times.append(t)
        key = "none" if strategy[0] == "none" else label(strategy)
        ms[key], ids[key] = sum(times) / len(times), best_hyps(result)
    return ms, ids


def sweep(subject: Subject, runs: int, warmup: int, smoke: bool = False, progress: Progress | None = None) -> dict:
    """Speedup of every strategy over no cache on the grid."""
    grid = SMOKE if smoke else FULL
    rows, best, identical, ties = [], [], True, 0
    cells = [(s, L, w) for s in grid["sizes"] for L in grid["lengths"] for w in grid["widths"]]
    models: dict = {}
    for k, (size, L, w) in enumerate(cells):
        report(progress, k / len(cells), f"sweep {size}: prompt {L}, width {w}")
        if size not in models:
            models.clear()  # one model in memory at a time
            models[size] = random_model(size).to(subject.device)
            for _ in range(warmup):
                _cell(models[size], subject.device, synthetic_prompt(grid["lengths"][0]), 1, 2, 1, subject.check)
        ms, ids = _cell(models[size], subject.device, synthetic_prompt(L), w, grid["new"], runs, subject.check)
        for v in ids.values():
            ok, t = agreement(v, ids["none"])
            identical, ties = identical and ok, ties + t
        speedups = {label(s): ms["none"] / ms[label(s)] for s in STRATEGIES}
        top = max(speedups, key=speedups.get)
        best.append(speedups[top])
        rows.append({"model": size, "prompt_tokens": L, "width": w, "none_ms": round(ms["none"], 2),
                     **{f"x_{k}": round(v, 2) for k, v in speedups.items()}, "best": top})
    summary = {"min_speedup_best_cache": round(min(best), 2), "max_speedup_best_cache": round(max(best), 2),
               "outputs_identical": identical, "near_ties": ties}
    settings = {"sizes": list(grid["sizes"]), "prompt_lengths": list(grid["lengths"]), "widths": list(grid["widths"]),
                "answer_tokens": grid["new"], "runs": runs, "warmup": warmup, "decoder": "beam (one problem)"}
    definitions = ["x_<cache>+<beam cache> = ms with no cache / ms with that strategy, same prompt, width and "
                   "forced answer length (random weights, END unreachable)",
                   "best = the strategy with the largest speedup at that point"]
    columns = ["model", "prompt_tokens", "width", "none_ms"] + [f"x_{label(s)}" for s in STRATEGIES] + ["best"]
    return {"suite": "sweep", "settings": settings, "definitions": definitions, "columns": columns,
            "rows": rows, "summary": summary, "notes": []}
