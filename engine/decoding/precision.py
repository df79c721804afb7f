"""The model at a decode precision: float32 (the model itself), bfloat16 (a bf16 copy) or int8-dynamic (a copy
whose Linear layers hold int8 weights and quantize their input per call, torch.ao's dynamic quantization).

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

from .options import PRECISIONS

_copies: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def _signature(model: nn.Module) -> tuple:
    """Changes when any weight is replaced or written in place."""
    return tuple((p.data_ptr(), p._version) for p in model.parameters())


def _convert(model: nn.Module, precision: str) -> nn.Module:
    twin = copy.deepcopy(model)
    if precision == "bf16":
        return twin.to(torch.bfloat16).eval()
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("precision int8-dynamic runs on the CPU only")
    with warnings.catch_warnings():  # torch.ao's eager quantization warns that it is moving to torchao
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(twin.float(), {nn.Linear}, dtype=torch.qint8).eval()


def model_at(model: nn.Module, precision: str) -> nn.Module:
    """`model` itself for fp32, else its copy at `precision` (made on first use, remade after a weight change)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return model
    held = _copies.setdefault(model, {})
    sig = _signature(model)
    if precision not in held or held[precision][0] != sig:
        held[precision] = (sig, _convert(model, precision))
    return held[precision][1]
