"""The generation, beam and hf benchmark suites. Each returns the result object that `python -m engine.bench` prints.

A result is {"suite", "machine", "model", "settings", "definitions", "columns", "rows", "summary", "notes"}:
`rows` hold one object per table row with the `columns`, `summary` the headline speedups and the
identical-output flags.
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial

from ..decoding import best_answer, preset, rank_answers
from .util import (SCORE_TOL, Progress, Subject, agreement, answer_rule, best_hyps, interleaved, matmul_gflops,
                   max_new_for, problem_prompts, problems, report, result_object, run_ours, stats, timed)

GEN_PRESETS = ("V1", "V2", "V3", "fastest")
SHORT, MEDIUM, LONG = (2, 2), (3, 3), (4, 4)
GEN_CASES: dict[str, tuple[tuple[int, int], ...]] = {
    "single_short": (SHORT,),
    "single_medium": (MEDIUM,),
    "batch_4_short": (SHORT,) * 4,
    "batch_4_medium": (MEDIUM,) * 4,
    "batch_3_mixed": (SHORT, MEDIUM, LONG),
}
GEN_DEFINITION = ("short = a degree (2,2) problem (prompt 27-49 tokens), medium = (3,3) (90-121 tokens), "
                  "mixed = one each of (2,2), (3,3), (4,4) in one batch (27-248 tokens); greedy decoding")


def case_problems(case: str) -> list:
    """The problems of one generation case (single_short, batch_3_mixed, ...): the k-th problem of a pair in
    a case is the k-th one generated for it, so the problems of a case are distinct."""
    if case not in GEN_CASES:
        raise ValueError(f"unknown case {case!r}; choose from {', '.join(GEN_CASES)}")
    seen: dict[tuple[int, int], int] = {}
    out = []
    for pair in GEN_CASES[case]:
        k = seen.get(pair, 0)
        seen[pair] = k + 1
        out.append(problems(pair, k + 1)[k])
    return out


def generation(subject: Subject, runs: int, warmup: int, progress: Progress | None = None) -> dict:
    """The seed's generation table: five cases x V1/V2/V3/fastest, avg/min/max ms over `runs` (the presets
    take turns run by run)."""
    rows, outputs, avg = [], {}, {}
    for ci, case in enumerate(GEN_CASES):
        batch = case_problems(case)
        prompts = problem_prompts(subject.model, batch)
        lengths = sorted(len(p) for p in prompts)
        report(progress, ci / len(GEN_CASES), f"generation {case}")
        max_new = max_new_for(subject, batch)
        fns = {name: partial(run_ours, subject.model, prompts, preset(name, decoder="greedy", width=1, max_new=max_new),
                             subject.check) for name in GEN_PRESETS}
        for name, (times, result) in interleaved(fns, subject.device, runs, warmup, subject.check).items():
            outputs[case, name] = best_hyps(result)
            avg[case, name] = sum(times) / len(times)
            rows.append({"case": case, "batch": len(batch), "prompt_tokens": f"{lengths[0]}-{lengths[-1]}",
                         "preset": name, **stats(times), "speedup_vs_v1": round(avg[case, "V1"] / avg[case, name], 2)})
    v3 = {c: avg[c, "V1"] / avg[c, "V3"] for c in GEN_CASES}
    fastest = {c: avg[c, "V1"] / avg[c, "fastest"] for c in GEN_CASES}
    checks = [agreement(outputs[c, n], outputs[c, "V1"]) for c in GEN_CASES for n in GEN_PRESETS]
    summary = {"v1_to_v3_min": round(min(v3.values()), 2), "fastest_vs_v1_min": round(min(fastest.values()), 2),
               "v1_to_v3": {c: round(s, 2) for c, s in v3.items()},
               "fastest_vs_v1": {c: round(s, 2) for c, s in fastest.items()},
               "outputs_identical": all(ok for ok, _ in checks), "near_ties": sum(t for _, t in checks)}
    settings = {"runs": runs, "warmup": warmup, "decoder": "greedy",
                "max_new": answer_rule(subject)}
    return result_object("generation", subject, settings, [GEN_DEFINITION], ["case", "batch", "prompt_tokens", "preset",
                   "avg_ms", "min_ms", "max_ms", "speedup_vs_v1"], rows, summary)


def beam_configs(width: int) -> list[tuple[str, object, bool]]:
    """(label, options, batched) for the beam table: the baselines and ours."""
    return [
        ("no cache", preset("fastest", decoder="beam", width=width, cache="none"), False),
        ("seed way", preset("V2", decoder="beam", width=width, cache="concat", beam_cache="clone",
                            attention="sdpa", one_at_a_time=True), False),
        ("fastest", preset("fastest", decoder="beam", width=width), False),
        ("fastest, batched", preset("fastest", decoder="beam", width=width), True),
    ]


def _beam_pass(subject: Subject, batch: list, opts, batched: bool):
    """Decode every problem (one call each, or all in one call); returns [(problems, Decoded)] per call.
    Random weights: every answer gets the length of the longest reference answer, so one-at-a-time and
    batched rows do the same work."""
    groups = [batch] if batched else [[p] for p in batch]
    o = _with_max_new(opts, max_new_for(subject, batch))
    return [(g, run_ours(subject.model, problem_prompts(subject.model, g), o, subject.check)) for g in groups]


def _with_max_new(opts, max_new: int):
    return replace(opts, max_new=max_new)


def _accuracy(calls) -> tuple[float, list]:
    verified, tops = 0, []
    for group, result in calls:
        for p, hyps in zip(group, result.hypotheses):
            best = best_answer(rank_answers(p.f, hyps))
            verified += bool(best and best.verified)
        tops.extend(best_hyps(result))
    n = sum(len(g) for g, _ in calls)
    return verified / n, tops


def _step_ms(calls) -> float:
    """Mean wall time of a decode step after the first (which comes from the prefill logits)."""
    ms = [s.elapsed_ms for _, r in calls for s in r.steps if s.step > 0]
    return sum(ms) / len(ms) if ms else float("nan")


def _tokens_fed(calls) -> int:
    """Tokens the decode steps after the first had to process: the live beams left by the step before."""
    fed = 0
    for _, r in calls:
        for prev, _step in zip(r.steps, r.steps[1:]):
            fed += sum(not b.finished for b in prev.beams)
    return fed


def _floor_ratio(calls, ms_per_token: float) -> float:
    """Measured decode-step time over the arithmetic floor (2 x params FLOPs per token at the matmul rate)."""
    ms = sum(s.elapsed_ms for _, r in calls for s in r.steps if s.step > 0)
    floor = _tokens_fed(calls) * ms_per_token
    return ms / floor if floor else float("nan")


def beam(subject: Subject, runs: int, warmup: int, n: int = 30, widths: tuple[int, ...] = (5, 10),
         progress: Progress | None = None) -> dict:
    """The seed's beam table: n problems of (2,2) per width, baselines against ours, seconds and accuracy."""
    batch = problems(SHORT, n)
    rows, seconds, acc, tops, step, floor = [], {}, {}, {}, {}, {}
    total = len(widths) * 4
    rate = matmul_gflops(subject.device)
    ms_per_token = 2 * subject.model.num_params() / (rate * 1e9) * 1e3  # the arithmetic floor of one token
    for wi, w in enumerate(widths):
        for ci, (label, opts, batched) in enumerate(beam_configs(w)):
            report(progress, (wi * 4 + ci) / total, f"beam width {w}: {label}")
            for _ in range(warmup):  # the shape the timed runs call: one problem, or the whole batch at once
                _beam_pass(subject, batch if batched else batch[:1], opts, batched)
            times = []
            for _ in range(runs):
                ms, calls = timed(lambda: _beam_pass(subject, batch, opts, batched), subject.device)
                times.append(ms)
            seconds[w, label] = sum(times) / len(times) / 1e3
            acc[w, label], tops[w, label] = _accuracy(calls)
            step[w, label], floor[w, label] = _step_ms(calls), _floor_ratio(calls, ms_per_token)
            rows.append({"width": w, "decoder": label, "problems_per_call": n if batched else 1,
                         "seconds": round(seconds[w, label], 3), "problems_per_s": round(n / seconds[w, label], 2),
                         "speedup_vs_no_cache": round(seconds[w, "no cache"] / seconds[w, label], 2),
                         "step_ms": round(step[w, label], 3), "x_floor": round(floor[w, label], 1),
                         "accuracy": round(acc[w, label], 4)})
    labels = [c[0] for c in beam_configs(1)]
    checks = [agreement(tops[w, k], tops[w, labels[0]]) for w in widths for k in labels]
    wmax = max(widths)
    ours = min(("fastest", "fastest, batched"), key=lambda k: seconds[wmax, k])
    summary = {
        f"speedup_vs_nocache_w{wmax}": round(seconds[wmax, "no cache"] / seconds[wmax, ours], 2),
        f"speedup_vs_seed_way_w{wmax}": round(seconds[wmax, "seed way"] / seconds[wmax, ours], 2),
        f"seconds_fastest_w{wmax}": round(seconds[wmax, ours], 3), "fastest_row": ours,
        f"speedup_vs_nocache_w{wmax}_one_at_a_time": round(seconds[wmax, "no cache"] / seconds[wmax, "fastest"], 2),
        "accuracy_identical": all(acc[w, k] == acc[w, labels[0]] for w in widths for k in labels),
        "outputs_identical": all(ok for ok, _ in checks), "near_ties": sum(t for _, t in checks),
        "matmul_gflops": round(rate, 1), "floor_ms_per_token": round(ms_per_token, 4),
        f"step_ms_w{wmax}": round(step[wmax, "fastest"], 3), f"floor_step_ms_w{wmax}": round(wmax * ms_per_token, 3),
        f"step_vs_floor_w{wmax}": round(floor[wmax, "fastest"], 2),
        f"step_vs_floor_w{wmax}_batched": round(floor[wmax, "fastest, batched"], 2),
    }
    settings = {"problems": n, "pair": "2_2", "widths": list(widths), "runs": runs, "warmup": warmup,
                "max_new": answer_rule(subject)}
    definitions = [
        "no cache: the whole sequence is recomputed every step (sdpa, all beams of a problem in one forward)",
        "seed way: concat cache + sdpa, every surviving candidate clones its parent's cache, one forward per beam",
        "fastest: preset 'fastest' (static cache, shared prompt, tiled linears, fused C++ step, batched beams); 'batched' decodes "
        "all problems in one call",
        f"x_floor: decode-step time over the floor, 2 x {subject.model.num_params():,} FLOPs per token fed at this "
        f"machine's {rate:.0f} GFLOP/s float32 matmul rate (1.0 = at the floor)",
        "step_ms: mean wall time of one decode step after the first (a batched step serves every problem)",
        f"outputs_identical: every problem's best answer has the same tokens in every row, or the scores tie "
        f"within {SCORE_TOL:g} (a float near-tie that kernels may order differently; counted in near_ties)",
    ]
    return result_object("beam", subject, settings, definitions, ["width", "decoder", "problems_per_call", "seconds",
                   "problems_per_s", "speedup_vs_no_cache", "step_ms", "x_floor", "accuracy"], rows, summary)


