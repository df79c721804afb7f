"""The engines suite: ours against Hugging Face generate() and CTranslate2 on identical weights.

Greedy and beam 10, one problem at a time and every problem in one batch, on the (2,2) problems of the bench.
Ours runs the `fastest` preset and each speed toggle (DecodeOptions fields that are not in it); transformers
runs the hf export read back with AutoModelForCausalLM, CTranslate2 that export converted (engine.export). A
toggle that may change outputs (precision) reports its agreement with ours in float32 instead of identity.
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial

from ..decoding import best_answer, ct2_decode, hf_decode, preset, rank_answers
from ..decoding.fused import available as fused_available
from ..tokenizer import vocab_for
from .suites import SHORT
from .util import (SCORE_TOL, Progress, Subject, agreement, answer_rule, best_hyps, max_new_for, problem_prompts,
                   problems, report, result_object, run_ours, timed)

MODES = (("greedy", 1), ("beam", 10))  # decoder, width
FASTEST = "ours"
MODULES = "ours modules"  # fastest with the decode step through the nn.Modules: the baseline of step=fused
FUSED = "ours fused"  # fastest with ATen's attention inside the C++ step (step=fused): the baseline of step=native
PACKED = "ours packed"  # fastest with MKL's GEMM on (in, out) weights below 64 rows: the baseline of linear=tiled
ATEN = "ours aten"  # fastest with F.linear instead of its prepared linears: the baseline of linear=packed
GATHER, COMPILED = "ours gather", "ours compiled"  # compile runs the gather beam cache: its baseline is GATHER
HF, CT2 = "transformers", "ctranslate2"


def variants() -> dict[str, dict]:
    """Ours: the fastest preset, then each speed toggle (the fields it overrides). precision may change outputs:
    those rows report their agreement with float32 and stay out of outputs_identical."""
    return {FASTEST: {}, MODULES: {"step": "modules"}, FUSED: {"step": "fused"}, PACKED: {"linear": "packed"},
            ATEN: {"linear": "aten"},
            GATHER: {"beam_cache": "gather", "linear": "aten", "step": "modules"},
            COMPILED: {"beam_cache": "gather", "compile": "inductor", "linear": "aten", "step": "modules"},
            "ours bf16": {"precision": "bf16"}, "ours int8-dynamic": {"precision": "int8-dynamic", "step": "modules"}}


def exact(name: str) -> bool:
    """Whether a contender's outputs are claimed identical to ours in float32."""
    return variants().get(name, {}).get("precision", "fp32") == "fp32"


def _label(decoder: str, width: int) -> str:
    return "greedy" if decoder == "greedy" else f"beam {width}"


def _contenders(subject: Subject, hf_model, ct2_model) -> dict:
    """name -> fn(prompts, opts) -> Decoded."""
    fns = {name: (lambda over: lambda prompts, opts: run_ours(subject.model, prompts, replace(opts, **over),
                                                                subject.check))(over)
           for name, over in variants().items()}
    fns[HF] = partial(hf_decode, hf_model)
    if ct2_model is not None:
        fns[CT2] = partial(ct2_decode, ct2_model, vocab_for(subject.model.config.prompt_format))
    return fns


def _pass(subject: Subject, batch: list, bsz: int, fn, opts) -> list:
    """Decode `batch` in groups of bsz; [(problems, Decoded)] per call."""
    out = []
    for lo in range(0, len(batch), bsz):
        group = batch[lo: lo + bsz]
        prompts = problem_prompts(subject.model, group)
        out.append((group, fn(prompts, replace(opts, max_new=max_new_for(subject, group)))))
    return out


def _verified(calls) -> list[bool]:
    return [bool((a := best_answer(rank_answers(p.f, hyps))) and a.verified)
            for group, result in calls for p, hyps in zip(group, result.hypotheses)]


def _time_round(subject: Subject, fns: dict, batch: list, bsz: int, opts, runs: int, warmup: int) -> dict:
    """{name: (ms per problem, calls of the last run)}. Warm-up: `warmup` calls of one group each; the
    contenders then take turns run by run (a slow spell of the machine hits them alike)."""
    for _ in range(warmup):
        for fn in fns.values():
            _pass(subject, batch[:bsz], bsz, fn, opts)
    times = {name: [] for name in fns}
    last = {}
    for _ in range(runs):
        for name, fn in fns.items():
            if subject.check is not None:
                subject.check()
            ms, last[name] = timed(lambda: _pass(subject, batch, bsz, fn, opts), subject.device)
            times[name].append(ms)
    return {name: (sum(t) / len(t) / len(batch), last[name]) for name, t in times.items()}


