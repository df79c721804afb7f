"""The benchmark runner behind `python -m engine.bench`: run_suite() and format_table()."""
from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from typing import Callable

from ..device import machine_info
from .engines import engines
from .frontier import frontier
from .suites import beam, generation, hf
from .sweep import sweep
from .util import Progress, load_subject

log = logging.getLogger(__name__)

SUITES: tuple[str, ...] = ("generation", "beam", "hf", "engines", "sweep", "frontier")
DEFAULT_OUT = os.path.join("profiles", "bench")
# runs, warmup per suite (full / smoke), and the smoke sizes that keep CI to seconds
DEFAULTS = {"generation": ((20, 5), (1, 0)), "beam": ((1, 1), (1, 0)), "hf": ((3, 1), (1, 0)),
            "engines": ((2, 1), (1, 0)),
            "sweep": ((1, 1), (1, 0)), "frontier": ((3, 1), (1, 0))}
SMOKE_PROBLEMS = {"beam": 3, "hf": 4, "engines": 3}


def run_suite(name: str, *, smoke: bool = False, runs: int | None = None, warmup: int | None = None,
              checkpoint: str | None = None, preset: str | None = None, progress: Progress | None = None,
              out_dir: str | None = DEFAULT_OUT, device: str | None = None,
              pairs: list[tuple[int, int]] | None = None, problems: int | None = None,
              check: Callable[[], None] | None = None) -> dict:
    """Run one suite and return its result (the object the CLI prints as its last line).

    smoke: tiny random model, few problems, small grid (seconds). out_dir: where <suite>.json is written;
    None writes nothing. device: cpu or cuda (default: cuda when present). pairs, problems: the frontier
    suite's degree pairs and problems per pair (its defaults when None). check: called between decode
    steps; whatever it raises stops the suite there (how the app cancels a run). Raises ValueError for an
    unknown suite or bad counts."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose from {', '.join(SUITES)}")
    if name != "frontier" and (pairs or problems is not None):
        raise ValueError("pairs and problems apply to the frontier suite only")
    if problems is not None and problems < 1:
        raise ValueError(f"problems must be >= 1, got {problems}")
    full, small = DEFAULTS[name]
    runs = (small if smoke else full)[0] if runs is None else runs
    warmup = (small if smoke else full)[1] if warmup is None else warmup
    if runs < 1 or warmup < 0:
        raise ValueError("runs must be >= 1 and warmup >= 0")
    subject = replace(load_subject(checkpoint, preset, smoke, device), check=check)
    if name == "generation":
        result = generation(subject, runs, warmup, progress)
    elif name == "beam":
        result = beam(subject, runs, warmup, n=SMOKE_PROBLEMS["beam"] if smoke else 30, progress=progress)
    elif name == "hf":
        result = hf(subject, runs, warmup, n=SMOKE_PROBLEMS["hf"] if smoke else 12, progress=progress)
    elif name == "engines":
        result = engines(subject, runs, warmup, n=SMOKE_PROBLEMS["engines"] if smoke else 30, progress=progress)
    elif name == "frontier":
        result = frontier(subject, runs, warmup, smoke=smoke, pairs=pairs, n=problems, progress=progress)
        result["model"] = subject.label
    else:
        result = sweep(subject, runs, warmup, smoke=smoke, progress=progress)
        result["model"] = "random weights per size (END unreachable)"
    result.setdefault("machine", machine_info(subject.device))
    result["smoke"] = smoke
    if progress is not None:
        progress(1.0, f"{name} done")
    if out_dir:
        result["json"] = write_result(result, out_dir)
    return result


def write_result(result: dict, out_dir: str) -> str:
    """<out_dir>/<suite>.json and, rendered from it, <suite>.md (format_table); returns the JSON's path."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, result["suite"])
    files = ((stem + ".json", json.dumps(result, indent=2) + "\n"), (stem + ".md", format_table(result) + "\n"))
    for path, text in files:
        with open(path + ".tmp", "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(path + ".tmp", path)
    return stem + ".json"


def _cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"
    return str(value)


def format_table(result: dict, title: bool = True) -> str:
    """A readable markdown table with a header stating machine, model and settings, and the summary (and a
    "## <suite> benchmark" title first unless title=False)."""
    m = result.get("machine", {})
    lines = [f"## {result['suite']} benchmark" + (" (smoke)" if result.get("smoke") else ""), ""] if title else []
    lines += [f"- Machine: {m.get('cpu', '?')}, {m.get('threads', '?')} threads, torch {m.get('torch', '?')}, "
              f"device {m.get('device', '?')}",
              f"- Model: {result.get('model', '?')}",
              "- Settings: " + ", ".join(f"{k}={v}" for k, v in result.get("settings", {}).items())]
    lines += [f"- {d}" for d in result.get("definitions", [])]
    cols = result["columns"]
    cells = [[_cell(r.get(c, "")) for c in cols] for r in result["rows"]]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    lines += ["", "| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths)) + " |",
              "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(v.rjust(w) for v, w in zip(row, widths)) + " |" for row in cells]
    lines += ["", "Summary:"]
    for k, v in result["summary"].items():
        if isinstance(v, dict):
            v = ", ".join(f"{a} {_cell(b)}" for a, b in v.items())
        lines.append(f"- {k}: {_cell(v)}")
    lines += [f"- note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)
