"""Device choice, synchronisation for honest timings, CPU threads, where a figure was measured, and the
process's memory (resident, peak, released)."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
import platform
import sys
from contextlib import nullcontext
from importlib import metadata

import torch
from torch.profiler import record_function


def pick_device(requested: str | None = None) -> torch.device:
    """CUDA wherever a GPU is present, else the CPU; `requested` ("cpu", "cuda", "cuda:1") overrides."""
    if requested is None or requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise ValueError(f"unknown device {requested!r}; use cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA GPU is available here")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"unsupported device {requested!r}; use cpu or cuda")
    return device


def synchronize(device: torch.device | str | None = None) -> None:
    """Wait for queued GPU work (a no-op on the CPU), so a timer measures finished work."""
    device = torch.device(device) if device is not None else None
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def phase(name: str):
    """record_function(name) while a profiler records, else a free no-op (labels cost time per step)."""
    return record_function(name) if torch.autograd._profiler_enabled() else nullcontext()


STEP_PREFIX = "ProfilerStep#"  # what torch.profiler's step() names a step; TensorBoard's plugin counts these


def step_range(step: int):
    """The profiler step range of one decode step (TensorBoard's Overview shows one step per range)."""
    return phase(f"{STEP_PREFIX}{step}")


def set_threads(n: int | None) -> None:
    """Set torch's intra-op CPU threads for a CLI's --threads flag (None: leave torch's choice)."""
    if n is None:
        return
    if n < 1:
        raise ValueError("--threads must be >= 1")
    torch.set_num_threads(n)


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def machine_info(device: torch.device | str | None = None) -> dict:
    """Where a figure was measured: CPU, cores, threads, library versions and the device (the GPU's name
    when it is a CUDA device, else "cpu"; with no device given, the GPU when one is present)."""
    device = pick_device(None if device is None else str(device))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "transformers": _version("transformers"), "device": name}


# ---------------------------------------------------------------- process memory

@functools.cache
def _libc():
    """glibc, or None elsewhere (musl, macOS, Windows): malloc_trim is a glibc extension."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def release_memory() -> bool:
    """Give memory that freed tensors left in the allocator back to the operating system.

    A heavy job (no-cache attention on long prompts, wide beams) frees its temporaries, but glibc keeps
    the freed pages in its arenas, so a server's resident memory only grows. This collects garbage,
    asks glibc to return every free page of every arena (malloc_trim(0)) and empties the CUDA cache.
    Returns True when malloc_trim ran (glibc only)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_bytes() -> int:
    """This process's resident memory now (Linux: /proc; elsewhere the lifetime peak is all there is)."""
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else peak_rss_bytes()


def reset_peak_rss() -> bool:
    """Start a new peak-memory window (Linux: writing 5 to /proc/self/clear_refs resets VmHWM).
    Returns False where the peak cannot be reset; peak_rss_bytes() is then the process's lifetime peak."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    """The highest resident memory since reset_peak_rss() (or since the process started)."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def heap_trimmer():
    """A function that hands the C heap's free pages back to the OS (glibc's malloc_trim), or does nothing
    where that is not available.

    Training allocates tensors whose sizes change every step (each batch has its own shape). glibc's malloc
    raises its mmap threshold each time a large block is freed, so later blocks of those sizes come from the
    heap, and the freed space stays mapped: a training process grew from 0.5 to 3 GB in seven minutes (and to
    7 GB over longer runs) without this. Trimming after each step keeps it flat at a cost of well under a
    millisecond, where a fixed mmap threshold (MALLOC_MMAP_THRESHOLD_) cost about 20% of the step rate."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl)
        return lambda: None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return lambda: trim(0)
