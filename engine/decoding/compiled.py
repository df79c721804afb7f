"""DecodeOptions.compile: the decode step through torch.compile.

GPT.decode_step feeds one token per row against the static cache's whole buffers (every position up to the
cache's end, the unwritten ones masked) and takes the write position as a tensor, so no shape changes from
step to step. torch.compile (Inductor: fused C++ kernels on the CPU) compiles it once per model with dynamic
row and buffer sizes; the first decode pays the compile (seconds), later ones reuse it. The prefill stays
eager: it runs once per request, at a different length each time.

"inductor" is in the equivalence tests like every other exact option (same tokens, scores within 1e-4);
whether it is faster is measured (python -m engine.bench engines), never assumed.
"""
from __future__ import annotations

import weakref

import torch

_compiled: "weakref.WeakKeyDictionary[torch.nn.Module, object]" = weakref.WeakKeyDictionary()


def compiled_step(model):
    """model.decode_step compiled by Inductor (made on first use, kept while the model lives). Weights are
    read at call time, not frozen in, so a model whose weights change keeps giving its current outputs."""
    fn = _compiled.get(model)
    if fn is None:
        fn = _compiled[model] = torch.compile(model.decode_step, backend="inductor", dynamic=True, fullgraph=True)
    return fn
