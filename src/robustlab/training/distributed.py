"""torchrun/DDP plumbing: who am I, reduce sums across ranks, rank-0-only side effects.

Everything here is a no-op in a single process, so the same code runs on one CPU, one GPU or many.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


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
    if is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return is_distributed()
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


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
