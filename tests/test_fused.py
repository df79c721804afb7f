"""DecodeOptions.step "fused": every layer of a decode step in one C++ call (engine/decoding/fused.py). Its outputs
are in test_decode's equivalence matrix; here: where it runs, what it reads, and what happens where it cannot
be built."""
import pytest
import torch

from engine.decoding import DecodeOptions, decode, fused, native, options, preset, run_to_completion
from engine.model import GPT, PRESETS

PROMPTS = [[16, 22, 23, 9], [18, 16, 3, 4, 5, 6, 7, 16, 25, 9], [16, 1, 9]]


@pytest.fixture()
def model():
    torch.manual_seed(5)
    return GPT(PRESETS["tiny"]).eval()


def scores(result) -> list[float]:
    return [h.score for g in result.hypotheses for h in g]


def test_fastest_runs_the_fused_step_and_gives_way_where_it_cannot_run():
    assert preset("fastest").step == "native" and DecodeOptions().step == "modules"
    for over in (dict(cache="concat"), dict(cache="none"), dict(compile="inductor", beam_cache="gather", linear="aten"),
                 dict(precision="int8-dynamic"), dict(one_at_a_time=True, cache="concat")):
        assert options("fastest", **over).step == "modules", over
        assert preset("fastest", **over).step == "modules", over
    assert options("fastest", precision="bf16").step == "native"
    with pytest.raises(ValueError, match="static KV cache"):
        options("fastest", cache="concat", step="fused")  # asked for explicitly: a clear error, not a silent change


def test_the_fused_step_reads_the_current_weights(model):
    """Guards against stale weights in the C++ object: a weight written in place is seen by the next decode."""
    opts = preset("fastest", decoder="beam", width=3, max_new=6)
    before = run_to_completion(decode(model, PROMPTS, opts))
    held = fused.weights(model)
    with torch.no_grad():
        model.head.weight.mul_(3.0)
    assert fused.weights(model) is not held
    after = run_to_completion(decode(model, PROMPTS, opts))
    modules = run_to_completion(decode(model, PROMPTS, preset("fastest", decoder="beam", width=3, max_new=6,
                                                               step="modules")))
    assert scores(after) != scores(before)
    assert scores(after) == pytest.approx(scores(modules), abs=1e-4)


def test_the_fused_step_runs_bf16_like_the_module_path(model):
    """bf16 may change outputs against float32, but the fused step runs the same bf16 operations as the modules."""
    kw = dict(decoder="beam", width=3, max_new=6, precision="bf16")
    a = run_to_completion(decode(model, PROMPTS, preset("fastest", **kw)))
    b = run_to_completion(decode(model, PROMPTS, preset("fastest", step="modules", **kw)))
    assert [h.ids for g in a.hypotheses for h in g] == [h.ids for g in b.hypotheses for h in g]


