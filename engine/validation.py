"""Validation during training: fresh problems each round, greedy verified accuracy with the engine's cached
decoder, and the teacher-forced answer loss. Under torchrun every process checks its share of the same problems
and all of them get the same totals."""
from __future__ import annotations

import random

import torch
import torch.nn.functional as F

from .batches import make_batch
from .data import Problem, random_problem
from .decoding import best_answer, preset, solve
from .distributed import Dist, gather_rows
from .model import GPT

VAL_SEED = 999_001  # validation problems come from their own stream, never the training one


def validation_problems(pairs, n: int, step: int) -> dict[tuple[int, int], list[Problem]]:
    """Fresh problems for each validation round (a stream seeded by the step, disjoint from training)."""
    rng = random.Random(f"{VAL_SEED}:{step}")
    return {pair: [random_problem(rng, *pair, canonical=True) for _ in range(n)] for pair in pairs}


@torch.inference_mode()
def verified_count(model: GPT, problems: list[Problem], batch_size: int = 64) -> int:
    """How many greedy answers verify, with the engine's cached decoder (the same one users run)."""
    opts = preset("fastest", decoder="greedy", width=1, max_new=40)
    ok = 0
    for lo in range(0, len(problems), batch_size):
        for ranked in solve(model, [p.f for p in problems[lo: lo + batch_size]], opts):
            best = best_answer(ranked)
            ok += bool(best and best.verified)
    return ok


def verified_accuracy(model: GPT, problems: list[Problem], batch_size: int = 64) -> float:
    """Greedy verified accuracy."""
    return verified_count(model, problems, batch_size) / max(1, len(problems))


@torch.inference_mode()
def answer_loss_sum(model: GPT, problems: list[Problem]) -> tuple[float, int]:
    """(summed cross-entropy, answer tokens), teacher-forced: a smooth curve while accuracy is still 0."""
    if not problems:
        return 0.0, 0
    device = next(model.parameters()).device
    x, y = (t.to(device) for t in make_batch(problems, model.config.prompt_format, model.config.answer_order))
    select = y != -1
    loss = F.cross_entropy(model(x, select=select).float(), y[select], reduction="sum")
    return loss.item(), int(select.sum())


def answer_loss(model: GPT, problems: list[Problem]) -> float:
    """Mean cross-entropy per answer token."""
    total, n = answer_loss_sum(model, problems)
    return total / max(1, n)


def validate(model: GPT, pairs, n: int, step: int, d: Dist = Dist()) -> dict[tuple[int, int], tuple[float, float]]:
    """(greedy verified accuracy, answer loss) per pair on n fresh problems each; with several processes each
    checks every W-th problem and the totals are summed, so all of them see the same result."""
    model.eval()
    problems = validation_problems(pairs, n, step)
    rows = []
    for probs in problems.values():
        mine = probs[d.rank::d.world_size]
        rows += [verified_count(model, mine), len(mine), *answer_loss_sum(model, mine)]
    totals = gather_rows(d, rows, next(model.parameters()).device).sum(0).view(-1, 4).tolist()
    model.train()
    return {pair: (ok / max(1, k), loss / max(1, tokens)) for pair, (ok, k, loss, tokens) in zip(problems, totals)}
