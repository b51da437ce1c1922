"""The data of one run: named streams, the facts models are sized by, and how batches are made."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch.utils.data import Dataset, Sampler

from robustlab.core.errors import RobustlabError


@dataclass
class DataBundle:
    """The streams of one experiment by name: ``train`` and ``test`` always, ``val`` when the lab
    holds data out, and any extras a lab needs (e.g. a DreamBooth ``prior`` set). ``info`` describes
    the data (a :class:`~robustlab.data.spec.DataInfo`); ``collate`` turns a list of examples into a
    batch (``None``: the image-pair default); ``train_batches(batch_size, seed, world, rank)`` builds the
    training split's batch sampler when the lab batches by itself (e.g. by sequence length; it must
    have ``set_epoch`` so the order is a function of ``(seed, epoch)``; ``None``: shuffled batches of a
    DistributedSampler); ``extras`` carries lab-specific objects (a vocabulary)."""

    info: Any
    streams: dict[str, Dataset]
    collate: Callable[[list[Any]], Any] | None = None
    train_batches: Callable[[int, int, int, int], Sampler[list[int]]] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Dataset:
        if name not in self.streams:
            raise RobustlabError(f"no data stream {name!r}; this run has: {', '.join(self.streams)}")
        return self.streams[name]

    def get(self, name: str) -> Dataset | None:
        """The stream ``name`` or ``None``."""
        return self.streams.get(name)

    @property
    def train(self) -> Dataset:
        return self["train"]

    @property
    def val(self) -> Dataset | None:
        return self.streams.get("val")

    @property
    def test(self) -> Dataset:
        return self["test"]
