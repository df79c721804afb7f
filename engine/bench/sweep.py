"""The sweep suite: when does a KV cache pay? Speedup of each cache strategy over no cache across prompt
lengths, beam widths and model sizes, on random weights with a forced answer length (equal work).

The interactive chart is a plotly.js page written by hand from a figure dict: the engine never imports
plotly; it only embeds the plotly.min.js file that the installed plotly package ships (or links the CDN
when that file is missing).
"""
from __future__ import annotations

import html
import importlib.util
import json
import math
import os

from .util import Progress, Subject, agreement, best_hyps, random_model, report, run_ours, timed
from ..data import generate
from ..decoding.decode import preset
from ..prompt import prompt_ids
from ..tokenizer import SEP_ID

# (cache, beam cache) pairs measured against ("none", -) at every grid point.
STRATEGIES: tuple[tuple[str, str], ...] = (("concat", "clone"), ("concat", "gather"), ("static", "gather"),
                                           ("static", "shared-prefix"))
FULL = {"sizes": ("tiny", "default", "paper"), "lengths": (16, 64, 256), "widths": (1, 8, 32), "new": 8}
SMOKE = {"sizes": ("tiny",), "lengths": (16, 48), "widths": (1, 4), "new": 4}
PLOTLY_CDN = "https://cdn.plot.ly/plotly-2.35.2.min.js"


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


def _cell(model, device, prompt: list[int], width: int, new: int, runs: int) -> tuple[dict, dict]:
    """ms and best ids per strategy (plus "none") at one grid point."""
    ms, ids = {}, {}
    for strategy in (("none", "gather"),) + STRATEGIES:
        opts = preset("fastest", decoder="beam", width=width, cache=strategy[0], beam_cache=strategy[1],
                      max_new=new)
        times = []
        for _ in range(runs):
            t, result = timed(lambda: run_ours(model, [prompt], opts), device)
            times.append(t)
        key = "none" if strategy[0] == "none" else label(strategy)
        ms[key], ids[key] = sum(times) / len(times), best_hyps(result)
    return ms, ids


def sweep(subject: Subject, runs: int, warmup: int, smoke: bool = False, out_dir: str | None = None,
          progress: Progress | None = None) -> dict:
    """Speedup of every strategy over no cache on the grid; writes sweep.html into out_dir when given."""
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
                _cell(models[size], subject.device, synthetic_prompt(grid["lengths"][0]), 1, 2, 1)
        ms, ids = _cell(models[size], subject.device, synthetic_prompt(L), w, grid["new"], runs)
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
    result = {"suite": "sweep", "settings": settings, "definitions": definitions, "columns": columns,
              "rows": rows, "summary": summary, "notes": []}
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        result["html"] = write_html(rows, grid, os.path.join(out_dir, "sweep.html"))
    return result


def figure(rows: list[dict], grid: dict) -> dict:
    """A plotly figure dict: one heatmap per (model size, strategy) of the speedup over no cache, coloured
    on a log scale centred on 1x (blue: the cache pays, red: it costs)."""
    sizes, n = grid["sizes"], len(STRATEGIES)
    ticks = [0.25, 0.5, 1, 2, 4, 8, 16, 32, 64]
    data = []
    for r, size in enumerate(sizes):
        for c, strategy in enumerate(STRATEGIES):
            k = r * n + c + 1
            speedup = [[next(row[f"x_{label(strategy)}"] for row in rows if row["model"] == size
                             and row["prompt_tokens"] == L and row["width"] == w) for w in grid["widths"]]
                       for L in grid["lengths"]]  # (lengths, widths)
            data.append({"type": "heatmap", "z": [[math.log2(max(v, 1e-3)) for v in line] for line in speedup],
                         "text": speedup, "x": [str(w) for w in grid["widths"]],
                         "y": [str(L) for L in grid["lengths"]], "xaxis": f"x{k}", "yaxis": f"y{k}",
                         "coloraxis": "coloraxis", "texttemplate": "%{text:.2f}x",
                         "hovertemplate": f"{size}, {label(strategy)}<br>width %{{x}}, prompt %{{y}}<br>"
                                          "%{text:.2f}x vs no cache<extra></extra>"})
    layout = {"title": {"text": "Speedup over no cache (>1x: the cache pays)"},
              "grid": {"rows": len(sizes), "columns": n, "pattern": "independent", "ygap": 0.35},
              "coloraxis": {"colorscale": "RdBu", "reversescale": True, "cmid": 0.0,
                            "colorbar": {"title": {"text": "speedup"}, "tickvals": [math.log2(t) for t in ticks],
                                         "ticktext": [f"{t:g}x" for t in ticks]}},
              "height": 300 * len(sizes) + 120, "annotations": []}
    for r, size in enumerate(sizes):
        for c, strategy in enumerate(STRATEGIES):
            k = r * n + c + 1
            layout[f"xaxis{k}"] = {"title": {"text": "beam width"}, "type": "category"}
            layout[f"yaxis{k}"] = {"title": {"text": f"{size}: prompt tokens" if c == 0 else ""}, "type": "category"}
            layout["annotations"].append({"text": f"{size} / {label(strategy)}", "showarrow": False,
                                          "xref": f"x{k} domain", "yref": f"y{k} domain", "x": 0.5, "y": 1.12})
    return {"data": data, "layout": layout}


def _plotly_js() -> str:
    spec = importlib.util.find_spec("plotly")  # locates the package without importing it
    if spec and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "package_data", "plotly.min.js")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                return f"<script>{fh.read()}</script>"
    return f'<script src="{PLOTLY_CDN}"></script>'


def write_html(rows: list[dict], grid: dict, path: str) -> str:
    """A self-contained interactive page with the sweep's heatmaps; returns the path."""
    fig = json.dumps(figure(rows, grid)).replace("</", "<\\/")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape('KV cache sweep')}</title>"
            f"{_plotly_js()}</head><body><div id='sweep'></div><script>const fig = {fig};"
            "Plotly.newPlot('sweep', fig.data, fig.layout, {responsive: true});</script></body></html>")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(page)
    os.replace(tmp, path)
    return path
