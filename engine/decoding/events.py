"""What the decoders yield and return: frozen step events and results (tuples of ints and floats, no tensors,
so a UI session can keep them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

UNREACHABLE = -1e8  # HF parks impossible beams at -1e9; anything below this is not shown
# Why a problem stopped: "verified" (a finished answer passed the acceptance check: stop_on_verified),
# "end" (greedy or a sample emitted END), "complete" (beam: width answers finished and no live beam can beat
# them), "max_new" (the answer length cap).
STOP_REASONS = ("verified", "end", "complete", "max_new")
# The acceptance check a decoder may consult: (problem index in the batch, answer ids without END) -> accepted.
# For decomposition it is the polynomial verifier (answers.verifier).
Accept = Callable[[int, tuple[int, ...]], bool]


@dataclass(frozen=True)
class Beam:
    problem: int                   # index of the prompt in the batch
    ids: tuple[int, ...]           # generated ids so far (END included once finished)
    score: float                   # sum of log-probs of ids
    parent: int                    # index into the previous Step.beams; -1 at step 0
    finished: bool                 # emitted END
    accepted: bool = False         # finished and passed the acceptance check (stop_on_verified only)
    # With opts.alternatives = n: the n most likely (token id, log-prob) of the distribution this beam's last
    # token was drawn from (its parent's next-token distribution), best first; the chosen token may be among
    # them. Empty otherwise.
    alternatives: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class Step:
    step: int                      # 0 = the token chosen from the prefill logits
    beams: tuple[Beam, ...]        # every live beam after this step plus the ones that finished at it
    elapsed_ms: float              # wall time of this step (device synchronised; step 0 includes the prefill)
    cache_bytes: int               # bytes held by the KV cache after this step (0 for "none")
    stops: tuple[tuple[int, str], ...] = ()  # (problem, reason in STOP_REASONS) for each problem done at this step
    stage: int = 0                 # cascade: the index of the stage that ran this step (0 otherwise)


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
    stage_of: tuple[int, ...] = ()  # cascade: per problem, the stage whose hypotheses these are
