"""Beam search, batched over problems, as a generator of Step events (decode.py states the rule it follows:
Hugging Face generate() with num_beams=K, do_sample=False, early_stopping=False).

Each step has a tensor half (_select: the top 2K candidates of every problem at once, on the device; with
step="fused" the same operations run in one C++ call, fused_step.cpp's beam_select) and a Python half
(_advance_problems: finished hypotheses, early stop, the Step's beams and the parent rows the session keeps).

With opts.stop_on_verified and an acceptance check `accept(problem, ids) -> bool`, a problem also stops at
the first step where a hypothesis that ends with END and joins its finished list is accepted; its rows leave
the batch at once, like a problem that is complete. Until a problem stops, its beams are those of the full
search, so an acceptance check that never accepts gives exactly plain beam search.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Generator

import torch
import torch.nn.functional as F

from ..device import phase, step_range
from ..tokenizer import SEP_ID
from .events import UNREACHABLE, Accept, Beam, Decoded, Hypothesis, Step
from .options import DecodeOptions
from .session import grad_mode, open_session


@dataclass
class _Problem:
    """Python-side bookkeeping of one problem's beams (the tensors live in the session)."""
    index: int
    ids: list[tuple[int, ...]]     # live beams' generated ids, by slot
    where: list[int]               # index of each live slot in the previous Step.beams (-1: not shown)
    finished: list[tuple[float, Hypothesis]]

    def add_finished(self, score: float, hyp: Hypothesis, width: int) -> bool:
        """Keep the best `width` finished hypotheses; True when `hyp` is among them."""
        entry = (score, hyp)
        self.finished.append(entry)
        self.finished.sort(key=lambda x: -x[0])  # stable: earlier hypotheses win ties, like HF's merge
        del self.finished[width:]
        return any(e is entry for e in self.finished)


def beam_search(model, prompts, opts: DecodeOptions, accept: Accept | None = None,
                store=None) -> Generator[Step, None, Decoded]:
    """store: (PromptStore, problems) for a cascade's shared prefill (session.open_session)."""
    K, V = opts.width, model.config.vocab_size
    accept = accept if opts.stop_on_verified else None
    sess = open_session(model, prompts, opts, store)
    fused_select = sess.fused_beam_select()  # C++ selection where the step is fused, else None
    problems = [_Problem(b, [()] * K, [-1] * K, []) for b in range(len(prompts))]
    active = list(problems)
    steps, prefill_ms, live_tok, live_scores = [], 0.0, None, None
    for step in range(opts.max_new):
        with step_range(step):  # one profiler step per decode step
            t0 = time.perf_counter()
            last = step == opts.max_new - 1
            with grad_mode(opts.grad_mode):
                if step == 0:
                    logprobs = F.log_softmax(sess.prefill().float(), dim=-1)  # (G, V)
                    prefill_ms = sess.elapsed_since(t0)
                    start = logprobs.new_full((K,), -1e9)
                    start[0] = 0.0  # HF: only the first copy of the prompt may pick tokens at step 0
                    cand = logprobs[:, None, :] + start[None, :, None]  # (G, K, V)
                    sess.expand(K)
                elif fused_select is not None:  # log-softmax and the tensor half below in one C++ call
                    logits = sess.step(live_tok)
                else:
                    logprobs = F.log_softmax(sess.step(live_tok).float(), dim=-1)
                    cand = logprobs.view(len(active), K, V) + live_scores[:, :, None]
                with phase("beam_select"):
                    if step > 0 and fused_select is not None:
                        matrix, live_scores, live_tok, logprobs = fused_select(
                            logits, live_scores, K, step + 1, opts.length_penalty, last, SEP_ID)
                    else:
                        sel = _select(cand.view(len(active), K * V), K, V, step + 1, opts.length_penalty, last)
                        live_scores, live_tok = sel["live_scores"], sel["live_tok"]
                        matrix = _host_matrix(sel)
                    host = _split_host(matrix)
                    if opts.alternatives:
                        host["alternatives"] = _alternatives(logprobs, opts.alternatives, K if step == 0 else 1)
            beams, keep, parents, stops = _advance_problems(active, host, K, last, accept)
            active = [active[i] for i in keep]
            if active:
                with grad_mode(opts.grad_mode):
                    sess.select(parents, keep_problems=keep)
                    if len(keep) < len(host["best"]):
                        rows = torch.tensor(keep, device=live_tok.device)
                        live_scores, live_tok = live_scores[rows], live_tok[rows]
                    live_tok = live_tok.reshape(-1)
            ev = Step(step, tuple(beams), sess.elapsed_since(t0), sess.cache_bytes, tuple(stops))
        steps.append(ev)
        yield ev
        if not active:
            break
    hyps = tuple(tuple(h for _, h in p.finished) for p in problems)
    return Decoded(hyps, tuple(steps), prefill_ms, sum(s.elapsed_ms for s in steps))


