"""DecodeOptions.precision: bf16 and int8-dynamic decode on a converted copy of the model (never the model itself),
may change outputs (so they are flagged, not in the equivalence matrix), and fp32 is the model untouched.
DecodeOptions.linear "packed" and "tiled": a copy whose linears hold CPU-prepared weights, exact (also in
test_decode's matrix)."""
from dataclasses import replace

import pytest
import torch

from engine.decoding import DecodeOptions, decode, model_at, preset, run_to_completion
from engine.decoding import fused
from engine.decoding.precision import PackedLinear, TiledLinear, packs
from engine.model import GPT, PRESETS

PROMPTS = [[16, 22, 23, 9], [18, 16, 3, 4, 5, 6, 7, 16, 25, 9], [16, 1, 9]]
TILED = fused.available() and fused.extension().tiled_supported() and packs(GPT(PRESETS["tiny"]))


@pytest.fixture()
def model():
    torch.manual_seed(3)
    return GPT(PRESETS["tiny"]).eval()


def test_options_validate_precision_and_flag_the_inexact_ones():
    assert DecodeOptions().precision == "fp32" and DecodeOptions().exact
    assert not DecodeOptions(precision="bf16").exact and not DecodeOptions(precision="int8-dynamic").exact
    with pytest.raises(ValueError, match="precision"):
        DecodeOptions(precision="fp16")


def test_fp32_is_the_model_itself_and_copies_leave_it_untouched(model):
    assert model_at(model, "fp32") is model
    bf16 = model_at(model, "bf16")
    assert bf16 is not model and all(p.dtype == torch.bfloat16 for p in bf16.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    int8 = model_at(model, "int8-dynamic")
    kinds = {type(m).__module__ for m in int8.modules()}
    assert any("quantized" in k for k in kinds), "no Linear was replaced by a quantized one"
    assert all(type(m) is not torch.nn.Linear for m in int8.modules())
    assert any(type(m) is torch.nn.Linear for m in model.modules())


def test_the_copy_is_reused_and_remade_after_a_weight_change(model):
    """Guards against a stale copy: a lab whose weights change in place must not decode with the old ones."""
    first = model_at(model, "bf16")
    assert model_at(model, "bf16") is first
    with torch.no_grad():
        model.head.weight.mul_(2.0)
    second = model_at(model, "bf16")
    assert second is not first
    torch.testing.assert_close(second.head.weight.float(), model.head.weight, atol=0.05, rtol=0.01)


@pytest.mark.parametrize("precision", ["bf16", "int8-dynamic"])
@pytest.mark.parametrize("decoder,width", [("greedy", 1), ("beam", 4)])
def test_inexact_precisions_decode_at_their_precision(model, precision, decoder, width):
    """They run every decoder and change the arithmetic (the scores move): proof the toggle takes effect. Their
    agreement with fp32 is measured by the engines bench and the Compare tab, not assumed here."""
    opts = preset("fastest", decoder=decoder, width=width, max_new=6)
    ref = run_to_completion(decode(model, PROMPTS, opts))
    low = run_to_completion(decode(model, PROMPTS, preset("fastest", decoder=decoder, width=width, max_new=6,
                                                          precision=precision)))
    assert [len(g) for g in low.hypotheses] == [len(g) for g in ref.hypotheses]
    ref_scores = [h.score for g in ref.hypotheses for h in g]
    low_scores = [h.score for g in low.hypotheses for h in g]
    assert ref_scores != low_scores
    assert all(s < 0 for s in low_scores)


@pytest.mark.skipif(not packs(GPT(PRESETS["tiny"])), reason="needs a torch with oneDNN on the CPU")
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (3, 1), (4, 5)])
def test_packed_linear_computes_the_linear(bias, shape):
    """Both of its paths (one row: the transposed weight; more rows: oneDNN's packed one) against F.linear."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(48, 80, bias=bias)
    x = torch.randn(*shape, 48)
    with torch.no_grad():
        torch.testing.assert_close(PackedLinear(lin)(x), lin(x), atol=1e-5, rtol=1e-5)
    assert PackedLinear(lin)(x).shape == (*shape, 80)


@pytest.mark.skipif(not packs(GPT(PRESETS["tiny"])), reason="needs a torch with oneDNN on the CPU")
def test_packed_is_a_copy_remade_after_a_weight_change(model):
    """Guards against a stale packed copy (the trainer decodes its validation with weights that keep moving) and
    against packing the model itself."""
    packed = model_at(model, "fp32", "packed")
    assert packed is not model and model_at(model, "fp32", "packed") is packed
    assert not any(type(m) is torch.nn.Linear for m in packed.modules())
    assert any(type(m) is torch.nn.Linear for m in model.modules())
    opts = preset("fastest", decoder="greedy", max_new=6, linear="aten")
    before = run_to_completion(decode(model, PROMPTS, replace(opts, linear="packed")))
    with torch.no_grad():
        model.head.weight.mul_(3.0)
    assert model_at(model, "fp32", "packed") is not packed
    after = run_to_completion(decode(model, PROMPTS, replace(opts, linear="packed")))
    plain = run_to_completion(decode(model, PROMPTS, opts))
    assert [h.score for g in after.hypotheses for h in g] != [h.score for g in before.hypotheses for h in g]
    assert [h.score for g in after.hypotheses for h in g] == pytest.approx([h.score for g in plain.hypotheses
                                                                           for h in g], abs=1e-4)
    bf16 = model_at(model, "bf16", "packed")
    assert bf16 is not model_at(model, "bf16") and next(bf16.parameters()).dtype == torch.bfloat16


@pytest.mark.skipif(not TILED, reason="needs the fused extension, AVX2 and FMA")
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("rows,cols", [(1, 80), (2, 31), (3, 50), (5, 16), (7, 33), (13, 80), (70, 80)])
def test_tiled_linear_computes_the_linear(bias, rows, cols):
    """Every kernel shape (1 to 6 rows per pass, 1 to 4 tiles at once, a last tile cut short, oneDNN from 64 rows)
    against F.linear."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(48, cols, bias=bias)
    x = torch.randn(rows, 48)
    with torch.no_grad():
        torch.testing.assert_close(TiledLinear(lin)(x), lin(x), atol=1e-5, rtol=1e-5)
        assert TiledLinear(lin)(x[None]).shape == (1, rows, cols)


@pytest.mark.skipif(not TILED, reason="needs the fused extension, AVX2 and FMA")
def test_a_tiled_row_does_not_depend_on_the_rows_beside_it():
    """Each output is summed in the same order whatever the number of rows (and threads): a problem decoded alone
    and in a batch gets bit-identical logits below PACKED_MIN_ROWS rows."""
    torch.manual_seed(1)
    lin = TiledLinear(torch.nn.Linear(256, 768))
    x = torch.randn(13, 256)
    with torch.no_grad():
        whole = lin(x)
        for r in range(13):
            assert torch.equal(lin(x[r:r + 1]), whole[r:r + 1])
        assert torch.equal(lin(x[3:9]), whole[3:9])


@pytest.mark.skipif(not TILED, reason="needs the fused extension, AVX2 and FMA")
def test_tiled_runs_as_packed_at_bf16(model):
    """The kernel is float32: at bf16 linear=tiled is linear=packed (the fastest preset's bf16 row)."""
    twin = model_at(model, "bf16", "tiled")
    assert twin is model_at(model, "bf16", "packed")
    assert not any(isinstance(m, TiledLinear) for m in twin.modules())
    assert any(isinstance(m, TiledLinear) for m in model_at(model, "fp32", "tiled").modules())
