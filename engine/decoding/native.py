"""The C++ extension behind step=fused and linear=tiled (fused_step.cpp), compiled with torch.utils.cpp_extension on
first use (a C++ compiler and ninja; about half a minute once, then cached under torch's extensions folder)."""
from __future__ import annotations

import os
import threading

_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fused_step.cpp")
_lock = threading.Lock()
_ext = None
_error: str | None = None  # why the extension could not be built, once tried


class FusedUnavailable(RuntimeError):
    """The C++ step could not be built here (no compiler, no ninja): the message says what is missing."""


def extension():
    """The compiled fused_step.cpp (built on first use, then loaded from torch's extensions cache); raises
    FusedUnavailable, saying why, where it cannot be built (tried once per process)."""
    global _ext, _error
    with _lock:
        if _ext is None and _error is None:
            from torch.utils import cpp_extension
            try:
                cpp_extension.verify_ninja_availability()
                _ext = cpp_extension.load(name="polydecode_fused_step", sources=[_SOURCE],
                                          extra_cflags=["-O2"], verbose=False)
            except (RuntimeError, OSError, ImportError) as e:
                last = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                _error = f"step=fused needs a C++ compiler and ninja to build {_SOURCE} ({last})"
        if _ext is None:
            raise FusedUnavailable(_error)
    return _ext


def available() -> bool:
    """Whether the fused step runs here (builds it on first call)."""
    try:
        extension()
    except FusedUnavailable:
        return False
    return True
