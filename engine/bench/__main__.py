"""Benchmarks: where decoding time goes and which optimisation pays, measured on this machine.

    python -m engine.bench generation [--runs 20] [--warmup 5]   # the seed's V1/V2/V3 table, plus fastest
    python -m engine.bench beam                                  # 30 problems of (2,2), widths 5 and 10
    python -m engine.bench hf                                    # ours vs transformers generate()
    python -m engine.bench engines                               # ours vs generate() and CTranslate2, same weights
    python -m engine.bench sweep                                 # when does a KV cache pay?
    python -m engine.bench frontier [--pairs 2_2,3_2] [--problems 60]   # verified accuracy vs ms per strategy
    common: [--json] [--checkpoint PATH | --preset tiny|default|paper] [--smoke] [--out DIR] [--threads N]
            [--device cpu|cuda]

Each prints a table (unless --json) and then one JSON line: {"suite", "machine", "rows", "summary", ...}.
The result is also written to <out>/<suite>.json (the web app's Benchmark tab draws its chart). With
--preset the weights are random and END is made unreachable, so every configuration generates the same
number of tokens; with a checkpoint (default: the shipped one) answers stop at END.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Callable

from ..cli import add_runtime_args, apply_runtime_args
from ..data import ALL_PAIRS
from .runner import DEFAULT_OUT, SUITES, format_table, run_suite


def parse_pairs(text: str) -> list[tuple[int, int]]:
    """"2_2,3_2" -> [(2, 2), (3, 2)]; argparse reports a ValueError as a usage error."""
    out = []
    for part in text.split(","):
        i, sep, j = part.strip().partition("_")
        if not (sep and i.isdigit() and j.isdigit() and (int(i), int(j)) in ALL_PAIRS):
            raise argparse.ArgumentTypeError(f"bad degree pair {part!r}: write outer_inner, e.g. 2_2, with degrees "
                                             f"2 to 4")
        out.append((int(i), int(j)))
    return out


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.bench",
                                 description="Decoding benchmarks; a table, then one JSON line.")
    ap.add_argument("suite", choices=SUITES)
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    ap.add_argument("--runs", type=int, default=None, help="measured runs (suite default when left out)")
    ap.add_argument("--warmup", type=int, default=None, help="unmeasured runs first (suite default when left out)")
    add_runtime_args(ap, random_weights="--preset")
    ap.add_argument("--smoke", action="store_true", help="tiny model, few problems, small grid: seconds")
    ap.add_argument("--out", default=DEFAULT_OUT, help="directory for <suite>.json")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--pairs", type=parse_pairs, default=None,
                    help="frontier: degree pairs, e.g. 2_2,3_2 (default 2_2,3_2,4_2; smoke 2_2)")
    ap.add_argument("--problems", type=int, default=None, help="frontier: problems per pair (default 30; smoke 3)")
    args = ap.parse_args(argv)
    device = apply_runtime_args(ap, args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def progress(fraction: float, message: str) -> None:
        print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    try:
        result = run_suite(args.suite, smoke=args.smoke, runs=args.runs, warmup=args.warmup,
                           checkpoint=args.checkpoint, preset=args.preset, out_dir=args.out, device=device,
                           progress=None if args.quiet else progress, pairs=args.pairs, problems=args.problems)
    except ValueError as e:
        ap.error(str(e))
    if not args.json:
        out(format_table(result))
        out("")
    out(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