HF_MODES = (("greedy", 1, 1), ("greedy", 1, 4), ("beam", 5, 1), ("beam", 10, 1))  # decoder, width, batch


def _pass(subject: Subject, batch: list, bsz: int, fn, opts) -> list:
    """Decode batch in groups of bsz with fn(prompts, opts); returns the Decoded of each group."""
    out = []
    for lo in range(0, len(batch), bsz):
        if subject.check is not None:
            subject.check()
        group = batch[lo: lo + bsz]
        out.append(fn(problem_prompts(subject.model, group), _with_max_new(opts, max_new_for(subject, group))))
    return out


def hf(subject: Subject, runs: int, warmup: int, n: int = 12, progress: Progress | None = None) -> dict:
    """Ours (fastest) against transformers generate() on the same weights, exported as `python -m engine.export
    --format hf` writes them and loaded back with AutoModelForCausalLM."""
    from ..decoding import hf_decode
    from ..export import exported_hf
    hf_model = exported_hf(subject.model)
    batch = problems(SHORT, n)
    contenders = {"ours": partial(run_ours, subject.model), "hf": partial(hf_decode, hf_model)}
    rows, speed, same, near = [], {}, {}, {}
    for mi, (decoder, width, bsz) in enumerate(HF_MODES):
        mode = f"{decoder} {width}" if decoder == "beam" else "greedy"
        report(progress, mi / len(HF_MODES), f"hf: {mode} batch {bsz}")
        opts = preset("fastest", decoder=decoder, width=width, length_penalty=0.0)
        timed_runs = interleaved({k: partial(_pass, subject, batch, bsz, fn, opts) for k, fn in contenders.items()},
                                 subject.device, runs, warmup)
        (t_ours, r_ours), (t_hf, r_hf) = timed_runs["ours"], timed_runs["hf"]
        ours_ms = sum(t_ours) / len(t_ours) / n
        hf_ms = sum(t_hf) / len(t_hf) / n
        top_same, ties = agreement([h for r in r_ours for h in best_hyps(r)], [h for r in r_hf for h in best_hyps(r)])
        all_same = [[h.ids for h in g] for r in r_ours for g in r.hypotheses] == \
                   [[h.ids for h in g] for r in r_hf for g in r.hypotheses]
        speed[mode, bsz], same[mode, bsz], near[mode, bsz] = hf_ms / ours_ms, top_same, ties
        rows.append({"mode": mode, "batch": bsz, "ours_ms_per_problem": round(ours_ms, 2),
                     "hf_ms_per_problem": round(hf_ms, 2), "speedup": round(hf_ms / ours_ms, 2),
                     "identical_best": top_same, "identical_all_beams": all_same})
    summary = {"speedup_vs_hf_greedy": round(min(speed["greedy", 1], speed["greedy", 4]), 2),
               "speedup_vs_hf_beam10": round(speed["beam 10", 1], 2), "outputs_identical": all(same.values()),
               "near_ties": sum(near.values())}
    settings = {"problems": n, "pair": "2_2", "runs": runs, "warmup": warmup, "ours": "preset fastest",
                "hf": "generate(do_sample=False | num_beams=K, length_penalty=0.0, early_stopping=False), "
                      "left padding + attention_mask",
                "max_new": answer_rule(subject)}
    definitions = ["speedup = transformers ms / ours ms; identical_best: each problem's best answer has the same "
                   f"tokens (or the scores tie within {SCORE_TOL:g}: near_ties); identical_all_beams: every "
                   "returned beam, token for token, in order",
                   "speedup_vs_hf_greedy is the smaller of the batch 1 and batch 4 figures"]
    return result_object("hf", subject, settings, definitions, ["mode", "batch", "ours_ms_per_problem",
                   "hf_ms_per_problem", "speedup", "identical_best", "identical_all_beams"], rows, summary)
