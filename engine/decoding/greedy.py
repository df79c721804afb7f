"""Greedy decoding and sampling: one row per problem, finished problems leave the batch."""
from __future__ import annotations

import time
from typing import Generator

import torch
import torch.nn.functional as F

from ..device import phase
from ..tokenizer import SEP_ID
from .events import Beam, Decoded, Hypothesis, Step
from .options import DecodeOptions
from .session import grad_mode, open_session


def sample_next(logits: torch.Tensor, generator: torch.Generator, temperature: float = 1.0,
                top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """(B, V) logits -> (B,) ids drawn after temperature, top-k and top-p (nucleus) filtering."""
    logits = logits / temperature
    if 0 < top_k < logits.size(-1):
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs >= top_p  # keep the smallest prefix reaching top_p
        logits = logits.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(1)


def greedy_or_sample(model, prompts, opts: DecodeOptions) -> Generator[Step, None, Decoded]:
    """Greedy or sampling: one row per problem; finished problems leave the batch.

    Scores are the model's own log-probs of the chosen tokens (before temperature, top-k, top-p).
    """
    sess = open_session(model, prompts, opts)
    gen = None
    if opts.decoder == "sample":
        gen = torch.Generator(device=sess.device).manual_seed(opts.seed)
    B = len(prompts)
    active = list(range(B))  # problem of each row
    ids: list[tuple[int, ...]] = [()] * B
    scores = [0.0] * B
    where = {}  # problem -> index into the previous Step.beams
    hyps: list[tuple[Hypothesis, ...]] = [()] * B
    steps, prefill_ms, tok = [], 0.0, None
    for step in range(opts.max_new):
        t0 = time.perf_counter()
        with grad_mode(opts.grad_mode):
            if step == 0:
                logits = sess.prefill()
                prefill_ms = sess.elapsed_since(t0)
            else:
                logits = sess.step(tok)
            with phase("beam_select"):
                logprobs = F.log_softmax(logits.float(), dim=-1)
                if gen is None:
                    tok = logprobs.argmax(dim=-1)
                else:
                    tok = sample_next(logits.float(), gen, opts.temperature, opts.top_k, opts.top_p)
                picked = logprobs.gather(1, tok[:, None]).squeeze(1)
                tok_list, lp_list = tok.tolist(), picked.tolist()
        beams, keep = [], []
        for r, b in enumerate(active):
            ids[b] = ids[b] + (tok_list[r],)
            scores[b] += lp_list[r]
            ended = tok_list[r] == SEP_ID
            beams.append(Beam(b, ids[b], scores[b], where.get(b, -1), ended))
            if ended or step == opts.max_new - 1:
                hyps[b] = (Hypothesis(ids[b][:-1] if ended else ids[b], scores[b], ended),)
            else:
                keep.append(r)
        where = {beam.problem: i for i, beam in enumerate(beams)}
        active = [active[r] for r in keep]
        if active and len(keep) < len(tok_list):
            with grad_mode(opts.grad_mode):
                sess.select(keep, keep_problems=keep)
                tok = tok[torch.tensor(keep, device=tok.device)]
        ev = Step(step, tuple(beams), sess.elapsed_since(t0), sess.cache_bytes)
        steps.append(ev)
        yield ev
        if not active:
            break
    return Decoded(tuple(hyps), tuple(steps), prefill_ms, sum(s.elapsed_ms for s in steps))
