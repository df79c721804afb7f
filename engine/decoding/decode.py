"""The front door of decoding: check the prompts, run greedy, sample, beam or a cascade as a generator of step
events.

    gen = decode(model, prompts, DecodeOptions(decoder="beam", width=10))
    for step in gen: ...                     # a Step per generated position (the UI streams these)
    result = run_to_completion(gen)          # or drive it to the end and get the Decoded

Every option (cache strategy, beam cache handling, attention backend, mask reuse, grad mode, the
seed's one-beam-at-a-time loop) changes speed only; the tokens and scores stay the same.
stop_on_verified and cascades consult an acceptance check `accept(problem, ids) -> bool` (for decomposition:
answers.verifier, which decode_polynomials passes), and stop or skip work where an answer was accepted.
Beam search (beam.py) follows Hugging Face generate() (num_beams=K, do_sample=False, early_stopping=False):
per problem the top 2K (beam, token) candidates by cumulative log-prob; a candidate ending with
END and ranked < K joins the finished hypotheses (best K kept by score / len ** length_penalty,
len counting END); the first K others live on; a problem is done when it holds K finished and
its best live beam cannot beat the worst of them, or at max_new, where the top K are final.
"""
from __future__ import annotations

from typing import Callable, Generator, Sequence

from .beam import beam_search
from .cascade import cascade
from .events import Accept, Decoded, Step
from .greedy import greedy_or_sample
from .options import DecodeOptions


def check_prompts(model, prompts: Sequence[Sequence[int]], opts: DecodeOptions) -> None:
    """Clear errors for input that cannot be decoded (before any tensor work)."""
    if len(prompts) == 0:
        raise ValueError("no prompts to decode")
    limit = model.config.block_size
    for n, p in enumerate(prompts):
        if len(p) == 0:
            raise ValueError(f"prompt {n} is empty")
        if any(not 0 <= int(t) < model.config.vocab_size for t in p):
            raise ValueError(f"prompt {n} holds a token id outside 0..{model.config.vocab_size - 1}")
        if len(p) + opts.max_new > limit:
            raise ValueError(f"prompt {n} is {len(p)} tokens; with max_new={opts.max_new} that exceeds the model's "
                             f"block size of {limit} positions: use a shorter polynomial or lower max_new to "
                             f"{max(limit - len(p), 0)}")


def decode(model, prompts: Sequence[Sequence[int]], opts: DecodeOptions,
           accept: Accept | None = None) -> Generator[Step, None, Decoded]:
    """prompts: token ids each ending with SEP (⁇). Yields a Step per decode step; returns Decoded.

    accept(problem, ids): the acceptance check that stop_on_verified and cascades need (problem = index
    into prompts, ids = an answer without END); other options never call it."""
    check_prompts(model, prompts, opts)
    if opts.needs_accept and accept is None:
        what = "a cascade" if opts.decoder == "cascade" else "stop_on_verified"
        raise ValueError(f"{what} needs an acceptance check: pass accept=, e.g. the polynomial verifier "
                         f"(decode_polynomials does)")
    if opts.decoder == "cascade":
        return cascade(model, prompts, opts, accept)
    if opts.decoder == "beam":
        return beam_search(model, prompts, opts, accept)
    return greedy_or_sample(model, prompts, opts, accept)


def run_to_completion(gen: Generator[Step, None, Decoded], check: Callable[[], None] | None = None) -> Decoded:
    """Drive a decoder to its end and return its Decoded. `check` runs before every step: a long job
    stops between steps by raising from it (the app's cancel does)."""
    while True:
        if check is not None:
            check()
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
