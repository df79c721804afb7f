"""The model as a decode runs it: at a precision, float32 (the model itself), bfloat16 (a bf16 copy) or int8-dynamic
(a copy whose Linear layers hold int8 weights and quantize their input per call, torch.ao's dynamic quantization),
and with its linears' weights as trained (linear "aten": F.linear) or prepared for the CPU (linear "packed",
linear "tiled").

"packed" (PackedLinear): each weight is kept twice, transposed to (in, out) for up to PACKED_MIN_ROWS - 1 rows
(MKL then reads it in order: batch-1 greedy, a beam of one problem, a prompt's prefill) and in oneDNN's blocked
layout for more (wide batches), where oneDNN's packed GEMM beats MKL's (python -m engine.bench engines measures
the gain). The products are summed in another order, so logits may differ in the last bits:
"packed" is in the equivalence tests like every exact option (same tokens, scores within 1e-4). On a GPU, or a
torch without oneDNN, the copy is the model itself. int8-dynamic's linears are quantized modules: "packed" leaves
them as they are.

"tiled" (TiledLinear): "packed" with a hand-written AVX2 kernel instead of MKL below PACKED_MIN_ROWS rows
(fused_step.cpp's tiled_linear, built with the fused step's extension): the weight stored as 16-column tiles
of (in, 16) floats, read once and in order per call, each output summed over the inputs in order. At one to a
few dozen rows a decode step's linears are memory- and latency-bound, and MKL's small-row GEMM reaches a
fraction of what the core can do (python -m engine.bench engines measures both). Where the extension cannot
be built or the CPU lacks AVX2 and FMA, "tiled" runs as "packed" (a warning says why); at bf16 and
int8-dynamic it is "packed" (the kernel is float32).

Only float32 gives the outputs every other option is checked against; bf16 and int8-dynamic may change them,
so the bench and the Compare tab report their measured agreement with float32 instead of claiming identity.
A copy is made once per model and precision and reused while the model's weights are unchanged (their
versions are checked on every call); the model itself is never modified.
"""
from __future__ import annotations

import copy
import warnings
import weakref

import torch
import torch.nn as nn
import torch.nn.functional as F

from .native import FusedUnavailable, extension
from .options import LINEARS, PRECISIONS

_copies: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


_registered = [0]  # parameters registered on any module so far (a new or replaced weight counts)
torch.nn.modules.module.register_module_parameter_registration_hook(
    lambda module, name, param: _registered.__setitem__(0, _registered[0] + 1))
_params: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


def signature(model: nn.Module) -> tuple:
    """Changes when any weight is replaced or written in place (inference tensors, such as a copy made under
    inference_mode, keep no version counter: their address alone). The parameter list is walked once and kept
    until any module registers a parameter: a walk of the module tree costs more than a short decode's setup."""
    held = _params.get(model)
    if held is None or held[0] != _registered[0]:
        held = _params[model] = (_registered[0], tuple(model.parameters()))
    return tuple((p.data_ptr(), -1 if p.is_inference() else p._version) for p in held[1])


def _convert(model: nn.Module, precision: str) -> nn.Module:
    twin = copy.deepcopy(model)
    if precision == "bf16":
        return twin.to(torch.bfloat16).eval()
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("precision int8-dynamic runs on the CPU only")
    with warnings.catch_warnings():  # torch.ao's eager quantization warns that it is moving to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(twin.float(), {nn.Linear}, dtype=torch.qint8).eval()


# Rows from which oneDNN's packed GEMM beats MKL's on the (in, out) weight, measured for the shipped model's four
# linear shapes on one thread (Xeon, AVX2): the sum of the four shapes' times in microseconds
#   rows        1     10     30     43    300    1300
#   (in, out)  40    139    318    510   3346  13546
#   packed    108    185    392    623   3203  12849
PACKED_MIN_ROWS = 64


