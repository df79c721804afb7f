"""DecodeOptions.step = "fused": every layer of a decode step in one C++ call (fused_step.cpp); step = "native":
the same, with the new token's attention in the extension's own loop per row and head instead of ATen's calls.

The module path (GPT.forward with a KV cache) runs ~60 ATen operations a step for the 4-layer model, each
reached through nn.Module calls, Python argument parsing and views: on a CPU at batch 1 that Python costs
about as much as the arithmetic. fused_step.cpp runs the same operations in the same order from C++, on the
same weights in the same layouts (F.linear's transposed view for linear "aten"; PackedLinear's transposed and
oneDNN-packed copies for "packed"; TiledLinear's tiles for "tiled", through the same kernel), so outputs match
the module path; it is in the equivalence tests like every
exact option, and python -m engine.bench engines measures what it saves.

It covers the prefill (the prompt into an empty cache) and every decode step, on the static KV cache (plain, or
as the shared-prefix cache's generated part), and beam search's per-step selection (beam.py). The extension is
compiled with torch.utils.cpp_extension on first use (a C++ compiler and ninja; about half a minute once, then
cached under torch's extensions folder); where it cannot be built, decoding warns and runs the module path.
"""
from __future__ import annotations

import warnings
import weakref

import torch
import torch.nn as nn

from .native import FusedUnavailable, available, extension  # noqa: F401 (available: re-exported)
from .precision import PACKED_MIN_ROWS, PackedLinear, TiledLinear, signature

_weights: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


def session_weights(model: nn.Module):
    """weights(model) for a decode with step=fused; None, with a warning naming the reason, where the extension
    cannot be built: the decode then runs the module path (same outputs, the module path's speed)."""
    try:
        return weights(model)
    except FusedUnavailable as e:
        warnings.warn(f"{e}; decoding with step=modules instead", RuntimeWarning, stacklevel=3)
        return None


def _linear(mod: nn.Module) -> tuple[list, bool]:
    """[weight for one row, weight for several, bias] as the module would use them; whether oneDNN-packed."""
    if isinstance(mod, PackedLinear):
        if mod.packed is None:  # oneDNN could not pack it here: the (in, out) weight for every row count
            return [mod.wt, mod.wt, mod.bias], False
        return [mod.wt, mod.packed, mod.bias], True
    if type(mod) is not nn.Linear:
        raise ValueError(f"step=fused runs float nn.Linear or packed layers, not {type(mod).__name__}")
    w = mod.weight.detach()
    return [w.t(), w.t(), None if mod.bias is None else mod.bias.detach()], False


def _prepare(model: nn.Module):
    lin, tiles, norms, kinds = [], [], [], set()
    linears = [mod for block in model.blocks for mod in (block.attn.qkv, block.attn.proj, block.mlp[0], block.mlp[2])]
    for mod in linears + [model.head]:
        entries, packed = _linear(mod)
        lin += entries
        kinds.add((packed, isinstance(mod, TiledLinear)))
        if isinstance(mod, TiledLinear):
            tiles += [mod.tiles, mod.tiles_bias]
    for block in model.blocks:
        norms += [block.ln1.weight.detach(), block.ln1.bias.detach(), block.ln2.weight.detach(), block.ln2.bias.detach()]
    norms += [model.ln_f.weight.detach(), model.ln_f.bias.detach()]
    if len(kinds) != 1:
        raise ValueError("step=fused needs every linear of the model in one layout")
    packed, _ = kinds.pop()
    return extension().Weights(lin, PACKED_MIN_ROWS if packed else 0, tiles, norms, model.tok_emb.weight.detach(),
                               model.pos_emb.detach()[0], model.config.n_head, model.ln_f.eps)


def weights(model: nn.Module):
    """`model`'s tensors as fused_step.cpp reads them (no copies; a C++ object that runs the step), remade
    after a weight change. A session takes it once: weights do not change within a decode."""
    sig = signature(model)
    held = _weights.get(model)
    if held is None or held[0] != sig:
        held = _weights[model] = (sig, _prepare(model))
    return held[1]


def fused_step(w, tok: torch.Tensor, pos: torch.Tensor, t: int, k_bufs, v_bufs, key_mask: torch.Tensor | None,
               prefix=None, attention: str = "sdpa", native: bool = False,
               slots: torch.Tensor | None = None) -> torch.Tensor:
    """Logits (R, V) for one new token per row: GPT.forward(tok[:, None], pos, key_mask, cache)[:, -1] on a
    static cache whose buffers are k_bufs, v_bufs (written at t, or t - P under a shared prefix); w from
    weights(model). prefix: (prefix_k, prefix_v, prefix_mask) of a shared-prefix cache, or None. native (step
    "native"): the attention of the new token in fused_step.cpp's own loop instead of ATen's operations; slots
    (native only): the static cache's table of which buffer row holds each row's positions (StaticCache.slots)."""
    pk, pv, pmask = prefix if prefix is not None else ([], [], None)
    return w.step(tok, pos, t, k_bufs, v_bufs, key_mask, pk, pv, pmask, attention == "sdpa", native, slots)
