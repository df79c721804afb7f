"""Verified accuracy on seed-format problem files.

    python -m engine.evaluate --data test_dataset_2_2.txt [--data ...] [--decoder greedy|beam|sample|cascade]
                              [--width W] [--samples N] [--cascade STAGES] [--stop-on-verified] [--limit N]
                              [--checkpoint PATH] [--predictions OUT] [--json]
    torchrun --standalone --nproc_per_node 2 -m engine.evaluate --data ...   # the batches shared by 2 processes

An answer counts when it verifies (DESIGN.md: f is an integer polynomial in Q and 2 <= deg Q < deg f); the
reference answer in the file is never compared as a string. For beam search the reported answer is the
highest-scoring beam that verifies (verification is cheap and exact), else the highest-scoring beam. With
`--decoder sample --samples N` each problem gets N samples (one batch) and the answer is the best-scoring
sample that verifies: search with verification, to set against beam search. `--decoder cascade` runs its
stages (default greedy > beam 10 > beam 64) each on the problems the earlier ones did not verify.

Under torchrun every process decodes its share of the batches (whole batches, the same ones a single process
forms, so every answer is the one a single process gives) and rank 0 gathers them: the same results and the
same predictions file, in file order.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from tqdm import tqdm

from . import distributed
from .checkpoint import DEFAULT_CHECKPOINT, CheckpointError, load_checkpoint, weights_digest
from .cli import add_runtime_args, apply_runtime_args
from .data import read_dataset
from .decoding import DECODERS, DecodeOptions, best_answer, options, solve
from .distributed import Dist, all_gather_objects


def evaluate_file(model, path: str, opts: DecodeOptions, limit: int | None, batch_size: int,
                  predictions=None, progress: bool = True, d: Dist = Dist()) -> dict:
    """Verified accuracy on one file; under torchrun every process calls it and all get the whole result."""
    problems = list(read_dataset(path))[:limit]
    t0 = time.perf_counter()
    # Sorting by prompt length keeps padding low inside each batch; predictions are written in file order.
    order = sorted(range(len(problems)), key=lambda k: len(problems[k].prompt))
    per_batch = max(1, batch_size // opts.samples)  # rows in one batch stay near batch_size
    batches = [order[lo: lo + per_batch] for lo in range(0, len(order), per_batch)]
    mine = batches[d.rank::d.world_size]  # whole batches, so each answer is the one a single process gives
    bar = tqdm(total=sum(map(len, mine)), desc=os.path.basename(path), disable=not progress or not d.is_main,
               leave=False)
    answers: dict[int, tuple[str, bool]] = {}  # problem index -> (answer, verified)
    ok_here = 0
    for idx in mine:
        results = solve(model, [problems[k].f for k in idx], opts)
        for k, ranked in zip(idx, results):
            best = best_answer(ranked)
            answers[k] = (best.prefix if best else "", bool(best and best.verified))
            ok_here += answers[k][1]
        bar.update(len(idx))
        bar.set_postfix(acc=f"{ok_here / len(answers):.1%}")
    bar.close()
    if d.enabled:
        answers = {k: v for part in all_gather_objects(d, answers) for k, v in part.items()}
    verified = sum(ok for _, ok in answers.values())
    if predictions is not None:
        for k, p in enumerate(problems):
            predictions.write(f"{p.prompt} ⁇ {answers[k][0]}".rstrip() + "\n")
    n = len(problems)
    return {"file": path, "decoder": opts.decoder, "width": opts.beams,
            "problems": n, "verified": verified, "accuracy": verified / n if n else 0.0,
            "seconds": round(time.perf_counter() - t0, 2)}


def format_table(rows: list[dict]) -> str:
    lines = [f"{'file':<32} {'decoder':<8} {'width':>5} {'problems':>8} {'verified':>8} {'accuracy':>8} {'sec':>7}"]
    for r in rows:
        lines.append(f"{os.path.basename(r['file']):<32} {r['decoder']:<8} {r['width']:>5} {r['problems']:>8} "
                     f"{r['verified']:>8} {r['accuracy']:>8.1%} {r['seconds']:>7.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Verified accuracy of the model on seed-format files.")
    ap.add_argument("--data", action="append", required=True, help="a seed-format file (repeatable)")
    ap.add_argument("--decoder", default="greedy", choices=DECODERS)
    ap.add_argument("--cascade", default=None, help="cascade stages, e.g. 'greedy > beam 10 > beam 64' (cascade only)")
    ap.add_argument("--stop-on-verified", action="store_true", help="stop a problem at its first verified answer")
    ap.add_argument("--width", type=int, default=10, help="beam width (beam only)")
    ap.add_argument("--samples", type=int, default=8, help="samples per problem (sample only)")
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (sample only)")
    ap.add_argument("--seed", type=int, default=0, help="sampling seed (sample only)")
    ap.add_argument("--limit", type=int, default=None, help="first N problems of each file")
    ap.add_argument("--predictions", default=None, help="write `<f> ⁇ <answer>` lines here")
    ap.add_argument("--batch-size", type=int, default=64, help="problems decoded together")
    ap.add_argument("--max-new", type=int, default=40)
    add_runtime_args(ap)
    ap.add_argument("--json", action="store_true", help="print only the JSON line")
    args = ap.parse_args(argv)
    device = apply_runtime_args(ap, args)
    if args.limit is not None and args.limit < 1:
        ap.error("--limit must be >= 1")
    if args.samples < 1:
        ap.error("--samples must be >= 1")
    with distributed.joined(device) as (d, device):
        return run(args, d, device)


def run(args, d: Dist, device) -> int:
    checkpoint = args.checkpoint or DEFAULT_CHECKPOINT
    try:
        model, meta = load_checkpoint(checkpoint, device)
        opts = options("fastest", decoder=args.decoder, width=args.width, max_new=args.max_new,
                       temperature=args.temperature, seed=args.seed, samples=args.samples, cascade=args.cascade,
                       stop_on_verified=args.stop_on_verified)
        rows = []
        out = open(args.predictions, "w", encoding="utf-8") if args.predictions and d.is_main else None
        try:
            for path in args.data:
                rows.append(evaluate_file(model, path, opts, args.limit, args.batch_size, out,
                                          progress=not args.json, d=d))
        finally:
            if out:
                out.close()
    except (OSError, ValueError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not d.is_main:
        return 0
    if not args.json:
        print(format_table(rows))
    # the digest ties these figures to the exact weights (engine.capability shows them only for those)
    print(json.dumps({"results": rows, "checkpoint": checkpoint, "weights_sha256": weights_digest(checkpoint),
                      "steps": meta.get("steps"), "trained": bool(meta.get("trained")),
                      "torch": torch.__version__, "threads": torch.get_num_threads(), "processes": d.world_size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
