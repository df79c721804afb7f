"""Device choice, synchronisation for honest timings, CPU threads, and where a figure was measured."""
from __future__ import annotations

import os
import platform
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