def linear_traffic(model, reps: int = 200) -> dict:
    """Why a linear costs more inside a decode step than alone, measured: one token (batch 1) through one of the
    model's linears again and again (its weight stays in cache) against all of them in turn, as a step runs them
    (each weight is evicted by the others when they outgrow the last-level cache). The gap is weight traffic,
    not arithmetic, layout or Python (no Python runs between the linears of the second loop)."""
    import torch
    import torch.nn.functional as F

    lins = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    ins = [torch.randn(1, m.in_features, device=m.weight.device) for m in lins]
    one = max(lins, key=lambda m: m.weight.numel())
    x = torch.randn(1, one.in_features, device=one.weight.device)

    def per_call(fn, calls: int) -> float:
        for _ in range(10):
            fn()
        ms, _ = timed(lambda: [fn() for _ in range(reps)], next(model.parameters()).device)
        return ms * 1e3 / reps / calls

    with torch.inference_mode():
        alone = per_call(lambda: F.linear(x, one.weight, one.bias), 1)
        in_turn = per_call(lambda: [F.linear(i, m.weight, m.bias) for i, m in zip(ins, lins)], len(lins))
        tiled = _tiled_in_turn(lins, ins, per_call)
    weights = sum(m.weight.numel() * m.weight.element_size() for m in lins)
    return {"linears": len(lins), "linear_weights_mb": round(weights / 2 ** 20, 1),
            "largest_linear_alone_us": round(alone, 1),
            "linear_in_turn_us": round(in_turn, 1),
            "weight_stream_gb_s": round(weights / (in_turn * len(lins) * 1e-6) / 1e9, 1),
            "tiled_in_turn_us": None if tiled is None else round(tiled, 1),
            "tiled_weight_stream_gb_s": None if tiled is None else round(weights / (tiled * len(lins) * 1e-6) / 1e9, 1)}


def _tiled_in_turn(lins, ins, per_call) -> float | None:
    """linear_traffic's in-turn loop through linear=tiled's kernel (TiledLinear), or None where it cannot run."""
    from ..decoding.precision import TiledLinear, tiled_unavailable
    if lins[0].weight.device.type != "cpu" or tiled_unavailable() is not None:
        return None
    tiled = [TiledLinear(m) for m in lins]
    return per_call(lambda: [t(i) for i, t in zip(ins, tiled)], len(tiled))


