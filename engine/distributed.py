"""Several processes, one job: torch.distributed as `torchrun` launches it (gloo on the CPU, NCCL on CUDA).

    torchrun --standalone --nproc_per_node 2 -m engine.train ...            # one machine, two processes
    torchrun --nnodes 2 --nproc_per_node 8 --rdzv_id RUN --rdzv_backend c10d \\
             --rdzv_endpoint HOST:29500 -m engine.train ...     # the same on two machines

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE. Without them (plain `python -m ...`) `init` returns a one-process
`Dist` and every helper here works on local values alone, so single-process code runs no collective at all.
"""
from __future__ import annotations

import gc
import itertools
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # the process's index on its own machine: which GPU it drives

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group torchrun prepared, if any. Returns the Dist and this process's device: on CUDA
    rank r of a machine drives cuda:LOCAL_RANK (NCCL); on the CPU the backend is gloo."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist(), device
    d = Dist(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return d, device


@contextmanager
def joined(device: torch.device):
    """init() for the length of a `with` block, yielding (Dist, device); the group is left at its end. After a
    clean block every rank first waits, through the rendezvous store, until all have left their last collective,
    so no gloo message is in flight when the connections close (a rank that tore its group down straight after
    a gloo barrier once aborted with "terminate called without an active exception"). After an exception there
    is no wait, so a failing rank cannot hang."""
    d, device = init(device)
    clean = False
    try:
        yield d, device
        clean = True
    finally:
        if d.enabled and dist.is_initialized():
            gc.collect()  # a DDP wrapper left in a reference cycle lets go of the group before it is destroyed
            if clean:
                all_arrived(d)
            dist.destroy_process_group()


_WAITS = itertools.count()  # every rank waits the same number of times, so the n-th wait has the same key on all


def all_arrived(d: Dist, timeout: float = 600.0) -> None:
    """Wait until every rank has called this (one counter and one flag in the store, no gloo traffic)."""
    store, key = dist.distributed_c10d._get_default_store(), f"polydecode/arrived/{next(_WAITS)}"
    if store.add(key, 1) == d.world_size:
        store.set(key + "/all", "1")
    store.wait([key + "/all"], timedelta(seconds=timeout))


def gather_rows(d: Dist, values: list[float], device: torch.device) -> torch.Tensor:
    """Every rank's `values` as a (world_size, n) float64 tensor, on every rank (one collective)."""
    row = torch.tensor(values, dtype=torch.float64, device=device)
    if not d.enabled:
        return row.unsqueeze(0).cpu()
    rows = [torch.empty_like(row) for _ in range(d.world_size)]
    dist.all_gather(rows, row)
    return torch.stack(rows).cpu()


def all_gather_objects(d: Dist, obj) -> list:
    """Every rank's picklable `obj`, in rank order, on every rank."""
    if not d.enabled:
        return [obj]
    out = [None] * d.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(d: Dist, obj):
    """Rank 0's `obj` on every rank (the others pass anything, e.g. None)."""
    if not d.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@torch.no_grad()
def fingerprint(model: torch.nn.Module) -> list[float]:
    """Per parameter: its sum and a position-weighted sum (float64). Ranks that agree bit for bit agree here."""
    out = []
    for p in model.parameters():
        flat = p.detach().double().flatten()
        out += [flat.sum().item(), (flat * torch.arange(1, flat.numel() + 1, dtype=torch.float64,
                                                       device=flat.device)).sum().item()]
    return out


def check_in_sync(d: Dist, model: torch.nn.Module, device: torch.device) -> None:
    """Raise if any rank's parameters differ from rank 0's (DDP keeps them identical; this proves it)."""
    rows = gather_rows(d, fingerprint(model), device)
    bad = [r for r in range(1, rows.size(0)) if not torch.equal(rows[r], rows[0])]
    if bad:
        raise RuntimeError(f"parameters on rank(s) {bad} differ from rank 0's")