class PackedLinear(nn.Module):
    """nn.Linear's forward with the weight prepared for the CPU: transposed for a few rows, oneDNN-packed for
    PACKED_MIN_ROWS or more. Holds copies, not the trained parameters (it is made for decoding, under no_grad)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        w = linear.weight.detach()
        self.out_features = linear.out_features
        self.wt = w.t().contiguous()  # (in, out)
        try:
            self.packed = torch.ops.mkldnn._reorder_linear_weight(w, None)
        except RuntimeError:  # e.g. bf16 on a CPU without AVX-512 or AVX-NE-CONVERT: the (in, out) GEMM for all rows
            self.packed = None
        self.bias = None if linear.bias is None else linear.bias.detach().clone()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.size(-1)
        if rows >= PACKED_MIN_ROWS and self.packed is not None:  # many rows: oneDNN's packed GEMM
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        flat = x.reshape(rows, -1)
        y = flat @ self.wt if self.bias is None else torch.addmm(self.bias, flat, self.wt)
        return y.view(*x.shape[:-1], self.out_features)


class TiledLinear(PackedLinear):
    """PackedLinear with fused_step.cpp's tiled kernel below PACKED_MIN_ROWS rows (linear "tiled")."""

    def __init__(self, linear: nn.Linear):
        super().__init__(linear)
        self.ext = extension()
        self.tiles = self.ext.tile_weight(linear.weight.detach().float().contiguous())
        self.tiles_bias = None if self.bias is None else F.pad(self.bias, (0, self.tiles.size(0) * 16 - self.out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.size(-1)
        if rows >= PACKED_MIN_ROWS:
            return super().forward(x)
        y = self.ext.tiled_linear(x.reshape(rows, -1), self.tiles, self.tiles_bias, self.out_features)
        return y.view(*x.shape[:-1], self.out_features)


def packs(model: nn.Module) -> bool:
    """Whether linear "packed" changes anything for this model: on the CPU with oneDNN, float weights."""
    p = next(model.parameters())
    return p.device.type == "cpu" and p.is_floating_point() and torch.backends.mkldnn.is_available()


def _pack(twin: nn.Module, kind: type = PackedLinear) -> nn.Module:
    """`twin` (a copy, changed in place) with every nn.Linear replaced by a PackedLinear (or TiledLinear)."""
    with torch.no_grad():
        for module in list(twin.modules()):
            for name, child in module.named_children():
                if type(child) is nn.Linear:
                    setattr(module, name, kind(child))
    return twin.eval()


def model_at(model: nn.Module, precision: str, linear: str = "aten") -> nn.Module:
    """`model` itself for fp32 with linear "aten", else its copy at `precision` with its linears packed or not
    (made on first use, remade after a weight change)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if linear not in LINEARS:
        raise ValueError(f"unknown linear {linear!r}; choose from {', '.join(LINEARS)}")
    if linear == "tiled" and precision != "fp32":  # the kernel is float32: the preset's bf16 runs as packed
        linear = "packed"
    if linear == "tiled" and packs(model):
        why = tiled_unavailable()
        if why is not None:
            if why not in _warned:
                _warned.add(why)
                warnings.warn(f"linear=tiled runs as linear=packed: {why}", RuntimeWarning, stacklevel=3)
            linear = "packed"
    if linear in ("packed", "tiled") and not packs(model):
        linear = "aten"
    if precision == "fp32" and linear == "aten":
        return model
    held = _copies.setdefault(model, {})
    sig = signature(model)
    key = (precision, linear)
    if key not in held or held[key][0] != sig:
        twin = copy.deepcopy(model) if precision == "fp32" else _convert(model, precision)  # never the model
        held[key] = (sig, twin if linear == "aten" else _pack(twin, TiledLinear if linear == "tiled" else PackedLinear))
    return held[key][1]


_warned: set[str] = set()  # each reason for running "tiled" as "packed" is said once per process


def tiled_unavailable() -> str | None:
    """None where linear "tiled" can run here (the extension builds, the CPU has AVX2 and FMA), else why not."""
    try:
        if not extension().tiled_supported():
            return "this CPU lacks AVX2 and FMA"
    except FusedUnavailable as e:
        return str(e)
    return None
