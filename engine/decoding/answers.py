"""Answers: each hypothesis read back as Q and verified against f (DESIGN.md's rule), best first."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Generator, Sequence

from ..device import phase
from ..poly.core import Poly, PolynomialError, from_prefix_tokens, verify
from ..prompt import prompt_ids
from ..tokenizer import TokenizerError, decode as decode_ids
from .decode import decode, run_to_completion
from .events import Accept, Decoded, Hypothesis, Step
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


def check_answer(f: Poly, ids: Sequence[int]) -> bool:
    """True when the answer ids read back as a Q that verifies against f (DESIGN.md's rule)."""
    try:
        q = from_prefix_tokens(decode_ids(ids))
    except (TokenizerError, PolynomialError):
        return False
    with phase("verify"):
        return verify(f, q).ok


def verifier(fs: Sequence[Poly]) -> Accept:
    """The acceptance check for decomposing fs: accept(problem, ids) is True when ids verify against
    fs[problem]. Answers are checked once (the result is remembered), so a search and the ranking after it
    never pay twice for the same answer."""
    seen: dict[tuple[int, tuple[int, ...]], bool] = {}

    def accept(problem: int, ids: Sequence[int]) -> bool:
        key = (problem, tuple(ids))
        if key not in seen:
            seen[key] = check_answer(fs[problem], ids)
        return seen[key]

    return accept


def decode_polynomials(model, fs: Sequence[Poly], opts: DecodeOptions,
                       accept: Accept | None = None) -> Generator[Step, None, Decoded]:
    """decode() on each f's prompt (in the model's prompt format) with the polynomial verifier as the
    acceptance check (or `accept`): the way to run stop_on_verified and cascades on polynomials."""
    prompts = [prompt_ids(f, model.config.prompt_format) for f in fs]
    return decode(model, prompts, opts, verifier(fs) if accept is None else accept)


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


def solve(model, fs: Sequence[Poly], opts: DecodeOptions) -> list[tuple[Answer, ...]]:
    """Prompt each f (in the model's prompt format), decode them in one batch, verify. Raises ValueError for
    input that cannot fit.

    With opts.samples = N (sample decoder) each f gets N rows in the batch and its answers are all of their
    samples, best score first (best-of-N with verification)."""
    result = run_to_completion(decode_polynomials(model, fs, opts))
    return [rank_answers(f, hyps) for f, hyps in zip(fs, result.hypotheses)]
