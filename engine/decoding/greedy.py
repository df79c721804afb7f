"""Greedy decoding and sampling: one row per problem (N rows for best-of-N sampling); finished rows leave the
batch."""
from __future__ import annotations

import time
from typing import Generator

import torch
import torch.nn.functional as F

from ..device import phase, step_range
from ..tokenizer import SEP_ID
from .events import Accept, Beam, Decoded, Hypothesis, Step
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


def greedy_or_sample(model, prompts, opts: DecodeOptions, accept: Accept | None = None,
                     store=None) -> Generator[Step, None, Decoded]:
    """Greedy or sampling. Each problem is prefilled once and gets opts.samples rows (1 for greedy); a row
    leaves the batch when it emits END. A problem's hypotheses are its rows' answers, best score first.

    With opts.stop_on_verified and `accept`, a problem stops when one of its samples ends with an accepted
    answer: its other rows leave the batch at once (greedy's one row ends there anyway; the stop is only
    marked: Beam.accepted, reason "verified"). Rows leaving change the shape of later random
    draws, so the samples of the other problems in the batch may differ from a run without stops.
    Scores are the model's own log-probs of the chosen tokens (before temperature, top-k, top-p).
    store: (PromptStore, problems) for a cascade's shared prefill (session.open_session).
    """
    N = opts.beams
    accept = accept if opts.stop_on_verified else None
    sess = open_session(model, prompts, opts, store)
    gen = None
    if opts.decoder == "sample":
        gen = torch.Generator(device=sess.device).manual_seed(opts.seed)
    B = len(prompts)
    active = list(range(B * N))  # the slot (problem * N + sample) of each row
    ids: list[tuple[int, ...]] = [()] * (B * N)
    scores = [0.0] * (B * N)
    where = {}  # slot -> index into the previous Step.beams
    found: list[list[Hypothesis]] = [[] for _ in range(B)]  # per problem, in slot order
    steps, prefill_ms, tok = [], 0.0, None
    for step in range(opts.max_new):
        with step_range(step):  # one profiler step per decode step
            t0 = time.perf_counter()
            with grad_mode(opts.grad_mode):
                if step == 0:
                    logits = sess.prefill()
                    prefill_ms = sess.elapsed_since(t0)
                    if N > 1:
                        logits = logits.repeat_interleave(N, dim=0)
                        sess.expand(N)
                else:
                    logits = sess.step(tok)
                with phase("beam_select"):
                    logprobs = F.log_softmax(logits.float(), dim=-1)
                    if gen is None:
                        tok = logprobs.argmax(dim=-1)
                    else:
                        tok = sample_next(logits.float(), gen, opts.temperature, opts.top_k, opts.top_p)
                    picked = logprobs.gather(1, tok[:, None]).squeeze(1)
                    # one host transfer a step: ids (< 2**24) are exact in float32, the log-probs are float32
                    tok_list, lp_list = torch.stack((tok.to(picked.dtype), picked)).tolist()
                    tok_list = [int(t) for t in tok_list]
                    alts = None
                    if opts.alternatives:
                        top = logprobs.topk(opts.alternatives, dim=-1)
                        alts = [tuple(zip(i, lp)) for i, lp in zip(top.indices.tolist(), top.values.tolist())]
            beams, done, verified = [], [], set()
            for r, slot in enumerate(active):
                b = slot // N
                ids[slot] = ids[slot] + (tok_list[r],)
                scores[slot] += lp_list[r]
                ended = tok_list[r] == SEP_ID
                ok = False
                if ended or step == opts.max_new - 1:
                    done.append(r)
                    hyp = Hypothesis(ids[slot][:-1] if ended else ids[slot], scores[slot], ended)
                    found[b].append(hyp)
                    ok = ended and accept is not None and b not in verified and accept(b, hyp.ids)
                    if ok:
                        verified.add(b)
                beams.append(Beam(b, ids[slot], scores[slot], where.get(slot, -1), ended, ok, alts[r] if alts else ()))
            where = {slot: i for i, slot in enumerate(active)}
            finished = set(done)
            keep = [r for r in range(len(active)) if r not in finished and active[r] // N not in verified]
            left = {active[r] // N for r in keep}
            reason = "max_new" if step == opts.max_new - 1 else "end"
            stops = tuple((b, "verified" if b in verified else reason)
                          for b in dict.fromkeys(slot // N for slot in active) if b not in left)
            active = [active[r] for r in keep]
            if active and len(keep) < len(tok_list):
                with grad_mode(opts.grad_mode):
                    sess.select(keep, keep_problems=sorted({a // N for a in active}))
                    tok = tok[torch.tensor(keep, device=tok.device)]
            ev = Step(step, tuple(beams), sess.elapsed_since(t0), sess.cache_bytes, stops)
        steps.append(ev)
        yield ev
        if not active:
            break
    hyps = tuple(tuple(sorted(hs, key=lambda h: -h.score)) for hs in found)  # stable: slot order on ties
    return Decoded(hyps, tuple(steps), prefill_ms, sum(s.elapsed_ms for s in steps))