def engines(subject: Subject, runs: int, warmup: int, n: int = 30, batches: tuple[int, ...] = (1, 30),
            progress: Progress | None = None) -> dict:
    """The engines table: ms per problem for every (mode, batch, engine), against CTranslate2 and transformers."""
    from ..export import exported_ct2, exported_hf
    notes = []
    hf_model = exported_hf(subject.model)
    try:
        ct2_model = exported_ct2(subject.model)
    except RuntimeError as e:
        ct2_model = None
        notes.append(f"CTranslate2 rows left out: {e}")
    fns = _contenders(subject, hf_model, ct2_model)
    batch = problems(SHORT, n)
    batches = tuple(min(b, n) for b in batches)
    rows, ms, same = [], {}, {}
    rounds = [(d, w, b) for d, w in MODES for b in batches]
    for ri, (decoder, width, bsz) in enumerate(rounds):
        mode = _label(decoder, width)
        report(progress, ri / len(rounds), f"engines: {mode}, batch {bsz}")
        opts = preset("fastest", decoder=decoder, width=width, length_penalty=0.0)
        measured = _time_round(subject, fns, batch, bsz, opts, runs, warmup)
        ref_calls = measured[FASTEST][1]
        ref_best = [h for _, r in ref_calls for h in best_hyps(r)]
        for name, (t, calls) in measured.items():
            best = [h for _, r in calls for h in best_hyps(r)]
            ok, ties = agreement(best, ref_best)
            verified = _verified(calls)
            ms[mode, bsz, name], same[mode, bsz, name] = t, ok
            row = {"mode": mode, "batch": bsz, "engine": name, "exact": exact(name), "ms_per_problem": round(t, 2),
                   "identical_best": ok, "near_ties": ties,
                   "same_best_share": round(sum(a is not None and b is not None and a.ids == b.ids
                                                for a, b in zip(best, ref_best)) / n, 3),
                   "verified_share": round(sum(verified) / n, 3)}
            rows.append(row)
        for row in rows[-len(measured):]:
            row["vs_ct2"] = round(ms[mode, bsz, row["engine"]] / ms[mode, bsz, CT2], 2) if ct2_model else None
            row["hf_speedup"] = round(ms[mode, bsz, HF] / ms[mode, bsz, row["engine"]], 2)

    def ct2_ratio(mode: str, bsz: int):
        return round(ms[mode, bsz, FASTEST] / ms[mode, bsz, CT2], 2) if ct2_model else None

    b1, bn = batches[0], batches[-1]  # the b30 keys hold the all-in-one-batch figures (fewer in smoke runs)
    summary = {"ct2_ratio_greedy_b1": ct2_ratio("greedy", b1), "ct2_ratio_beam10_b1": ct2_ratio("beam 10", b1),
               "ct2_ratio_greedy_b30": ct2_ratio("greedy", bn), "ct2_ratio_beam10_b30": ct2_ratio("beam 10", bn),
               "speedup_vs_hf_greedy": round(ms["greedy", b1, HF] / ms["greedy", b1, FASTEST], 2),
               "speedup_vs_hf_beam10": round(ms["beam 10", b1, HF] / ms["beam 10", b1, FASTEST], 2),
               "outputs_identical": all(same[k] for k in same if exact(k[2])),
               **{f"{over['precision'].replace('-', '_')}_same_best_share":
                  round(min(r["same_best_share"] for r in rows if r["engine"] == name), 3)
                  for name, over in variants().items() if not exact(name)},
               **{f"{what}_speedup_{m.replace(' ', '')}_{tag}": round(ms[m, b, base] / ms[m, b, toggled], 2)
                  for what, base, toggled in (("fused", MODULES, FUSED), ("native", FUSED, FASTEST),
                                              ("packed", ATEN, PACKED),
                                              ("tiled", PACKED, FASTEST),
                                              ("compile", GATHER, COMPILED))
                  for m in ("greedy", "beam 10") for b, tag in ((b1, "b1"), (bn, "b30"))},
               "ctranslate2": ct2_model is not None, "fused_step": fused_available(),
               **linear_traffic(subject.model)}
    settings = {"problems": n, "pair": "2_2", "batches": list(batches), "runs": runs, "warmup": warmup,
                "ours": "preset fastest", "transformers": "generate() on the hf export",
                "ctranslate2": "Generator on the ct2 conversion of the hf export, float32, same threads, patience 1",
                "length_penalty": 0.0, "max_new": answer_rule(subject)}
    definitions = [
        "ms_per_problem: wall time of the whole pass over the problems / problems (batch 1: one call per problem)",
        "vs_ct2: this engine's time / CTranslate2's (below 1: faster than CTranslate2); hf_speedup: transformers' "
        "time / this engine's",
        f"identical_best: every problem's best answer has the same tokens as ours (or the scores tie within "
        f"{SCORE_TOL:g}: near_ties); same_best_share: the share with the same tokens; verified_share: the share "
        "of problems whose best answer verifies",
        "exact: the engine claims ours' float32 outputs (counted in outputs_identical); 'ours bf16' and 'ours "
        "int8-dynamic' (DecodeOptions.precision) may change them: their same_best_share and verified_share ARE "
        "their measured agreement with float32 (the <precision>_same_best_share summary keys: the lowest over "
        "the rows)",
        "'ours' is the fastest preset: its decode step runs every layer in one C++ call, the new token's attention "
        "in the extension's own loop per row and head (step=native; fused_step: whether the extension was built "
        "here, else it ran the module path) and its linears run on weights "
        "prepared for the CPU (linear=tiled: a hand-written AVX2 kernel on 16-column weight tiles below 64 rows, "
        "oneDNN-packed from there); 'ours fused' is the same with ATen's attention operations in the C++ step "
        "(step=fused): native_speedup_<mode>_b<batch> = fused's time / ours' time; 'ours modules' is the same with "
        "the step through the nn.Modules: fused_speedup_<mode>_b<batch> = modules' time / fused's time; 'ours "
        "packed' is fastest with MKL's GEMM on "
        "transposed weights below 64 rows (linear=packed): tiled_speedup_<mode>_b<batch> = packed's time / ours' "
        "time; 'ours aten' is fastest with F.linear: packed_speedup_<mode>_b<batch> = aten's time / packed's time",
        "'ours gather' is the fastest preset with F.linear, the module step and beams followed by index_select "
        "(gather) instead of "
        "a shared prompt; 'ours compiled' is the same with compile=inductor (the decode step through "
        "torch.compile, compiled in the warm-up): compile_speedup_<mode>_b<batch> = gather's time / compiled's "
        "time",
        "largest_linear_alone_us: one token through the model's largest linear, repeated (its weight stays in "
        "cache); linear_in_turn_us: the mean over all its linears run in turn as a decode step runs them; "
        "weight_stream_gb_s: the linears' weight bytes over the in-turn time; tiled_in_turn_us and "
        "tiled_weight_stream_gb_s: the same with linear=tiled's kernel (null where it cannot run here)",
    ]
    columns = ["mode", "batch", "engine", "exact", "ms_per_problem", "vs_ct2", "hf_speedup", "identical_best",
               "same_best_share", "verified_share"]
    return result_object("engines", subject, settings, definitions, columns, rows, summary, notes)
