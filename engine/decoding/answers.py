"""Answers: each hypothesis read back as Q and verified against f (DESIGN.md's rule), best first."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..device import phase
from ..poly.core import Poly, PolynomialError, from_prefix_tokens, verify
from ..prompt import prompt_ids
from ..tokenizer import TokenizerError, decode as decode_ids
from .decode import decode, run_to_completion
from .events import Hypothesis
from .options import DecodeOptions


@dataclass(frozen=True)
class Answer:
    ids: tuple[int, ...]
    prefix: str                    # seed-format token text of Q ("" if nothing)
    score: float
    q: Poly | None                 # None when the tokens do not parse
    verified: bool
    outer: Poly | None             # the recovered P when verified
    reason: str                    # why not verified; "" when verified


def rank_answers(f: Poly, hyps: Sequence[Hypothesis]) -> tuple[Answer, ...]:
    """Verify each hypothesis against f; keep the model's order."""
    out = []
    for h in hyps:
        try:
            tokens = decode_ids(h.ids)
        except TokenizerError as e:
            out.append(Answer(h.ids, "", h.score, None, False, None, str(e)))
            continue
        prefix = " ".join(tokens)
        try:
            q = from_prefix_tokens(tokens)
        except PolynomialError as e:
            out.append(Answer(h.ids, prefix, h.score, None, False, None, f"does not parse: {e}"))
            continue
        with phase("verify"):
            verdict = verify(f, q)
        out.append(Answer(h.ids, prefix, h.score, q, verdict.ok, verdict.outer, verdict.reason))
    return tuple(out)


def best_answer(answers: Sequence[Answer]) -> Answer | None:
    """The first verified answer, else the first answer, else None."""
    for a in answers:
        if a.verified:
            return a
    return answers[0] if answers else None


def solve(model, fs: Sequence[Poly], opts: DecodeOptions, samples: int = 1) -> list[tuple[Answer, ...]]:
    """Prompt each f (in the model's prompt format), decode them in one batch, verify. Raises ValueError for
    input that cannot fit.

    samples > 1 (sample decoder): each f gets that many rows in the batch, and its answers are all of their
    hypotheses, best score first (best-of-N with verification)."""
    if samples < 1 or (samples > 1 and opts.decoder != "sample"):
        raise ValueError(f"samples={samples}: more than one sample per problem needs the sample decoder")
    prompts = [prompt_ids(f, model.config.prompt_format) for f in fs]
    result = run_to_completion(decode(model, [p for p in prompts for _ in range(samples)], opts))
    per_problem = [sorted((h for hs in result.hypotheses[k * samples:(k + 1) * samples] for h in hs),
                          key=lambda h: -h.score) for k in range(len(fs))]
    return [rank_answers(f, hyps) for f, hyps in zip(fs, per_problem)]
