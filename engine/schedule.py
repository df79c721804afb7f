"""How a training run spends its budget: the warm-up / stable / decay (WSD) learning rate, and a degree-pair
mix that shifts toward the pairs furthest below their targets.

WSD holds the learning rate constant after the warm-up and cools it down linearly over the last `cooldown`
fraction of the budget. The state just before the cool-down is kept, so a release can be made at any budget
and training continues from that state when the budget grows (the cool-down is then redone at the new end).
"""
from __future__ import annotations

# Aim per degree pair (greedy verified accuracy): 1.5x the seed system's published figures, (2,2) at 90%.
TARGETS: dict[tuple[int, int], float] = {
    (2, 2): 0.90, (2, 3): 0.35, (2, 4): 0.14, (3, 2): 0.66, (3, 3): 0.33, (3, 4): 0.15,
    (4, 2): 0.74, (4, 3): 0.27, (4, 4): 0.15,
}


def progress(step: int, elapsed: float, args) -> float:
    """Fraction of the budget done: by steps, or by training time when --minutes is set (further one wins)."""
    by_steps = step / args.max_steps if args.max_steps else 0.0
    return max(by_steps, elapsed / (60 * args.minutes)) if args.minutes else by_steps


def in_cooldown(step: int, elapsed: float, args) -> bool:
    return progress(step, elapsed, args) >= 1.0 - args.cooldown


def lr_at(step: int, elapsed: float, args, warm_from: int = 0) -> float:
    """Linear warm-up over `warmup` steps, constant `lr`, then a linear decay to `min_lr_frac * lr` over the
    last `cooldown` of the budget. A run started with --init (fresh optimizer moments) warms up again from
    its first step (`warm_from`)."""
    warm = min(1.0, (step - warm_from + 1) / args.warmup) if args.warmup else 1.0
    t = progress(step, elapsed, args)
    start = 1.0 - args.cooldown
    decay = 1.0 if t < start else 1.0 - (1.0 - args.min_lr_frac) * min(1.0, (t - start) / max(1e-9, args.cooldown))
    return args.lr * warm * decay


def adapt_mix(mix: dict[tuple[int, int], float], accuracy: dict[tuple[int, int], float], floor: float,
              targets: dict[tuple[int, int], float] = TARGETS, smoothing: float = 0.5) -> dict[tuple[int, int], float]:
    """A new share of steps per pair: proportional to how far each pair is below its target (relative gap,
    1 - accuracy / target, at least 0.05 so a pair at its target keeps some weight), every share at least
    `floor`, blended with the old mix so one noisy validation round cannot swing it."""
    gaps = {p: max(0.05, 1.0 - accuracy.get(p, 0.0) / targets.get(p, 1.0)) for p in mix}
    total = sum(gaps.values())
    free = 1.0 - floor * len(mix)
    if free < 0:
        raise ValueError(f"a floor of {floor} per pair is more than the whole mix for {len(mix)} pairs")
    new = {p: floor + free * g / total for p, g in gaps.items()}
    blended = {p: smoothing * mix[p] + (1 - smoothing) * new[p] for p in mix}
    s = sum(blended.values())
    return {p: w / s for p, w in blended.items()}


def format_mix(mix: dict[tuple[int, int], float]) -> str:
    return ",".join(f"{i}_{j}:{w:.4f}" for (i, j), w in mix.items())


class StepClock:
    """Training time per step that leaves out pauses. A step during which the process was stopped (SIGSTOP, e.g.
    while a benchmark times on idle cores) and continued (SIGCONT) counts as the median of the recent steps, so
    the budget, the schedule and the logged minutes hold training only."""

    def __init__(self, keep: int = 25):
        self.recent: list[float] = []
        self.keep, self.paused = keep, False

    def continued(self, *_) -> None:  # the SIGCONT handler
        self.paused = True

    def seconds(self, measured: float) -> float:
        dt = measured
        if self.paused and self.recent:
            dt = min(measured, sorted(self.recent)[len(self.recent) // 2])
        self.paused = False
        self.recent = (self.recent + [dt])[-self.keep:]
        return dt