def test_without_a_compiler_the_decode_warns_and_runs_the_module_path(model, monkeypatch):
    """Where the extension cannot be built (no compiler, no ninja) nothing breaks: a warning names the reason and
    the decode gives the module path's outputs."""
    monkeypatch.setattr(native, "_ext", None)
    monkeypatch.setattr(native, "_error", "step=fused needs a C++ compiler and ninja to build x.cpp (no g++)")
    monkeypatch.setattr(fused, "_weights", type(fused._weights)())
    assert not fused.available()
    with pytest.warns(RuntimeWarning, match="no g\\+\\+.*step=modules instead"):
        got = run_to_completion(decode(model, PROMPTS, preset("fastest", decoder="greedy", max_new=6)))
    want = run_to_completion(decode(model, PROMPTS, preset("fastest", decoder="greedy", max_new=6, step="modules")))
    assert [h.ids for g in got.hypotheses for h in g] == [h.ids for g in want.hypotheses for h in g]


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="needs a torch with oneDNN on the CPU")
def test_wide_batches_take_the_packed_gemm_with_the_same_outputs(model):
    """From PACKED_MIN_ROWS rows on, packed linears run oneDNN's packed GEMM, in the fused step as in the modules:
    3 problems x 24 beams = 72 rows take it (counted by the profiler), and the beams match F.linear's."""
    from torch.profiler import profile

    from engine.decoding.precision import PACKED_MIN_ROWS
    assert 3 * 24 >= PACKED_MIN_ROWS
    kw = dict(decoder="beam", width=24, max_new=6)
    with profile() as prof:
        fused_packed = run_to_completion(decode(model, PROMPTS, preset("fastest", **kw)))
    assert any(e.name == "mkldnn::_linear_pointwise" for e in prof.events())
    want = run_to_completion(decode(model, PROMPTS, preset("fastest", step="modules", linear="aten", **kw)))
    for step in ("native", "fused", "modules"):
        got = fused_packed if step == "native" else run_to_completion(decode(model, PROMPTS, preset("fastest", **kw,
                                                                                                   step=step)))
        assert [h.ids for g in got.hypotheses for h in g] == [h.ids for g in want.hypotheses for h in g], step
        assert scores(got) == pytest.approx(scores(want), abs=1e-4), step


def test_the_native_step_follows_beams_by_slots_with_the_same_outputs(model, monkeypatch):
    """fastest beam search (native step, shared prefix) never copies the generated cache: rows follow their
    parents through StaticCache.slots. The beams, scores and tree are bit-identical to the same step copying
    rows (index_select), also while problems leave the batch; the beam ends on different steps per problem."""
    from engine.decoding.cache import StaticCache
    from test_decode import outcome, random_model
    wide = random_model()
    used = []
    real = StaticCache.use_slots
    monkeypatch.setattr(StaticCache, "use_slots", lambda self: used.append(1) or real(self))
    prompts = PROMPTS + [[19, 16, 27, 1, 18, 15, 22, 9]]
    for width in (3, 10):
        opts = preset("fastest", decoder="beam", width=width, max_new=14)
        used.clear()
        by_slots = run_to_completion(decode(wide, prompts, opts))
        assert used, "fastest beam search should follow beams by slots"
        monkeypatch.setattr(StaticCache, "use_slots", lambda self: None)
        copied = run_to_completion(decode(wide, prompts, opts))
        monkeypatch.setattr(StaticCache, "use_slots", lambda self: used.append(1) or real(self))
        assert outcome(by_slots) == outcome(copied), width
        stops = [step for step, s in enumerate(by_slots.steps) if s.stops]
        assert len(stops) >= 2, "problems should leave the batch on different steps"
    for over in (dict(step="fused"), dict(beam_cache="gather"), dict(precision="bf16")):
        used.clear()
        run_to_completion(decode(wide, prompts, preset("fastest", decoder="beam", width=3, max_new=6, **over)))
        assert not used, over


@pytest.mark.parametrize("head_dim", [16, 36, 64])
def test_the_native_attention_gives_the_module_paths_beams_for_every_head_size(head_dim):
    """The native attention sums 4 keys at a time and holds 32 outputs in registers: head sizes 16 (8-wide only),
    36 (a 32-wide block and a scalar tail) and 64 (two blocks), prompts of 3, 4 and 10 keys (whole groups of 4
    and a rest) and a growing generated part all give the module path's beams and scores."""
    from engine.model import GPTConfig
    torch.manual_seed(head_dim)
    wide = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=2 * head_dim, block_size=64)).eval()
    for width in (1, 4):
        kw = dict(decoder="beam" if width > 1 else "greedy", width=width, max_new=9)
        got = run_to_completion(decode(wide, PROMPTS, preset("fastest", **kw)))
        want = run_to_completion(decode(wide, PROMPTS, preset("fastest", step="modules", linear="aten", **kw)))
        assert [h.ids for g in got.hypotheses for h in g] == [h.ids for g in want.hypotheses for h in g]
        assert scores(got) == pytest.approx(scores(want), abs=1e-4)
