"""Record where one decode spends its time.

    python -m engine.profile "6a^4 + 4a^3 - 2a + 3" [--preset fastest] [--decoder beam --width 10]
                             [--cache static] [--beam-cache gather] [--attention sdpa] [--max-new 40]
                             [--checkpoint PATH | --model-preset paper] [--out profiles] [--name NAME] [--keep 20]

Writes profiles/<utc>_<name>/ (a TensorBoard trace: `tensorboard --logdir profiles`) and summary.json
beside it, then prints the phase split, the slowest operators and the answer.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

from .checkpoint import load_weights
from .cli import add_decode_args, add_runtime_args, apply_runtime_args, options_from_args
from .poly import PolynomialError, parse_polynomial
from .profiler import PHASES, profile_run


def format_summary(s: dict) -> str:
    lines = [f"profile {s['name']}: {s['polynomial']}  ({s['prompt_tokens']} prompt tokens)",
             f"total {s['total_ms']:.1f} ms (wall {s['wall_ms']:.1f} ms), {len(s['steps'])} steps, "
             f"cache {s['cache_bytes'] / 1024:.1f} KiB, process peak {s['peak_rss_bytes'] / 2**20:.0f} MiB "
             f"(before the decode {s['rss_before_bytes'] / 2**20:.0f} MiB)", "",
             f"| {'phase':<14} | {'ms':>9} | {'share':>6} | {'calls':>5} |",
             f"|{'-' * 16}|{'-' * 11}|{'-' * 8}|{'-' * 7}|"]
    for p in PHASES:
        v = s["phases"][p]
        lines.append(f"| {p:<14} | {v['ms']:>9.2f} | {v['share']:>6.1%} | {v['calls']:>5} |")
    lines += ["", f"| {'operator':<32} | {'calls':>5} | {'self ms':>9} |", f"|{'-' * 34}|{'-' * 7}|{'-' * 11}|"]
    for op in s["top_ops"][:10]:
        lines.append(f"| {op['op'][:32]:<32} | {op['calls']:>5} | {op['self_ms']:>9.2f} |")
    a = s["answer"]
    if a:
        verdict = "verified" if a["verified"] else f"not verified: {a['reason']}"
        lines += ["", f"answer: {a['q'] or '(nothing)'}  {verdict}"]
    lines.append(f"trace: {s['run_dir']}  (view: tensorboard --logdir {s['out_dir']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Profile one decode into a TensorBoard trace and a phase summary.")
    ap.add_argument("polynomial", help="f(a), typed (3a^2 - 2(a+1)^2) or in the seed's prefix tokens")
    add_decode_args(ap)
    add_runtime_args(ap, random_weights="--model-preset")
    ap.add_argument("--out", default="profiles", help="directory holding one folder per recording")
    ap.add_argument("--name", default=None, help="label of the run folder")
    ap.add_argument("--keep", type=int, default=20, help="recordings kept in --out (oldest removed)")
    ap.add_argument("--no-warmup", action="store_true", help="record the very first decode too")
    ap.add_argument("--json", action="store_true", help="print only the summary JSON")
    args = ap.parse_args(argv)
    device = apply_runtime_args(ap, args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        f = parse_polynomial(args.polynomial)
        opts = options_from_args(args)
        # random weights never emit END, so every configuration records the same number of steps
        model = load_weights(args.checkpoint, args.model_preset, device, end_unreachable=True).model
        summary = profile_run(model, f, opts, out_dir=args.out, name=args.name, keep=args.keep,
                              warmup=not args.no_warmup)
    except (PolynomialError, ValueError) as e:
        ap.error(str(e))
    print(json.dumps(summary) if args.json else format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