def _select(cand: torch.Tensor, K: int, V: int, length: int, length_penalty: float, last: bool) -> dict:
    """The tensor half of one beam step, for G problems at once. cand (G, K*V) cumulative log-probs."""
    top_scores, top_idx = cand.topk(2 * K, dim=-1)  # (G, 2K), best first
    src, tok = top_idx // V, top_idx % V
    ends = torch.ones_like(tok, dtype=torch.bool) if last else tok == SEP_ID
    running = top_scores + ends.float() * -1e9  # ended candidates cannot live on
    nxt = running.topk(K, dim=-1).indices  # (G, K): the first K that did not end
    live_scores = running.gather(1, nxt)
    best = live_scores[:, 0] / float(length ** length_penalty)  # HF's early-stop estimate
    return {"top_scores": top_scores, "ranked": top_scores / float(length ** length_penalty), "src": src,
            "tok": tok, "ends": ends, "nxt": nxt, "live_scores": live_scores, "live_src": src.gather(1, nxt),
            "live_tok": tok.gather(1, nxt), "best": best}


HOST_FIELDS = (("top_scores", float), ("ranked", float), ("src", int), ("tok", int), ("ends", bool), ("nxt", int),
               ("live_scores", float), ("live_src", int), ("best", float))


def _host_matrix(sel: dict) -> torch.Tensor:
    """Every field _advance_problems reads in one float32 (G, columns) tensor, for ONE device-to-host transfer
    (ids and indices < 2**24 are exact there; the scores are float32 already). fused_step.cpp's beam_select
    builds the same matrix."""
    return torch.cat([sel[name].reshape(sel[name].size(0), -1).to(torch.float32) for name, _ in HOST_FIELDS], dim=1)


def _split_host(matrix: torch.Tensor) -> dict:
    """The host matrix as per-problem Python lists, field by field (K = columns // 13: 2K for the first five
    fields, K for the next three, 1 for best)."""
    rows = matrix.tolist()
    K = matrix.size(1) // 13
    host, lo = {}, 0
    for (name, kind), width in zip(HOST_FIELDS, (2 * K,) * 5 + (K,) * 3 + (1,)):
        hi = lo + width
        host[name] = [row[lo:hi] if kind is float else list(map(kind, row[lo:hi])) for row in rows]
        lo = hi
    host["best"] = [row[0] for row in host["best"]]
    return host


def _alternatives(logprobs: torch.Tensor, n: int, repeat: int) -> list[tuple[tuple[int, float], ...]]:
    """The n best (token, log-prob) of every row of logprobs (R, V), each row repeated `repeat` times (the
    prefill's one row per problem stands for all K slots at step 0)."""
    top = logprobs.topk(n, dim=-1)
    ids, lps = top.indices.repeat_interleave(repeat, 0).tolist(), top.values.repeat_interleave(repeat, 0).tolist()
    return [tuple(zip(i, lp)) for i, lp in zip(ids, lps)]


def _advance_problems(active: list[_Problem], host: dict, K: int, last: bool, accept: Accept | None = None):
    """The Python half: finished hypotheses, live beams' ids, early stop, Step beams, parent rows, and why
    each problem that is done stopped."""
    beams, keep, parents, stops = [], [], [], []
    alts = host.get("alternatives")
    for g, p in enumerate(active):
        verified = False
        for c in range(K):  # only the top K candidates may finish (HF's top_num_beam_mask)
            score = host["top_scores"][g][c]
            if host["ends"][g][c] and score > UNREACHABLE:
                s, t = host["src"][g][c], host["tok"][g][c]
                ended = t == SEP_ID
                ids = p.ids[s] + (t,)
                hyp = Hypothesis(ids[:-1] if ended else ids, host["ranked"][g][c], ended)
                kept = p.add_finished(host["ranked"][g][c], hyp, K)
                ok = accept is not None and ended and kept and not verified and accept(p.index, hyp.ids)
                verified = verified or ok
                beams.append(Beam(p.index, ids, score, p.where[s], True, ok, alts[g * K + s] if alts else ()))
        new_ids, new_where = [], []
        live_src = host["live_src"][g]
        for j in range(K):
            s, score = live_src[j], host["live_scores"][g][j]
            new_ids.append(p.ids[s] + (host["tok"][g][host["nxt"][g][j]],))
            if score > UNREACHABLE and not last:
                new_where.append(len(beams))
                beams.append(Beam(p.index, new_ids[-1], score, p.where[s], False,
                                  alternatives=alts[g * K + s] if alts else ()))
            else:
                new_where.append(-1)
        p.ids, p.where = new_ids, new_where
        full = len(p.finished) == K
        improvable = host["best"][g] > (p.finished[-1][0] if full else -1e9)
        if not last and improvable and not verified:
            keep.append(g)
            parents.extend(g * K + s for s in live_src)
        else:
            stops.append((p.index, "verified" if verified else "max_new" if last else "complete"))
    return beams, keep, parents, stops
