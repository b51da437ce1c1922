"""Datasets of in-memory tensors served as whole batches: one index operation per batch, no per-item
Python calls (the DataLoader calls ``__getitems__`` with a batch's indices; :func:`whole_batch` is the
collate that leaves the result as it is)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import Dataset


class BatchTensors(Dataset):
    """Rows of equally long tensors served as whole batches: ``__getitems__(indices)`` returns the
    tuple of each tensor's rows ``indices`` (``__getitem__(i)``: a batch of one)."""

    def __init__(self, *tensors: Tensor) -> None:
        if len({t.shape[0] for t in tensors}) != 1:
            raise ValueError("every tensor needs the same number of rows")
        self.tensors = tensors

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        return self.__getitems__([i])

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, ...]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return tuple(t[index] for t in self.tensors)

    @property
    def targets(self) -> Tensor:
        return self.tensors[-1]


def whole_batch(batch: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """The collate of :class:`BatchTensors`: its batches are already whole."""
    return batch
