"""Training data: right-padded batches with the loss on answer tokens, and the single-pair batch stream
(generated or read from files)."""
from __future__ import annotations

import random

import torch

from .data import COEFF_RANGE, Problem, parse_pair, random_problem, read_dataset
from .prompt import prompt_ids
from .tokenizer import PAD_ID, SEP_ID, encode

SMALL_RANGE = 5  # "small" problems, as people type them: P and Q coefficients in [-5, 5]

def problem_ids(p: Problem, prompt_format: str = "seed") -> tuple[list[int], list[int]]:
    """(prompt ids ending with ⁇, answer ids ending with ⁇); the answer is always seed tokens."""
    return prompt_ids(p.f, prompt_format), encode(p.answer) + [SEP_ID]


def make_batch(problems: list[Problem], prompt_format: str = "seed") -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (x, y); y is -1 everywhere except where the next token is an answer token."""
    seqs = [problem_ids(p, prompt_format) for p in problems]
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

    def __init__(self, mix, batch_tokens: int, canonical: bool, seed: int, prompt_format: str,
                 files: list[str] | None = None, small_share: float = 0.0):
        self.mix, self.batch_tokens, self.canonical = mix, batch_tokens, canonical
        self.small_share = small_share  # batches whose P and Q coefficients lie in [-SMALL_RANGE, SMALL_RANGE]
        self.prompt_format = prompt_format
        self.rng = random.Random(seed)
        self.pool = None
        if files:
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
