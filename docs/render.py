"""Render the README's model sections from the JSON that commands wrote (never from hand-typed numbers).

    python docs/render.py curves --run e0=runs/ab_e0 --run e1=runs/ab_e1 --out docs/model/prompt_ab.json
    python docs/render.py readme            # rewrites the marked blocks of README.md from docs/model/*.json
                                            # and the benchmark tables from docs/bench/*.json

`curves` copies a training run's validation log (RUN_DIR/val.csv, written by engine.train) into JSON.
`readme` renders docs/model/prompt_ab.json as a table and an SVG chart, the evaluation JSON lines
(docs/model/eval_<set>_<decoder>.json, written by `python -m engine.evaluate ... --json`) as the accuracy table,
and the frontier results (docs/bench/frontier_<pair>/frontier.json, written by `python -m engine.bench frontier
--pairs <pair> --out docs/bench/frontier_<pair>`) as Pareto charts (SVG) and a table.
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
from html import escape
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(ROOT, "docs", "model")
PAIRS = [f"{i}_{j}" for i in (2, 3, 4) for j in (2, 3, 4)]
# The seed system's published greedy accuracy (its report, 300 problems a pair), for comparison only.
SEED_GREEDY = {"2_2": 49, "2_3": 23, "2_4": 9, "3_2": 44, "3_3": 22, "3_4": 10, "4_2": 49, "4_3": 18, "4_4": 10}
COLUMNS = [("greedy", "greedy"), ("beam10", "beam 10"), ("beam64", "beam 64"), ("sample", "best of N samples")]


def read_val(run_dir: str) -> list[dict]:
    """The run's validation rounds. A run continued from before a cool-down (stable.pt) sets that cool-down's
    steps aside: its rounds from the step it went back to are dropped for the ones the continuation logged."""
    rows = []
    with open(os.path.join(run_dir, "val.csv"), newline="") as fh:
        for r in csv.reader(fh):
            if rows and int(r[0]) < rows[-1]["step"]:
                rows = [x for x in rows if x["step"] < int(r[0])]
            rows.append({"step": int(r[0]), "minutes": round(float(r[1]) / 60, 2), "pair": r[2],
                         "accuracy": float(r[3]), "share": float(r[4]) if len(r) > 4 else None,
                         "loss": float(r[5]) if len(r) > 5 else None})
    return rows


def curves(args) -> None:
    arms = {}
    for spec in args.run:
        name, _, run_dir = spec.partition("=")
        arms[name] = {"run_dir": run_dir, "validation": read_val(run_dir)}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump({"arms": arms, "note": args.note}, fh, indent=1)
    print(f"wrote {args.out}")


def svg_chart(arms: dict, pair: str, key: str, title: str) -> str:
    """A small line chart (pure SVG): validation `key` against training minutes, one line per arm."""
    W, H, L, B = 360, 220, 48, 30
    series = {name: [(r["minutes"], r[key]) for r in arm["validation"] if r["pair"] == pair and r[key] is not None]
              for name, arm in arms.items()}
    xs = [x for s in series.values() for x, _ in s] or [0, 1]
    ys = [y for s in series.values() for _, y in s] or [0, 1]
    x0, x1, y0, y1 = min(xs), max(xs), min(0.0, min(ys)), max(ys) or 1
    x0 = 0.0 if x0 < (x1 - x0) else x0  # a run that continues a trained model starts far from 0: show its span
    sx = lambda x: L + (W - L - 10) * (x - x0) / ((x1 - x0) or 1)
    sy = lambda y: H - B - (H - B - 20) * (y - y0) / ((y1 - y0) or 1)
    colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{W / 2}" y="13" text-anchor="middle">{title}</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - 10}" y2="{H - B}" stroke="#444"/>',
           f'<line x1="{L}" y1="20" x2="{L}" y2="{H - B}" stroke="#444"/>',
           f'<text x="{(W + L) / 2}" y="{H - 5}" text-anchor="middle">training minutes ({x0:.0f} to {x1:.0f})</text>']
    for y in (y0, (y0 + y1) / 2, y1):
        out.append(f'<text x="{L - 4}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
    for k, (name, pts) in enumerate(series.items()):
        c = colors[k % len(colors)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{path}"/>')
        out.append(f'<text x="{W - 60}" y="{34 + 14 * k}" fill="{c}">{name}</text>')
    return "\n".join(out + ["</svg>"]) + "\n"


def ab_block(path: str, stem: str = "prompt_ab", pairs: tuple[str, ...] = ("2_2", "2_3")) -> str:
    """An A/B's validation curves: an SVG chart per pair and measure (answer loss, greedy verified) against
    training minutes, and the table they are drawn from."""
    with open(path) as fh:
        data = json.load(fh)
    arms = data["arms"]
    charts = []
    for pair in pairs:
        for key, label in (("loss", "answer loss"), ("accuracy", "greedy verified")):
            name = f"{stem}_{pair}_{key}.svg"
            with open(os.path.join(MODEL_DIR, name), "w") as fh:
                fh.write(svg_chart(arms, pair, key, f"({pair.replace('_', ',')}): {label}"))
            charts.append(f"![{pair} {label}](docs/model/{name})")
    heads = [f"({p.replace('_', ',')}) {m}" for p in pairs for m in ("loss", "greedy")]
    lines = [" ".join(charts), "", "| arm | step | minutes | " + " | ".join(heads) + " |",
             "|" + "---|" * (3 + len(heads))]
    for name, arm in arms.items():
        by_step: dict[int, dict] = {}
        for r in arm["validation"]:
            by_step.setdefault(r["step"], {})[r["pair"]] = r
        for step, rows in sorted(by_step.items()):
            if all(p in rows for p in pairs):
                cells = [f"{rows[p]['loss']:.3f} | {rows[p]['accuracy']:.0%}" for p in pairs]
                lines.append(f"| {name} | {step} | {rows[pairs[0]]['minutes']:.1f} | " + " | ".join(cells) + " |")
    if data.get("note"):
        lines += ["", data["note"]]
    return "\n".join(lines)


def run_block(path: str, every: int = 3) -> str:
    """A training run's validation: greedy verified accuracy per pair (fresh problems each round) against
    steps and training minutes, every `every`-th round and the last, with the mix at the last round."""
    with open(path) as fh:
        data = json.load(fh)
    (name, arm), = data["arms"].items()
    by_step: dict[int, dict] = {}
    for r in arm["validation"]:
        by_step.setdefault(r["step"], {})[r["pair"]] = r
    steps = sorted(by_step)
    shown = [s for k, s in enumerate(steps) if k % every == 0 or s == steps[-1]]
    lines = ["| step | minutes | " + " | ".join(PAIRS) + " |", "|" + "---|" * (len(PAIRS) + 2)]
    for s in shown:
        rows = by_step[s]
        minutes = next(iter(rows.values()))["minutes"]
        lines.append(f"| {s} | {minutes:.0f} | " + " | ".join(f"{rows[p]['accuracy']:.0%}" if p in rows else ""
                                                               for p in PAIRS) + " |")
    last = by_step[steps[-1]]
    mix = ", ".join(f"{p} {last[p]['share']:.2f}" for p in PAIRS if p in last and last[p]["share"] is not None)
    return "\n".join(lines + ["", f"Share of steps per pair at the last round: {mix}.",
                              "" if not data.get("note") else data["note"]])


def checkpoint_label(data: dict, shipped_digest: str | None) -> str:
    """Name the weights an evaluation ran on by their hash: the shipped weights/default wherever the bytes are the
    same (an evaluation of a candidate file that was then shipped unchanged), else the path it ran with."""
    sha = data.get("weights_sha256")
    if sha and sha == shipped_digest:
        return f"weights/default ({data.get('steps', '?'):,} training steps, sha256 {sha[:12]})"
    ck = data.get("checkpoint", "?")
    ck = os.path.relpath(ck, ROOT) if os.path.isabs(ck) else ck
    return f"{ck} (sha256 {sha[:12]}, not the shipped weights)" if sha else ck


def eval_block(prefix: str, shipped_digest: str | None) -> str:
    results, checkpoints = {}, set()
    for key, _ in COLUMNS:
        path = os.path.join(MODEL_DIR, f"eval_{prefix}_{key}.json")
        if os.path.exists(path):
            with open(path) as fh:
                data = json.load(fh)
            results[key] = {re.search(r"(\d_\d)\.txt$", r["file"]).group(1): r for r in data["results"]}
            checkpoints.add(checkpoint_label(data, shipped_digest))
    cols = [(k, label) for k, label in COLUMNS if k in results]
    head = "| pair | problems | " + " | ".join(label for _, label in cols) + " | seed's greedy |"
    lines = [head, "|" + "---|" * (len(cols) + 3)]
    for pair in PAIRS:
        rows = [results[k].get(pair) for k, _ in cols]
        n = next((r["problems"] for r in rows if r), 0)
        cells = [f"{r['accuracy']:.1%}" if r else "" for r in rows]
        lines.append(f"| {pair} | {n} | " + " | ".join(cells) + f" | {SEED_GREEDY[pair]}% |")
    notes = [f"{label}: `{results[k][PAIRS[0]]['decoder']}`, width/samples {results[k][PAIRS[0]]['width']}"
             for k, label in cols if PAIRS[0] in results[k]]
    notes.append("checkpoint " + ", ".join(sorted(checkpoints)))
    return "\n".join(lines + [""] + ["Decoders: " + "; ".join(notes) + "."] if notes else lines)


FRONTIER_GLOB = os.path.join(ROOT, "docs", "bench", "frontier_*", "frontier.json")
FAMILY_COLORS = {"greedy": "#555555", "beam": "#3b6fb6", "beam stop": "#2e9e44", "cascade": "#f08c00",
                 "cascade stop": "#d1453b", "best of": "#8a56c2"}


def family(label: str) -> str:
    """The strategy family (as demo/figures.py colours it): "beam 10 stop" -> "beam stop"."""
    if label.startswith("best of"):
        return "best of"
    head = label.split()[0]
    return f"{head} stop" if label.endswith(" stop") and head in ("beam", "cascade") else head


def frontier_svg(rows: list[dict], pair: str) -> str:
    """Verified accuracy against ms per problem (log x) for one pair: circles batched, diamonds one at a time,
    the Pareto front of each mode dashed, the front's points labelled."""
    import math
    W, H, L, B, T = 520, 330, 52, 40, 28
    xs = [r["ms_per_problem"] for r in rows]
    lo, hi = math.log10(min(xs)) - 0.05, math.log10(max(xs)) + 0.05
    accs = [r["accuracy"] for r in rows]
    y0, y1 = max(0.0, math.floor(min(accs) * 10) / 10), 1.0
    sx = lambda x: L + (W - L - 130) * (math.log10(x) - lo) / (hi - lo)
    sy = lambda y: H - B - (H - B - T) * (y - y0) / ((y1 - y0) or 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{(W - 130 + L) / 2}" y="16" text-anchor="middle">({pair.replace("_", ",")}): verified accuracy '
           f'vs ms per problem</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - 130}" y2="{H - B}" stroke="#444"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="#444"/>',
           f'<text x="{(W - 130 + L) / 2}" y="{H - 8}" text-anchor="middle">ms per problem (log scale)</text>']
    for e in range(math.floor(lo), math.ceil(hi) + 1):
        for m in (1, 2, 5):
            v = m * 10 ** e
            if lo <= math.log10(v) <= hi:
                out.append(f'<line x1="{sx(v):.1f}" y1="{H - B}" x2="{sx(v):.1f}" y2="{H - B + 4}" stroke="#444"/>'
                           f'<text x="{sx(v):.1f}" y="{H - B + 15}" text-anchor="middle">{v:g}</text>')
    step = 0.1 if y1 - y0 <= 0.5 else 0.2
    for k in range(round((y1 - y0) / step) + 1):
        y = y0 + step * k
        out.append(f'<line x1="{L}" y1="{sy(y):.1f}" x2="{W - 130}" y2="{sy(y):.1f}" stroke="#eef0f3"/>'
                   f'<text x="{L - 4}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.0%}</text>')
    for mode in ("batched", "one at a time"):
        front = sorted((r for r in rows if r["mode"] == mode and r["pareto"]), key=lambda r: r["ms_per_problem"])
        pts = " ".join(f"{sx(r['ms_per_problem']):.1f},{sy(r['accuracy']):.1f}" for r in front)
        out.append(f'<polyline fill="none" stroke="#9aa3ad" stroke-dasharray="4,3" points="{pts}"/>')
    for r in rows:
        x, y, c = sx(r["ms_per_problem"]), sy(r["accuracy"]), FAMILY_COLORS[family(r["strategy"])]
        if r["mode"] == "batched":
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{c}" stroke="white"/>')
        else:
            out.append(f'<rect x="{x - 4:.1f}" y="{y - 4:.1f}" width="8" height="8" fill="{c}" stroke="white" '
                       f'transform="rotate(45 {x:.1f} {y:.1f})"/>')
        if r["pareto"]:
            out.append(f'<text x="{x + 6:.1f}" y="{y - 6:.1f}" fill="{c}" font-size="9">{escape(r["strategy"])}</text>')
    legend = list(FAMILY_COLORS.items()) + [("● batched", "#444"), ("◆ one at a time", "#444")]
    for k, (name, c) in enumerate(legend):
        out.append(f'<text x="{W - 120}" y="{T + 14 * k + 10}" fill="{c}">{name}</text>')
    return "\n".join(out + ["</svg>"]) + "\n"


