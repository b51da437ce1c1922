"""DataLoaders with reproducible shuffling, a pluggable collate and a lean default for ``(image, label)`` pairs."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from robustlab.core.errors import RobustlabError


def collate_pairs(batch: Sequence[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(x, y)`` pairs into ``(x: float32 B×C×H×W, y: int64 B)``."""
    if not batch:
        raise RobustlabError("cannot collate an empty batch")
    xs = torch.stack([x for x, _ in batch])
    ys = torch.as_tensor([int(y) for _, y in batch], dtype=torch.long)
    return xs, ys


def _seed_worker(worker_id: int) -> None:
    """Derive numpy/random seeds in each worker from torch's per-worker seed (reproducible)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(
    ds: Dataset,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    sampler: Sampler | None = None,
    num_workers: int = 0,
    pin_memory: bool = False,
    collate: Callable[[list[Any]], Any] | None = None,
    batch_sampler: Sampler[list[int]] | None = None,
) -> DataLoader:
    """A DataLoader of ``collate``-made batches; by default ``(x: float32 B×C×H×W in [0, 1], y: int64 B)``.

    With ``shuffle`` the order comes from a generator seeded with ``seed``: two loaders built with
    the same seed iterate in the same order (each further epoch of one loader reshuffles, also
    reproducibly). ``sampler`` (e.g. a DistributedSampler) replaces shuffling; ``batch_sampler`` (lists
    of indices) replaces batch size, shuffling and sampler alike. In-memory datasets
    serve each batch through ``__getitems__`` with a single tensor index.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise RobustlabError(f"batch size must be a positive integer, got {batch_size!r}")
    if num_workers < 0:
        raise RobustlabError(f"num_workers must be >= 0, got {num_workers}")
    if sampler is not None and shuffle:
        raise RobustlabError("pass either shuffle or a sampler, not both (the sampler decides the order)")
    generator = torch.Generator().manual_seed(seed)
    if batch_sampler is not None:
        return DataLoader(ds, batch_sampler=batch_sampler, num_workers=num_workers, collate_fn=collate or collate_pairs,
                          pin_memory=pin_memory, worker_init_fn=_seed_worker if num_workers > 0 else None,
                          persistent_workers=num_workers > 0)
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=collate or collate_pairs,
        pin_memory=pin_memory,
        generator=generator,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        persistent_workers=num_workers > 0,
    )
