"""torchrun/DDP plumbing: who am I, reduce sums across ranks, rank-0-only side effects.

Everything here is a no-op in a single process, so the same code runs on one CPU, one GPU or many.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.distributed as dist

_SOLO = False  # inside solo(): this process works alone although a process group exists


def is_distributed() -> bool:
    """Whether this process shares its work with other ranks (False inside :func:`solo`)."""
    return not _SOLO and dist.is_available() and dist.is_initialized()


@contextmanager
def solo() -> Iterator[None]:
    """Inside, this process acts as a one-process job (world 1, rank 0, every collective a no-op)
    although torchrun started it among others: how ranks that were dealt whole runs (the folds of a
    cross-validation) train them independently."""
    global _SOLO
    before, _SOLO = _SOLO, True
    try:
        yield
    finally:
        _SOLO = before


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env(device_type: str = "cpu") -> bool:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1); return whether we did.

    gloo on CPU, nccl on CUDA. Sets the CUDA device to ``LOCAL_RANK``.
    """
    if (dist.is_available() and dist.is_initialized()) or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return is_distributed()
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def init_job_sharing() -> bool:
    """Join torchrun's process group for ranks that share out whole jobs rather than batches (only small
    CPU messages pass between them, so gloo); on a CUDA machine each rank takes GPU ``LOCAL_RANK``.
    Returns whether a process group exists."""
    if torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return init_from_env("cpu")


def local_device(device: torch.device) -> torch.device:
    """The device this rank should use (``cuda:LOCAL_RANK`` under torchrun on GPUs)."""
    if device.type == "cuda" and is_distributed():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def all_reduce_sums(sums: dict[str, torch.Tensor]) -> dict[str, float]:
    """Sum each tensor across ranks (one collective for all) and return Python floats."""
    if not sums:
        return {}
    keys = sorted(sums)
    flat = torch.stack([sums[k].detach().float().reshape(()) for k in keys])
    if is_distributed():
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    values = flat.cpu().tolist()
    return dict(zip(keys, values, strict=True))


def sum_rows_(t: torch.Tensor, owned: torch.Tensor) -> torch.Tensor:
    """Combine a per-sample tensor ``(..., N)`` whose last-dim rows each rank filled only where
    ``owned`` ``(N,)`` is true (every row owned by exactly one rank): afterwards every rank holds all
    rows, bit-identical to the owner's. No-op in a single process. Returns the combined tensor."""
    if not is_distributed():
        return t
    kept = torch.where(owned, t, torch.zeros((), dtype=t.dtype))  # also clears NaN in rows owned elsewhere
    work = kept.to(torch.int64) if t.dtype in (torch.bool, torch.uint8, torch.int32) else kept.clone()
    dist.all_reduce(work, op=dist.ReduceOp.SUM)  # x + 0 is exact, also for float and ±inf/NaN owners
    return work.to(t.dtype)


def sum_(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over ranks (a copy; the input itself when not distributed)."""
    if not is_distributed():
        return t
    work = t.clone()
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    return work


def gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Every rank's ``t`` ``(n_r, ...)`` concatenated along dim 0 in rank order, on every rank
    (ranks may hold different ``n_r``; the trailing shape and dtype must agree). Exact: values are
    copied, never reduced. ``t`` itself in a single process."""
    if not is_distributed():
        return t
    n = torch.tensor([t.shape[0]], dtype=torch.int64, device=t.device)
    sizes = [torch.zeros_like(n) for _ in range(world_size())]
    dist.all_gather(sizes, n)
    counts = [int(s.item()) for s in sizes]
    longest = max(counts)
    padded = torch.zeros((longest, *t.shape[1:]), dtype=t.dtype, device=t.device)
    padded[: t.shape[0]] = t
    parts = [torch.zeros_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)])


def broadcast_json(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (JSON-serialisable; NaN/inf allowed) on every rank, sent as UTF-8
    bytes — no pickling. Returns ``obj`` itself in a single process."""
    if not is_distributed():
        return obj
    mine = rank() == src
    payload = json.dumps(obj).encode() if mine else b""
    size = torch.tensor([len(payload)], dtype=torch.int64)
    dist.broadcast(size, src=src)
    buf = torch.zeros(int(size.item()), dtype=torch.uint8)
    if mine:
        buf.copy_(torch.frombuffer(bytearray(payload), dtype=torch.uint8))
    dist.broadcast(buf, src=src)
    return obj if mine else json.loads(bytes(buf.tolist()).decode())


def barrier() -> None:
    if is_distributed():
        dist.barrier()


class ShardSampler(torch.utils.data.Sampler[int]):
    """Indices ``rank, rank + world, rank + 2·world, …`` of ``range(n)``: every sample on exactly one
    rank, no padding, no duplicates — so summed metrics over ranks equal a single process's exactly."""

    def __init__(self, n: int, rank_: int | None = None, world: int | None = None) -> None:
        self.n = n
        self.rank = rank() if rank_ is None else rank_
        self.world = world_size() if world is None else world

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world))


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """The command that relaunches ``python -m robustlab <argv>`` under torchrun with ``nproc`` ranks."""
    import sys

    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "robustlab", *argv]
