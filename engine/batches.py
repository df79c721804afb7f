"""Training data: right-padded batches with the loss on answer tokens, the single-pair batch stream (generated
or read from files), and the streams one process draws from.

Each optimizer step consumes `grad_accum` micro-batches (the global batch). Micro-batch s of every step comes
from stream s, its own random.Random, so the global batch does not depend on how many processes share it:
rank r of W draws streams r, r + W, r + 2W, ... Stream states are saved with the run, so a resume continues
every stream exactly, with any world size that divides the number of streams.
"""
from __future__ import annotations

import random

import torch

from .data import COEFF_RANGE, Problem, parse_pair, random_problem, read_dataset
from .distributed import Dist
from .prompt import answer_ids, prompt_ids
from .tokenizer import PAD_ID

SMALL_RANGE = 5  # "small" problems, as people type them: P and Q coefficients in [-5, 5]

def problem_ids(p: Problem, prompt_format: str = "seed",
                answer_order: str = "ascending") -> tuple[list[int], list[int]]:
    """(prompt ids ending with ⁇, answer ids ending with ⁇); the answer is always seed tokens."""
    return prompt_ids(p.f, prompt_format), answer_ids(p.q, answer_order)


def make_batch(problems: list[Problem], prompt_format: str = "seed",
               answer_order: str = "ascending") -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (x, y); y is -1 everywhere except where the next token is an answer token."""
    seqs = [problem_ids(p, prompt_format, answer_order) for p in problems]
    T = max(len(a) + len(b) for a, b in seqs) - 1
    x = torch.full((len(seqs), T), PAD_ID, dtype=torch.long)
    y = torch.full((len(seqs), T), -1, dtype=torch.long)
    for r, (prompt, answer) in enumerate(seqs):
        seq = prompt + answer
        x[r, : len(seq) - 1] = torch.tensor(seq[:-1])
        y[r, len(prompt) - 1: len(seq) - 1] = torch.tensor(answer)
    return x, y


def parse_mix(text: str) -> dict[tuple[int, int], float]:
    mix = {}
    for part in text.split(","):
        pair, _, w = part.partition(":")
        mix[parse_pair(pair)] = float(w) if w else 1.0
    total = sum(mix.values())
    if total <= 0:
        raise ValueError("--mix weights must sum to > 0")
    return {k: v / total for k, v in mix.items()}


class Batches:
    """An endless stream of single-pair batches, from a generator or from files. `mix` may change between
    batches (the adaptive mix)."""

    def __init__(self, mix, batch_tokens: int, canonical: bool, seed: int | str, prompt_format: str,
                 files: list[str] | None = None, small_share: float = 0.0, pool: list[Problem] | None = None):
        self.mix, self.batch_tokens, self.canonical = mix, batch_tokens, canonical
        self.small_share = small_share  # batches whose P and Q coefficients lie in [-SMALL_RANGE, SMALL_RANGE]
        self.prompt_format = prompt_format
        self.rng = random.Random(seed)
        self.pool = pool  # the problems read from files, sorted by prompt length (shared between streams)
        if files and pool is None:
            pool = [p for f in files for p in read_dataset(f)]
            self.pool = sorted(pool, key=lambda p: len(p.prompt))

    def _tokens(self, p: Problem) -> int:
        return len(prompt_ids(p.f, self.prompt_format)) + len(p.answer.split()) + 1

    def next(self) -> list[Problem]:
        if self.pool is not None:
            k = self.rng.randrange(len(self.pool))
            n = max(8, self.batch_tokens // (self._tokens(self.pool[k]) + 8))
            lo = max(0, min(k, len(self.pool) - n))
            return self.pool[lo: lo + n]
        (i, j), = self.rng.choices(list(self.mix), weights=list(self.mix.values()))
        r = SMALL_RANGE if self.small_share and self.rng.random() < self.small_share else COEFF_RANGE
        first = random_problem(self.rng, i, j, self.canonical, r)
        n = max(8, self.batch_tokens // (self._tokens(first) + 4))
        return [first] + [random_problem(self.rng, i, j, self.canonical, r) for _ in range(n - 1)]

    def get_state(self) -> list:
        """The stream's position as plain lists and ints (loads with torch.load(weights_only=True))."""
        version, internal, gauss = self.rng.getstate()
        return [version, list(internal), gauss]

    def set_state(self, state: list) -> None:
        version, internal, gauss = state
        self.rng.setstate((version, tuple(internal), gauss))


def stream_seed(seed: int, s: int) -> int | str:
    """Stream 0 is seeded exactly as a one-process run always was; stream s > 0 from (seed, s)."""
    return seed if s == 0 else f"{seed}:{s}"


class Streams:
    """The micro-batch streams one process draws from: global streams rank, rank + W, ... of `count`."""

    def __init__(self, count: int, d: Dist, seed: int, saved: list | None, **batches_kw):
        if count % d.world_size:
            raise ValueError(f"--grad-accum {count} cannot be split over {d.world_size} processes; give a multiple "
                             f"of {d.world_size} (the global batch is that many micro-batches of --batch-tokens)")
        self.count, self.ids = count, list(range(d.rank, count, d.world_size))
        self.local: list[Batches] = []
        for s in self.ids:
            b = Batches(seed=stream_seed(seed, s), pool=self.local[0].pool if self.local else None, **batches_kw)
            if saved is not None and s < len(saved):
                b.set_state(saved[s])
            self.local.append(b)

    @property
    def mix(self) -> dict[tuple[int, int], float]:
        return self.local[0].mix

    @mix.setter
    def mix(self, mix: dict[tuple[int, int], float]) -> None:
        for b in self.local:
            b.mix = mix

    @property
    def pool(self) -> list[Problem] | None:
        return self.local[0].pool

    def next(self) -> list[list[Problem]]:
        """This process's micro-batches of the next step."""
        return [b.next() for b in self.local]

    def states(self) -> dict[int, list]:
        return {s: b.get_state() for s, b in zip(self.ids, self.local)}
