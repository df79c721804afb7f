"""Validation during training: fresh problems each round, greedy verified accuracy with the engine's cached
decoder, and the teacher-forced answer loss."""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from .batches import make_batch
from .data import Problem, random_problem
from .decoding import best_answer, preset, solve
from .model import GPT

VAL_SEED = 999_001  # validation problems come from their own stream, never the training one


def validation_problems(pairs, n: int, step: int) -> dict[tuple[int, int], list[Problem]]:
    """Fresh problems for each validation round (a stream seeded by the step, disjoint from training)."""
    rng = random.Random(f"{VAL_SEED}:{step}")
    return {pair: [random_problem(rng, *pair, canonical=True) for _ in range(n)] for pair in pairs}


@torch.inference_mode()
def verified_accuracy(model: GPT, problems: list[Problem], batch_size: int = 64) -> float:
    """Greedy verified accuracy with the engine's cached decoder (the same one users run)."""
    opts = preset("fastest", decoder="greedy", width=1, max_new=40)
    ok = 0
    for lo in range(0, len(problems), batch_size):
        for ranked in solve(model, [p.f for p in problems[lo: lo + batch_size]], opts):
            best = best_answer(ranked)
            ok += bool(best and best.verified)
    return ok / max(1, len(problems))


@torch.inference_mode()
def answer_loss(model: GPT, problems: list[Problem]) -> float:
    """Mean cross-entropy per answer token, teacher-forced (a smooth curve while accuracy is still 0)."""
    device = next(model.parameters()).device
    x, y = (t.to(device) for t in make_batch(problems, model.config.prompt_format))
    select = y != -1
    return F.cross_entropy(model(x, select=select).float(), y[select]).item()


def validate(model: GPT, pairs, n: int, step: int) -> dict[tuple[int, int], tuple[float, float]]:
    """(greedy verified accuracy, answer loss) per pair on n fresh problems each."""
    model.eval()
    out = {pair: (verified_accuracy(model, probs), answer_loss(model, probs))
           for pair, probs in validation_problems(pairs, n, step).items()}
    model.train()
    return out
