"""Decompose one polynomial with the model: ranked answers, each verified, with the recovered P.

    python -m engine.decompose "3(a^2+2a)^2 - 5(a^2+2a) + 7" --decoder beam --width 10
    python -m engine.decompose "a^4 + 4a^3 + 2a^2 - 4a + 1" --preset V1 --json
    python -m engine.decompose "4a^4 + 12a^3 + 5a^2 - 6a - 2" --decoder cascade --cascade "greedy > beam 10 > beam 64"

Options start from --preset (default: fastest) and any flag given overrides it. Errors in the input
are one line on stderr and exit code 2. --json prints one object; its "best" is the first verified
answer (else the top-scored one), "answers" keeps the model's score order.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from .checkpoint import CheckpointError, load_weights
from .cli import add_decode_args, add_runtime_args, apply_runtime_args, options_from_args
from .data import out_of_domain
from .decoding import Answer, DecodeOptions, best_answer, decode_polynomials, rank_answers, run_to_completion
from .poly import Poly, PolynomialError, parse_polynomial, to_prefix, to_unicode


def parse_args(argv: list[str] | None = None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    ap = argparse.ArgumentParser(prog="python -m engine.decompose", description=__doc__.split("\n")[0])
    ap.add_argument("polynomial", help='f(a), e.g. "a^4 + 4a^3 + 2a^2 - 4a + 1" (or seed prefix tokens)')
    add_decode_args(ap)
    add_runtime_args(ap)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return ap, ap.parse_args(argv)


def answer_dict(a: Answer) -> dict:
    return {"q_prefix": a.prefix, "q": to_unicode(a.q) if a.q is not None else None, "score": round(a.score, 6),
            "verified": a.verified, "p": to_unicode(a.outer) if a.outer is not None else None, "reason": a.reason}


def render(f: Poly, source: str, trained: bool, opts: DecodeOptions, answers, result, note: str | None) -> str:
    lines = [f"f = {to_unicode(f)}", f"model: {source}" + ("" if trained else "  (UNTRAINED weights: answers are noise)")]
    if note:
        lines.append(f"note: {note}")
    search = f"cascade {opts.cascade}" if opts.decoder == "cascade" else f"decoder {opts.decoder}, width {opts.width}"
    if opts.decoder == "sample":
        search += f", samples {opts.samples}"
    if opts.stop_on_verified:
        search += ", stop at the first verified answer"
    lines.append(f"{search}, cache {opts.cache}, beam cache {opts.beam_cache}, attention {opts.attention}")
    lines.append(f"{'#':>3}  {'score':>9}  {'verified':<8}  {'Q':<28}  P")
    for n, a in enumerate(answers, 1):
        q = to_unicode(a.q) if a.q is not None else f"({a.prefix or 'nothing'})"
        p = to_unicode(a.outer) if a.outer is not None else a.reason
        lines.append(f"{n:>3}  {a.score:>9.4f}  {'yes' if a.verified else 'no':<8}  {q:<28}  {p}")
    lines.append(f"time: prefill {result.prefill_ms:.1f} ms, total {result.total_ms:.1f} ms, "
                 f"{len(result.steps)} steps")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap, args = parse_args(argv)
    device = apply_runtime_args(ap, args)
    try:
        f = parse_polynomial(args.polynomial)
        opts = options_from_args(args)
        weights = load_weights(args.checkpoint, device=device)  # random weights, said clearly, when none is found
        source, trained, model = weights.source, weights.trained, weights.model
        result = run_to_completion(decode_polynomials(model, [f], opts))
    except (PolynomialError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    answers = rank_answers(f, result.hypotheses[0])
    note = out_of_domain(f)
    best = best_answer(answers)
    if args.json:
        print(json.dumps({
            "input": args.polynomial, "f": to_unicode(f), "f_prefix": to_prefix(f), "options": asdict(opts),
            "device": str(device), "checkpoint": source, "trained": trained, "note": note,
            "best": None if best is None else answer_dict(best), "answers": [answer_dict(a) for a in answers],
            "timings": {"prefill_ms": round(result.prefill_ms, 3), "total_ms": round(result.total_ms, 3),
                        "steps": len(result.steps)}}, ensure_ascii=False))
    else:
        print(render(f, source, trained, opts, answers, result, note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
