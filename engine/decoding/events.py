"""What the decoders yield and return: frozen step events and results (tuples of ints and floats, no tensors,
so a UI session can keep them)."""
from __future__ import annotations

from dataclasses import dataclass

UNREACHABLE = -1e8  # HF parks impossible beams at -1e9; anything below this is not shown


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
    elapsed_ms: float              # wall time of this step (device synchronised; step 0 includes the prefill)
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
