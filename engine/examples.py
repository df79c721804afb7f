"""Pick the demo's example problems: per degree pair, one the model verifies with beam search.

    python -m engine.examples --checkpoint weights/default --width 10    # writes weights/default.examples.json

Candidates come from a fixed seed with small coefficients (as people type them); the first one whose best
verified beam checks is kept. A pair with no verified candidate is written with "verified": false, so the
page can say the model does not solve that pair yet instead of showing an example that fails.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .checkpoint import DEFAULT_CHECKPOINT, CheckpointError, load_checkpoint
from .cli import add_runtime_args, apply_runtime_args
from .data import ALL_PAIRS, generate
from .decoding import best_answer, preset, solve
from .poly import to_unicode, verify

EXAMPLES_SEED = 2024


def pick_examples(model, width: int = 10, candidates: int = 16, coeff_range: int = 5) -> list[dict]:
    opts = preset("fastest", decoder="beam", width=width, max_new=40)
    out = []
    for i, j in ALL_PAIRS:
        problems = generate(i, j, candidates, seed=EXAMPLES_SEED, coeff_range=coeff_range)
        ranked = solve(model, [p.f for p in problems], opts)
        best = [(p, best_answer(r)) for p, r in zip(problems, ranked)]
        hits = [(p, a) for p, a in best if a and a.verified]
        p, answer = hits[0] if hits else (problems[0], None)
        out.append({"pair": f"{i}_{j}", "f": list(p.f), "text": to_unicode(p.f), "verified": answer is not None,
                    "q": list(answer.q) if answer else None, "solved": f"{len(hits)}/{len(problems)}"})
    return out


def examples_path(checkpoint: str) -> str:
    return checkpoint.removesuffix(".safetensors").removesuffix(".json") + ".examples.json"


def read_examples(checkpoint: str) -> list[dict] | None:
    """The examples chosen for this checkpoint, or None when there is no (valid) file. Each is checked:
    f a list of ints of a trained degree pair, and "verified" true only when its q really verifies."""
    try:
        with open(examples_path(checkpoint), encoding="utf-8") as fh:
            data = json.load(fh)
        out = []
        for e in data["examples"]:
            f = tuple(int(c) for c in e["f"])
            q = tuple(int(c) for c in e["q"]) if e.get("q") is not None else None
            ok = bool(e.get("verified")) and q is not None and verify(f, q).ok
            out.append({"pair": str(e["pair"]), "f": f, "verified": ok})
        return out
    except (OSError, ValueError, KeyError, TypeError):
        return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Choose the demo's example problems the model verifies.")
    ap.add_argument("--width", type=int, default=10)
    ap.add_argument("--candidates", type=int, default=16, help="problems tried per pair")
    add_runtime_args(ap)
    args = ap.parse_args(argv)
    device = apply_runtime_args(ap, args)
    checkpoint = args.checkpoint or DEFAULT_CHECKPOINT
    try:
        model, _ = load_checkpoint(checkpoint, device)
        examples = pick_examples(model, args.width, args.candidates)
    except (OSError, ValueError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    path = examples_path(checkpoint)
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump({"width": args.width, "seed": EXAMPLES_SEED, "examples": examples}, fh, indent=1, ensure_ascii=False)
    os.replace(path + ".tmp", path)
    for e in examples:
        print(f"{e['pair']}  {'verified' if e['verified'] else 'NOT solved':>10}  ({e['solved']})  {e['text']}")
    print(json.dumps({"path": path, "verified_pairs": sum(e["verified"] for e in examples)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
