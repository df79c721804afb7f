"""Decoders (greedy, sample, beam) as generators of frozen step events.

    gen = decode(model, prompts, DecodeOptions(decoder="beam", width=10))
    for step in gen: ...                     # a Step per generated position (the UI streams these)
    result = run_to_completion(gen)          # or drive it to the end and get the Decoded

Every option (cache strategy, beam cache handling, attention backend, mask reuse, grad mode, the
seed's one-beam-at-a-time loop) changes speed only; the tokens and scores stay the same.
Beam search (beam.py) follows Hugging Face generate() (num_beams=K, do_sample=False, early_stopping=False):
per problem the top 2K (beam, token) candidates by cumulative log-prob; a candidate ending with
END and ranked < K joins the finished hypotheses (best K kept by score / len ** length_penalty,
len counting END); the first K others live on; a problem is done when it holds K finished and
its best live beam cannot beat the worst of them, or at max_new, where the top K are final.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Generator, Sequence

import torch
import torch.nn.functional as F

from ..device import phase
from ..poly.core import Poly, PolynomialError, from_prefix_tokens, verify
from ..prompt import prompt_ids
from .session import BatchSession, SerialSession, grad_mode
from ..tokenizer import SEP_ID, TokenizerError, decode as decode_ids

DECODERS = ("greedy", "sample", "beam")
CACHES = ("none", "concat", "static")
BEAM_CACHES = ("clone", "gather", "shared-prefix")
ATTENTIONS = ("math", "sdpa")
GRAD_MODES = ("no_grad", "inference")
MAX_WIDTH = 64
UNREACHABLE = -1e8  # HF parks impossible beams at -1e9; anything below this is not shown


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

    def __post_init__(self):
        for name, choices in (("decoder", DECODERS), ("cache", CACHES), ("beam_cache", BEAM_CACHES),
                              ("attention", ATTENTIONS), ("grad_mode", GRAD_MODES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}; choose from {', '.join(choices)}")
        if not 1 <= self.width <= MAX_WIDTH:
            raise ValueError(f"width must be between 1 and {MAX_WIDTH}, got {self.width}")
        if self.max_new < 1:
            raise ValueError(f"max_new must be >= 1, got {self.max_new}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 = off), got {self.top_k}")


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


@dataclass(frozen=True)
class Answer:
    ids: tuple[int, ...]
    prefix: str                    # seed-format token text of Q ("" if nothing)
    score: float
    q: Poly | None                 # None when the tokens do not parse
    verified: bool
    outer: Poly | None             # the recovered P when verified
    reason: str                    # why not verified; "" when verified


DECODE_PRESETS: dict[str, DecodeOptions] = {
    # The seed's versions: V1 recomputes everything, V2 adds a growing cache, V3 preallocates.
    "V1": DecodeOptions(cache="none", beam_cache="clone", attention="math", grad_mode="no_grad", rebuild_masks=True),
    "V2": DecodeOptions(cache="concat", beam_cache="clone", attention="math", grad_mode="no_grad",
                        rebuild_masks=True),
    "V3": DecodeOptions(cache="static", beam_cache="gather", attention="sdpa", grad_mode="inference"),
    "fastest": DecodeOptions(cache="static", beam_cache="shared-prefix", attention="sdpa", grad_mode="inference"),
}


def preset(name: str, **overrides) -> DecodeOptions:
    """A named preset with some fields replaced (e.g. decoder/width)."""
    if name not in DECODE_PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {sorted(DECODE_PRESETS)}")
    return replace(DECODE_PRESETS[name], **overrides)


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


def decode(model, prompts: Sequence[Sequence[int]], opts: DecodeOptions) -> Generator[Step, None, Decoded]:
    """prompts: token ids each ending with SEP (⁇). Yields a Step per decode step; returns Decoded."""
    check_prompts(model, prompts, opts)
    if opts.decoder == "beam":
        from .beam import beam_search  # beam.py builds on this module's events and sessions
        return beam_search(model, prompts, opts)
    return _single(model, prompts, opts)


def run_to_completion(gen: Generator[Step, None, Decoded]) -> Decoded:
    """Drive a decoder to its end and return its Decoded."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _session(model, prompts, opts: DecodeOptions):
    cls = SerialSession if opts.one_at_a_time else BatchSession
    return cls(model, [list(map(int, p)) for p in prompts], opts)


# ---------------------------------------------------------------- greedy and sample

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


def _single(model, prompts, opts: DecodeOptions) -> Generator[Step, None, Decoded]:
    """Greedy or sampling: one row per problem; finished problems leave the batch.

    Scores are the model's own log-probs of the chosen tokens (before temperature, top-k, top-p).
    """
    sess = _session(model, prompts, opts)
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


# ---------------------------------------------------------------- answers

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
    """Encode each f, decode them in one batch, verify. Raises ValueError for input that cannot fit.

    samples > 1 (sample decoder): each f gets that many rows in the batch, and its answers are all of their
    hypotheses, best score first (best-of-N with verification)."""
    if samples < 1 or (samples > 1 and opts.decoder != "sample"):
        raise ValueError(f"samples={samples}: more than one sample per problem needs the sample decoder")
    prompts = [prompt_ids(f, model.config.prompt_format) for f in fs]
    result = run_to_completion(decode(model, [p for p in prompts for _ in range(samples)], opts))
    per_problem = [sorted((h for hs in result.hypotheses[k * samples:(k + 1) * samples] for h in hs),
                          key=lambda h: -h.score) for k in range(len(fs))]
    return [rank_answers(f, hyps) for f, hyps in zip(fs, per_problem)]
