"""Decoders (greedy, sample, beam) as generators of frozen step events.

CONTRACT (shared by engine, profiler/bench and demo; keep names and fields stable).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Generator, Sequence

from .polynomial import Poly

DECODERS = ("greedy", "sample", "beam")
CACHES = ("none", "concat", "static")
BEAM_CACHES = ("clone", "gather", "shared-prefix")
ATTENTIONS = ("math", "sdpa")
MAX_WIDTH = 64


@dataclass(frozen=True)
class DecodeOptions:
    decoder: str = "beam"          # greedy | sample | beam
    width: int = 10                # beams per problem (beam only; greedy/sample use 1)
    cache: str = "static"          # none | concat | static
    beam_cache: str = "gather"     # clone | gather | shared-prefix
    attention: str = "sdpa"        # math | sdpa
    max_new: int = 40              # most tokens generated per problem, END included
    temperature: float = 1.0       # sample only
    top_k: int = 0                 # sample only; 0 = off
    top_p: float = 1.0             # sample only; 1.0 = off
    seed: int = 0                  # sample only; drives an explicit torch.Generator
    length_penalty: float = 0.0    # beam ranking: score / len(ids) ** length_penalty
    grad_mode: str = "inference"   # "no_grad" (V1, V2) or "inference" (V3, fastest)
    rebuild_masks: bool = False    # True (V1, V2): masks rebuilt every step; False: allocated once
    one_at_a_time: bool = False    # True: the seed's beam loop, one forward per beam (bench baseline)
    # __post_init__ validates every field and raises ValueError with a clear message.


@dataclass(frozen=True)
class Beam:
    problem: int                   # index of the prompt in the batch
    ids: tuple[int, ...]           # generated ids so far (END included once finished)
    score: float                   # sum of log-probs of ids
    parent: int                    # index into the previous Step.beams; -1 at step 0
    finished: bool                 # emitted END


@dataclass(frozen=True)
class Step:
    step: int                      # 0 = the token chosen from the prefill logits
    beams: tuple[Beam, ...]        # every live beam after this step plus the ones that finished at it
    elapsed_ms: float              # wall time of this step (device synchronised)
    cache_bytes: int               # bytes held by the KV cache after this step (0 for "none")


@dataclass(frozen=True)
class Hypothesis:
    ids: tuple[int, ...]           # generated ids without the END token
    score: float                   # ranking score (length penalty applied)
    finished: bool                 # False when cut by max_new


@dataclass(frozen=True)
class Decoded:
    hypotheses: tuple[tuple[Hypothesis, ...], ...]  # per problem, best first (width of them for beam)
    steps: tuple[Step, ...]
    prefill_ms: float
    total_ms: float


@dataclass(frozen=True)
class Answer:
    ids: tuple[int, ...]
    prefix: str                    # seed-format token text of Q ("" if nothing)
    score: float
    q: Poly | None                 # None when the tokens do not parse
    verified: bool
    outer: Poly | None             # the recovered P when verified
    reason: str                    # why not verified; "" when verified


DECODE_PRESETS: dict[str, DecodeOptions] = {}  # "V1", "V2", "V3", "fastest"


def preset(name: str, **overrides) -> DecodeOptions:
    """A named preset with some fields replaced (e.g. decoder/width)."""
    if name not in DECODE_PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(DECODE_PRESETS)}")
    return replace(DECODE_PRESETS[name], **overrides)


def decode(model, prompts: Sequence[Sequence[int]], opts: DecodeOptions) -> Generator[Step, None, Decoded]:
    """prompts: token ids each ending with SEP (⁇). Yields a Step per decode step; returns Decoded."""
    raise NotImplementedError


def run_to_completion(gen: Generator[Step, None, Decoded]) -> Decoded:
    raise NotImplementedError


def rank_answers(f: Poly, hyps: Sequence[Hypothesis]) -> tuple[Answer, ...]:
    """Verify each hypothesis against f; keep the model's order."""
    raise NotImplementedError


def best_answer(answers: Sequence[Answer]) -> Answer | None:
    """The first verified answer, else the first answer, else None."""
    raise NotImplementedError


def solve(model, fs: Sequence[Poly], opts: DecodeOptions) -> list[tuple[Answer, ...]]:
    """Encode each f, decode them in one batch, verify. Raises ValueError for input that cannot fit."""
    raise NotImplementedError
