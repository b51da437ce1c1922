"""Token-sequence examples of a molecule split and how they are batched.

A :class:`SequenceSet` holds padded token ids of one or more SMILES per molecule (``variants``: the
canonical string, or randomised ones for augmentation; the variant a molecule shows is drawn per
epoch from ``(seed, epoch)``). Batches are served whole (``__getitems__``) and trimmed to their own
longest sequence; :class:`LengthBuckets` groups molecules of similar length into the same batches so
little padding is computed, while the order stays a function of ``(seed, epoch)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset, Sampler


class SequenceSet(Dataset):
    """``ids (V, N, L)`` int64 right-padded with 0, ``lengths (V, N)``, ``labels (N,)`` in {0, 1}.
    Indexing serves whole batches: ``__getitems__(indices)`` (and ``__getitem__(i)``, a batch of one)
    return ``(ids (B, l) with l = the batch's longest length, lengths (B,), labels (B,) float32)``."""

    def __init__(self, ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> None:
        if ids.dim() == 2:
            ids, lengths = ids[None], lengths[None]
        self.ids, self.lengths, self.labels = ids, lengths, labels.long()
        self.seed, self._choice = seed, None

    def __len__(self) -> int:
        return self.ids.shape[1]

    @property
    def variants(self) -> int:
        return self.ids.shape[0]

    def set_epoch(self, epoch: int) -> None:
        """Draw each molecule's variant for ``epoch`` (only when there are several)."""
        if self.variants > 1:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self._choice = torch.randint(self.variants, (len(self),), generator=g)

    def _variant(self, index: torch.Tensor) -> torch.Tensor:
        return self._choice[index] if self._choice is not None else torch.zeros_like(index)

    def __getitem__(self, i: int):
        return self.__getitems__([i])

    def __getitems__(self, indices: list[int]):
        index = torch.as_tensor(indices, dtype=torch.long)
        v = self._variant(index)
        lengths = self.lengths[v, index]
        longest = int(lengths.max()) if len(index) else 1
        return self.ids[v, index, :longest], lengths, self.labels[index].float()


def collate_batch(batch):
    """A batch from ``__getitems__`` is already whole."""
    return batch


class LengthBuckets(Sampler[list[int]]):
    """Batches of indices of similar length: each epoch shuffles (seeded by ``(seed, epoch)``), cuts
    the order into chunks of ``bucket`` batches, sorts each chunk by length, cuts it into batches and
    shuffles the batches. Under DDP each rank takes every ``world``-th batch."""

    def __init__(self, data: SequenceSet, batch_size: int, seed: int, bucket: int = 50, world: int = 1,
                 rank: int = 0) -> None:
        self.data, self.batch_size, self.seed, self.bucket = data, batch_size, seed, bucket
        self.world, self.rank, self.epoch = world, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.data.set_epoch(epoch)

    def _batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_033 + self.epoch)
        order = torch.randperm(len(self.data), generator=g)
        lengths = self.data.lengths[self.data._variant(order), order]
        chunk = self.batch_size * self.bucket
        batches = []
        for start in range(0, len(order), chunk):
            part = order[start:start + chunk]
            part = part[torch.sort(lengths[start:start + chunk], stable=True).indices]
            batches += [part[i:i + self.batch_size].tolist() for i in range(0, len(part), self.batch_size)]
        perm = torch.randperm(len(batches), generator=g).tolist()
        batches = [batches[p] for p in perm]
        if self.world > 1:  # every rank the same number of batches (DDP steps in lockstep)
            batches = batches[: len(batches) // self.world * self.world]
        return batches[self.rank::self.world]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        chunk = self.batch_size * self.bucket
        total = sum(-(-min(chunk, len(self.data) - s) // self.batch_size) for s in range(0, len(self.data), chunk))
        return total if self.world == 1 else total // self.world
