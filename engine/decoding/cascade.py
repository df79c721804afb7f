"""Cascade decoding: cheap search first, wider search only where it is needed.

    options(decoder="cascade", cascade="greedy > beam 10 > beam 64")

Stage 1 decodes every problem; each later stage decodes, in one batch, only the problems none of whose
hypotheses the acceptance check accepted so far. A problem's hypotheses are those of the stage that settled
it (the first stage with an accepted hypothesis, else the last stage run). Each stage is that decoder run
alone on those problems (every other option, stop_on_verified included, as given), except that the prompts go
through the model once: the later stages start from the first stage's prefill (its keys, values and next-token
logits, cache.PromptStore) instead of computing it again. One problem at a time that is the same computation;
in a batch the first stage's padding and row count may differ from a later stage's, which moves float rounding
only (the equivalence tests hold cascades to the same tokens, like every option). reuse_prefill=False
computes every stage's prefill (the seed's one-beam-at-a-time loop and cache="none" always do).
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Generator

from .beam import beam_search
from .cache import PromptStore
from .events import Accept, Decoded, Hypothesis, Step
from .greedy import greedy_or_sample
from .options import DecodeOptions


def cascade(model, prompts, opts: DecodeOptions, accept: Accept,
            reuse_prefill: bool = True) -> Generator[Step, None, Decoded]:
    """Yields every stage's Steps (Beam.problem and stops in the caller's problem numbering, Step.stage set);
    returns a Decoded whose stage_of says which stage each problem's hypotheses come from."""
    B = len(prompts)
    shared = PromptStore() if reuse_prefill and len(opts.stages()) > 1 else None  # filled by the first stage
    hyps: list[tuple[Hypothesis, ...]] = [()] * B
    stage_of = [0] * B
    todo = list(range(B))  # problems not settled yet
    steps: list[Step] = []
    prefill_ms = check_ms = 0.0
    for k, stage in enumerate(opts.stages()):
        run = beam_search if stage.decoder == "beam" else greedy_or_sample
        local = list(todo)
        gen = run(model, [prompts[b] for b in local], stage, lambda i, ids, local=local: accept(local[i], ids),
                  None if shared is None else (shared, local))
        while True:
            try:
                ev = next(gen)
            except StopIteration as stop:
                result: Decoded = stop.value
                break
            ev = replace(ev, stage=k, beams=tuple(replace(b, problem=local[b.problem]) for b in ev.beams),
                         stops=tuple((local[i], why) for i, why in ev.stops))
            steps.append(ev)
            yield ev
        prefill_ms += result.prefill_ms
        t0 = time.perf_counter()
        todo = []
        for i, b in enumerate(local):
            hyps[b], stage_of[b] = result.hypotheses[i], k
            if not any(accept(b, h.ids) for h in hyps[b]):
                todo.append(b)
        check_ms += (time.perf_counter() - t0) * 1000.0
        if not todo:
            break
    return Decoded(tuple(hyps), tuple(steps), prefill_ms, sum(s.elapsed_ms for s in steps) + check_ms,
                   tuple(stage_of))