def frontier_block(paths: list[str]) -> tuple[str, dict[str, str]]:
    """The README block and its charts ({path: SVG text}, one per pair, beside the JSON): the charts, one table
    (per strategy and pair, verified accuracy and ms per problem batched / one at a time) and each run's
    summary."""
    results = []
    for path in paths:
        with open(path) as fh:
            results.append(json.load(fh))
    charts, svgs, pairs, cells, strategies = [], {}, [], {}, []
    for res in results:
        for pair in res["settings"]["pairs"]:
            rows = [r for r in res["rows"] if r["pair"] == pair]
            svg = os.path.join(ROOT, "docs", "bench", f"frontier_{pair}", f"frontier_{pair}.svg")
            svgs[svg] = frontier_svg(rows, pair)
            charts.append(f"![frontier {pair}]({os.path.relpath(svg, ROOT)})")
            pairs.append(pair)
            for r in rows:
                cells[pair, r["strategy"], r["mode"]] = r
                if r["strategy"] not in strategies:
                    strategies.append(r["strategy"])
    head = "| strategy | " + " | ".join(f"({p.replace('_', ',')}) verified | ms batched | ms one" for p in pairs) + " |"
    lines = [" ".join(charts), "", head, "|---|" + "---|---|---|" * len(pairs)]
    for s in strategies:
        row = []
        for p in pairs:
            b, o = cells.get((p, s, "batched")), cells.get((p, s, "one at a time"))
            row += [f"{b['accuracy']:.1%}" if b else "", f"{b['ms_per_problem']:.1f}" if b else "",
                    f"{o['ms_per_problem']:.1f}" if o else ""]
        lines.append(f"| {s} | " + " | ".join(row) + " |")
    lines.append("")
    for res in results:
        m, st = res["machine"], res["settings"]
        lines.append(f"Run {', '.join(st['pairs'])}: {st['problems_per_pair']} problems, calls of {st['batch']}, "
                     f"{m.get('cpu', '?')}, {m.get('threads', '?')} threads, torch {m.get('torch', '?')}, "
                     f"{res['model']}.")
        for k, v in res["summary"].items():
            v = ", ".join(f"{a} {b}" for a, b in v.items()) if isinstance(v, dict) else ("yes" if v is True else
                                                                                       "NO" if v is False else v)
            lines.append(f"- {k}: {v}")
        lines.append("")
    return "\n".join(lines).rstrip(), svgs


