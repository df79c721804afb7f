"""The frontier suite: verified accuracy against milliseconds per problem, per search strategy and degree pair.

Strategies: greedy; beam search at several widths, with and without stop_on_verified; cascades (greedy ->
beam 10 -> beam 64, with and without stop_on_verified in its beam stages); best-of-N sampling with
verification. Every strategy decodes the same problems twice: batched (`batch` problems per call; a cascade
passes each batch through its stages) and one at a time. The time of a strategy is its wall time to a
verified answer: decoding plus checking answers in score order until one verifies (a search that stopped on
an accepted answer has checked it already). demo/figures.py draws the result as a Pareto chart.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import replace

from ..decoding import DEFAULT_CASCADE, decode_polynomials, preset, run_to_completion, verifier
from .util import Progress, Subject, answer_rule, max_new_for, problems, report, timed

FULL = {"pairs": ((2, 2), (3, 2), (4, 2)), "problems": 30, "batch": 15, "widths": (2, 4, 10, 32, 64),
        "samples": (8, 16), "cascade": DEFAULT_CASCADE, "plain_beam": 10, "wide_beam": 64}
SMOKE = {"pairs": ((2, 2),), "problems": 3, "batch": 3, "widths": (2, 4), "samples": (4,),
         "cascade": "greedy > beam 2 > beam 4", "plain_beam": 2, "wide_beam": 4}
MODES = ("batched", "one at a time")
SAMPLE_TEMPERATURE = 1.0


def strategies(grid: dict) -> list[tuple[str, object]]:
    """(label, options) of every strategy on the chart, cheapest first."""
    out = [("greedy", preset("fastest", decoder="greedy", width=1))]
    for w in grid["widths"]:
        out.append((f"beam {w}", preset("fastest", decoder="beam", width=w)))
        out.append((f"beam {w} stop", preset("fastest", decoder="beam", width=w, stop_on_verified=True)))
    out.append((f"cascade {_short(grid['cascade'])}", preset("fastest", decoder="cascade", cascade=grid["cascade"])))
    out.append((f"cascade {_short(grid['cascade'])} stop",
                preset("fastest", decoder="cascade", cascade=grid["cascade"], stop_on_verified=True)))
    for n in grid["samples"]:
        out.append((f"best of {n} stop", preset("fastest", decoder="sample", samples=n,
                                               temperature=SAMPLE_TEMPERATURE, stop_on_verified=True)))
    return out


def _short(cascade: str) -> str:
    """"greedy > beam 10 > beam 64" -> "greedy>10>64"."""
    return ">".join(s.strip().replace("beam ", "") for s in cascade.split(">"))


def _call(subject: Subject, fs: list, opts) -> tuple[list[bool], list[int], float, float]:
    """One decode call on the polynomials fs: per problem, verified and the decode steps it took part in; the
    call's milliseconds (decoding, then checking answers in score order until one verifies); and the
    milliseconds of those spent in answer checks (during the search and after it)."""
    check = verifier(fs)
    spent = [0.0]

    def accept(problem, ids):
        t0 = time.perf_counter()
        try:
            return check(problem, ids)
        finally:
            spent[0] += time.perf_counter() - t0

    def call():
        result = run_to_completion(decode_polynomials(subject.model, fs, opts, accept))
        return result, [any(accept(i, h.ids) for h in hyps) for i, hyps in enumerate(result.hypotheses)]

    ms, (result, verified) = timed(call, subject.device)
    seen = [0] * len(fs)
    for s in result.steps:
        for p in {b.problem for b in s.beams}:
            seen[p] += 1
    return verified, seen, ms, spent[0] * 1e3


def pareto(rows: list[dict]) -> None:
    """Mark each row that no other row of its pair and mode beats (at least as accurate and as fast, better
    in one) with "pareto": True."""
    for r in rows:
        r["pareto"] = not any(o is not r and o["pair"] == r["pair"] and o["mode"] == r["mode"]
                              and o["accuracy"] >= r["accuracy"] and o["ms_per_problem"] <= r["ms_per_problem"]
                              and (o["accuracy"] > r["accuracy"] or o["ms_per_problem"] < r["ms_per_problem"])
                              for o in rows)


def frontier(subject: Subject, runs: int, warmup: int, smoke: bool = False, pairs=None, n: int | None = None,
             progress: Progress | None = None) -> dict:
    grid = dict(SMOKE if smoke else FULL)
    if pairs:
        grid["pairs"] = tuple(pairs)
    if n is not None:
        grid["problems"] = n
    plan = strategies(grid)
    rows, times, checks, acc, steps, spreads = [], {}, {}, {}, {}, {}
    total = len(grid["pairs"]) * len(plan) * len(MODES) * runs
    done = 0
    for pair in grid["pairs"]:
        batch = problems(pair, grid["problems"])
        key = f"{pair[0]}_{pair[1]}"
        plan_here = [(label, replace(opts, max_new=max_new_for(subject, batch))) for label, opts in plan]
        for _ in range(warmup):
            for _, opts in plan_here:
                _call(subject, [p.f for p in batch[:2]], opts)
        for mode in MODES:
            group = grid["batch"] if mode == "batched" else 1
            calls = [[p.f for p in batch[lo: lo + group]] for lo in range(0, len(batch), group)]
            # Paired timing: every call (a batch, or one problem) runs every strategy in turn, the order rotated
            # from call to call and run to run, so close strategies (beam K against beam K stop) meet the same
            # machine and no strategy always follows the same one.
            # per strategy and call, every run's (milliseconds, of which checking answers)
            ms: dict[str, list[list[tuple[float, float]]]] = {label: [[] for _ in calls] for label, _ in plan_here}
            last: dict[str, list] = {label: [None] * len(calls) for label, _ in plan_here}
            for r in range(runs):
                report(progress, done / total, f"frontier {key}: {mode}, run {r + 1}/{runs}")
                for c, fs in enumerate(calls):
                    k = (r * len(calls) + c) % len(plan_here)
                    for label, opts in plan_here[k:] + plan_here[:k]:
                        ok, st, t, t_check = _call(subject, fs, opts)
                        ms[label][c].append((t, t_check))
                        last[label][c] = (ok, st)
                done += len(plan_here)
            for label, _ in plan_here:
                ok = [v for c in last[label] for v in c[0]]
                st = [v for c in last[label] for v in c[1]]
                # Each call's fastest run (timeit's rule: a slower run measured the machine, not the code), summed
                # (its checks: those of the same fastest run)
                fastest = [min(m) for m in ms[label]]
                times[key, label, mode] = sum(t for t, _ in fastest) / len(batch)
                checks[key, label, mode] = sum(t_check for _, t_check in fastest) / len(batch)
                spreads.setdefault(key, []).extend(max(m)[0] / min(m)[0] - 1 for m in ms[label] if len(m) > 1)
                mean = sum(t for m in ms[label] for t, _ in m) / runs / len(batch)
                acc[key, label, mode], steps[key, label, mode] = sum(ok) / len(ok), st
                rows.append({"pair": key, "mode": mode, "strategy": label, "problems": len(batch),
                             "verified": sum(ok), "accuracy": round(sum(ok) / len(ok), 4),
                             "ms_per_problem": round(times[key, label, mode], 2), "mean_ms_per_problem": round(mean, 2),
                             "check_ms_per_problem": round(checks[key, label, mode], 3),
                             "steps_per_problem": round(sum(st) / len(st), 2)})
    pareto(rows)
    summary = _summary(grid, times, checks, acc, steps, spreads)
    settings = {"pairs": [f"{i}_{j}" for i, j in grid["pairs"]], "problems_per_pair": grid["problems"],
                "batch": grid["batch"], "runs": runs, "warmup": warmup, "options": "preset fastest",
                "sample_temperature": SAMPLE_TEMPERATURE, "max_new": answer_rule(subject)}
    wide, plain, casc = grid["wide_beam"], grid["plain_beam"], _short(grid["cascade"])
    definitions = [
        "accuracy: share of problems with a verified answer (DESIGN.md's check); ms_per_problem: wall time to "
        "decode and to check answers in score order until one verifies, divided by the problems",
        f"ms_per_problem: every call (a batch, or one problem) timed in each of {runs} run(s); the fastest time of "
        "each call, summed (timeit's rule: on a shared machine a slower run measures the interference, not the "
        "code); mean_ms_per_problem: the mean over runs; each call runs every strategy in turn, the order rotated "
        "from call to call and run to run",
        f"batched: {grid['batch']} problems per call (a cascade passes each call's problems through its stages); "
        "one at a time: one problem per call",
        "stop: stop_on_verified, a problem leaves the batch at its first finished answer that verifies; "
        f"cascade {casc}: each stage decodes only the problems no earlier stage verified; best of N: N samples "
        "per problem in one batch, stopping at the first that verifies",
        "steps_per_problem: decode steps in which the problem still had live rows (summed over a cascade's stages)",
        "check_ms_per_problem: the part of ms_per_problem spent checking answers (DESIGN.md's verification), during "
        "the search (stop, cascades, best of N) and after it",
        "pareto: no other strategy of the same pair and mode is at least as accurate and as fast",
        f"summary: cascade_time_ratio = cascade {casc} time / beam {wide} time; cascade_accuracy_gap = beam "
        f"{wide} accuracy - cascade accuracy, in points; stop_on_verified_speedup = beam {plain} time / beam "
        f"{plain} stop time; stop_on_verified_saved_steps = share of beam {plain}'s decode steps the stop skips",
        "stop_check_share_max: the largest share of a stop search's time spent checking answers (its only work "
        "beyond the plain search's, over every width, pair and mode); run_to_run_spread: per pair, the median "
        "over every call of every strategy of (slowest run / fastest run - 1), the timing noise to read "
        "stop_slowest_speedup against",
    ]
    columns = ["pair", "mode", "strategy", "accuracy", "ms_per_problem", "mean_ms_per_problem", "check_ms_per_problem",
               "steps_per_problem", "pareto"]
    return {"suite": "frontier", "settings": settings, "definitions": definitions, "columns": columns, "rows": rows,
            "summary": summary, "notes": []}


def _summary(grid: dict, times: dict, checks: dict, acc: dict, steps: dict, spreads: dict) -> dict:
    wide, plain, casc = f"beam {grid['wide_beam']}", f"beam {grid['plain_beam']}", f"cascade {_short(grid['cascade'])}"
    pairs = [f"{i}_{j}" for i, j in grid["pairs"]]
    b, one = MODES

    def per_pair(fn, mode=b):
        return {k: round(fn(k, mode), 3) for k in pairs}

    out = {
        "cascade_time_ratio": per_pair(lambda k, m: times[k, casc, m] / times[k, wide, m]),
        "cascade_time_ratio_one_at_a_time": per_pair(lambda k, m: times[k, casc, m] / times[k, wide, m], one),
        "cascade_stop_time_ratio": per_pair(lambda k, m: times[k, casc + " stop", m] / times[k, wide, m]),
        "cascade_accuracy_gap": per_pair(lambda k, m: 100 * (acc[k, wide, m] - acc[k, casc, m])),
        "stop_on_verified_speedup": per_pair(lambda k, m: times[k, plain, m] / times[k, plain + " stop", m]),
        "stop_on_verified_speedup_one_at_a_time": per_pair(
            lambda k, m: times[k, plain, m] / times[k, plain + " stop", m], one),
        "stop_on_verified_accuracy_gap": per_pair(lambda k, m: 100 * (acc[k, plain, m] - acc[k, plain + " stop", m])),
        "stop_on_verified_saved_steps": per_pair(
            lambda k, m: 1 - sum(steps[k, plain + " stop", m]) / sum(steps[k, plain, m])),
    }
    ratios = [times[k, casc, m] / times[k, wide, m] for k in pairs for m in MODES]
    gaps = [100 * (acc[k, wide, m] - acc[k, casc, m]) for k in pairs for m in MODES]
    out["cascade_within_half_of_beam"] = all(r <= 0.5 for r in ratios) and all(g <= 0.5 for g in gaps)
    out["cascade_max_time_ratio"] = round(max(ratios), 3)
    speedups = [times[k, f"beam {w}", m] / times[k, f"beam {w} stop", m]
                for k in pairs for m in MODES for w in grid["widths"]]
    out["stop_never_slower"] = all(x >= 1 for x in speedups)
    out["stop_slowest_speedup"] = round(min(speedups), 3)  # over every width, pair and mode
    # The stop runs a subset of the plain search's steps, each the same work: its time can only differ by the checks
    out["stop_never_more_steps"] = all(sum(steps[k, f"beam {w} stop", m]) <= sum(steps[k, f"beam {w}", m])
                                       for k in pairs for m in MODES for w in grid["widths"])
    # ... so its only extra work is checking answers as they finish: their share of the stop's time, at most
    out["stop_check_share_max"] = round(max(checks[k, f"beam {w} stop", m] / times[k, f"beam {w} stop", m]
                                            for k in pairs for m in MODES for w in grid["widths"]), 4)
    # how far two runs of the same call lie apart on this machine (median over every call of every strategy)
    out["run_to_run_spread"] = {k: round(statistics.median(spreads[k]), 3) if spreads.get(k) else None for k in pairs}
    return out