def model_block(stem: str) -> str:
    """The shipped model in words, from the meta the trainer wrote into its JSON: size, training time and
    steps, and one line per invocation of the run (its steps, minutes, learning rate, mix)."""
    with open(stem + ".json") as fh:
        ck = json.load(fh)
    cfg, meta = ck["config"], ck["meta"]
    from safetensors import safe_open

    size = os.path.getsize(stem + ".safetensors") / 1e6
    with safe_open(stem + ".safetensors", "pt") as st:
        params = sum(_numel(st.get_slice(k).get_shape()) for k in st.keys())
    lines = [f"`{os.path.relpath(stem, ROOT)}.safetensors` ({size:.0f} MB): {cfg['n_layer']} layers, {cfg['n_head']} "
             f"heads, {cfg['n_embd']} wide, block {cfg['block_size']}, prompt format `{cfg['prompt_format']}`, "
             f"{cfg.get('answer_order', 'ascending')} answers, {params:,} stored values; {meta['steps']:,} steps in {meta['train_minutes']} training minutes. "
             "The run, invocation by invocation (from the JSON's `meta.history`):", "",
             "| steps | training minutes | lr | budget (cool-down share) | started from | small-coefficient share | "
             "degree-pair mix |", "|---|---|---|---|---|---|---|"]
    for h in meta.get("history", []):
        mix = str(h.get("mix", "")).replace(" (final; see schedule)", "")
        budget = f"{h['minutes']} min" if h.get("minutes") else f"{h.get('max_steps')} steps"
        if h.get("cooldown") is not None:
            budget += f" ({h['cooldown']})"
        origin = h.get("resumed_from") or (f"--init {h['init']}" if h.get("init") else "")
        lines.append(f"| {h['from_step']:,}-{h['to_step']:,} | {h['from_minutes']}-{h['to_minutes']} | {h.get('lr')} | "
                     f"{budget} | {origin} | {h.get('small_share') or 0} | {mix.replace(',', ', ')} |")
    return "\n".join(lines)


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def replace_block(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text:
        raise SystemExit(f"README.md has no {start} marker")
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    return f"{before}{start}\n{body}\n{end}{after}"


def readme(args) -> None:
    path = os.path.join(ROOT, "README.md")
    sys.path.insert(0, ROOT)  # run as a script from anywhere: the engine package lives at the root
    from engine.bench.report import render as render_bench
    from engine.checkpoint import weights_digest

    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    shipped = os.path.join(ROOT, "weights", "default")
    shipped_digest = weights_digest(shipped) if os.path.exists(shipped + ".safetensors") else None
    if os.path.exists(shipped + ".json"):
        text = replace_block(text, "shipped-model", model_block(shipped))
    run = os.path.join(MODEL_DIR, "main_run.json")
    if os.path.exists(run):
        text = replace_block(text, "main-run", run_block(run))
    ab = os.path.join(MODEL_DIR, "prompt_ab.json")
    if os.path.exists(ab):
        text = replace_block(text, "prompt-ab", ab_block(ab))
    order = os.path.join(MODEL_DIR, "answer_order_ab.json")
    if os.path.exists(order):
        text = replace_block(text, "answer-order-ab", ab_block(order, "answer_order_ab", ("2_2", "3_3", "2_4", "4_4")))
    for prefix in ("standard", "small"):
        if glob.glob(os.path.join(MODEL_DIR, f"eval_{prefix}_*.json")):
            text = replace_block(text, f"eval-{prefix}", eval_block(prefix, shipped_digest))
    frontier = sorted(glob.glob(FRONTIER_GLOB))
    if frontier:
        block, svgs = frontier_block(frontier)
        text = replace_block(text, "frontier", block)
        for svg, body in svgs.items():
            with open(svg, "w") as fh:
                fh.write(body)
    text = render_bench(text, ROOT)  # the benchmark tables, from docs/bench/*.json
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    print(f"rendered {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("curves", help="a run's validation log as JSON")
    c.add_argument("--run", action="append", required=True, help="NAME=RUN_DIR (repeatable)")
    c.add_argument("--out", required=True)
    c.add_argument("--note", default="")
    sub.add_parser("readme", help="rewrite README.md's marked blocks")
    args = ap.parse_args()
    {"curves": curves, "readme": readme}[args.cmd](args)


if __name__ == "__main__":
    main()
