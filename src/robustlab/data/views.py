"""Views over datasets: subsets, train/validation splits and cross-domain adaptation.

Views share the underlying images (no copy) and keep the batch fast path: a batch from a subset of an
in-memory dataset is still one tensor index, and :func:`adapt` converts channels and resizes whole
batches at once. A view inherits the ``transform`` of the dataset it wraps (applied once, on top);
use ``view.with_transform(None)`` to drop augmentation, e.g. on a validation split.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from robustlab.core.errors import RobustlabError
from robustlab.core.progress import log
from robustlab.data.base import ImageDataset
from robustlab.data.spec import size_pair

# ITU-R BT.601 luma weights, as PIL's convert("L") uses.
LUMA = (0.299, 0.587, 0.114)


class SubsetDataset(ImageDataset):
    """The items ``indices`` of ``base``, in that order."""

    def __init__(self, base: ImageDataset, indices: torch.Tensor | Sequence[int]) -> None:
        super().__init__(base.info, base.transform)
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        n = len(base)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise RobustlabError(f"subset indices must lie in [0, {n}) for dataset {base.info.name!r}")
        self.base = base
        self.indices = idx

    def __len__(self) -> int:
        return int(self.indices.numel())

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        return self.base._load(int(self.indices[index]))

    def _load_batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.base._load_batch(self.indices[torch.as_tensor(indices, dtype=torch.long).reshape(-1)])

    @property
    def targets(self) -> torch.Tensor:
        return self.base.targets[self.indices]

    @property
    def coarse_targets(self) -> torch.Tensor | None:
        coarse = self.base.coarse_targets
        return None if coarse is None else coarse[self.indices]

    @property
    def coarse_classes(self) -> list[str] | None:
        return self.base.coarse_classes


def convert_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Convert ``…×C×H×W`` images to ``channels``: 1→3 repeats, 3→1 takes BT.601 luminance."""
    c = x.shape[-3]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return x.expand(*x.shape[:-3], 3, *x.shape[-2:]).contiguous()
    if c == 3 and channels == 1:
        w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(3, 1, 1)
        return (x * w).sum(dim=-3, keepdim=True).clamp_(0.0, 1.0)
    raise RobustlabError(f"cannot convert {c}-channel images to {channels} channels; use 1 or 3")


def resize_images(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize ``N×C×H×W`` (or ``C×H×W``) images to ``size`` = (H, W), bilinear with antialiasing."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    single = x.dim() == 3
    xb = x.unsqueeze(0) if single else x
    out = F.interpolate(xb, size=size, mode="bilinear", align_corners=False, antialias=True).clamp_(0.0, 1.0)
    return out[0] if single else out


class AdaptedDataset(ImageDataset):
    """``base`` with its images converted to ``channels`` and resized to ``size``, lazily per batch."""

    def __init__(self, base: ImageDataset, channels: int, size: tuple[int, int]) -> None:
        info = base.info
        mean, std = info.mean, info.std
        if channels != info.channels:
            if channels == 3:  # gray repeated
                mean, std = mean * 3, std * 3
            else:  # luminance of RGB: mean is exact; std is the weighted std (approximate)
                mean = (sum(w * m for w, m in zip(LUMA, mean, strict=True)),)
                std = (sum(w * s for w, s in zip(LUMA, std, strict=True)),)
        super().__init__(
            dataclasses.replace(info, channels=channels, image_size=size, mean=mean, std=std), base.transform
        )
        self.base = base
        self.channels = channels
        self.size = size

    def __len__(self) -> int:
        return len(self.base)

    def _convert(self, x: torch.Tensor) -> torch.Tensor:
        return resize_images(convert_channels(x, self.channels), self.size)

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        x, y = self.base._load(index)
        return self._convert(x), y

    def _load_batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.base._load_batch(indices)
        if x.shape[0] == 0:
            return x.new_empty(0, *self.info.shape), y
        return self._convert(x), y

    @property
    def targets(self) -> torch.Tensor:
        return self.base.targets

    @property
    def coarse_targets(self) -> torch.Tensor | None:
        return self.base.coarse_targets

    @property
    def coarse_classes(self) -> list[str] | None:
        return self.base.coarse_classes


def adapt(ds: ImageDataset, channels: int | None = None, size: int | tuple[int, int] | None = None) -> ImageDataset:
    """Make ``ds`` look like another domain: ``channels`` (1 or 3) and ``size`` (H×W or square side).

    Grayscale becomes RGB by repeating the channel, RGB becomes grayscale by BT.601 luminance, and
    resizing is bilinear with antialiasing; pixels stay in [0, 1]. Returns ``ds`` itself when nothing
    changes. The returned view's ``info`` reports the new shape (``mean``/``std`` adjusted).
    """
    target_c = ds.info.channels if channels is None else channels
    if target_c not in (1, 3):
        raise RobustlabError(f"channels must be 1 or 3, got {channels!r}")
    if ds.info.channels not in (1, 3):
        raise RobustlabError(f"cannot adapt {ds.info.channels}-channel dataset {ds.info.name!r}")
    target_size = ds.info.image_size if size is None else size_pair(size)
    if target_c == ds.info.channels and tuple(target_size) == tuple(ds.info.image_size):
        return ds
    return AdaptedDataset(ds, target_c, target_size)


def subset(
    ds: ImageDataset, n: int | None = None, indices: Sequence[int] | torch.Tensor | None = None, seed: int = 0
) -> ImageDataset:
    """A view of ``ds``: either the given ``indices`` or the first ``n`` items of a seeded permutation.

    ``n`` larger than the dataset is clipped to its length. With neither argument the whole dataset
    is returned in seeded random order.
    """
    if indices is not None:
        if n is not None:
            raise RobustlabError("subset takes either n or indices, not both")
        return SubsetDataset(ds, indices)
    if n is not None and n < 0:
        raise RobustlabError(f"subset size must be >= 0, got {n}")
    total = len(ds)
    if n is not None and n > total:
        log.debug("subset of %d requested from %r with %d items; using all", n, ds.info.name, total)
    k = total if n is None else min(n, total)
    gen = torch.Generator().manual_seed(seed)
    return SubsetDataset(ds, torch.randperm(total, generator=gen)[:k])


def train_val_split(ds: ImageDataset, val_fraction: float, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """Split ``ds`` into disjoint (train, val) views; the same seed always gives the same split.

    ``round(val_fraction * len(ds))`` items (chosen by a seeded permutation, not stratified) go to
    validation, the rest to training; a positive fraction keeps at least one item on each side.
    ``val_fraction`` must lie in [0, 1); 0 gives an empty validation set. Both views keep
    ``ds.transform``.
    """
    if not (isinstance(val_fraction, int | float) and math.isfinite(val_fraction) and 0 <= val_fraction < 1):
        raise RobustlabError(f"validation fraction must be in [0, 1), got {val_fraction!r}")
    total = len(ds)
    n_val = round(val_fraction * total)
    if val_fraction > 0 and total > 1:
        n_val = min(max(n_val, 1), total - 1)
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(total, generator=gen)
    return SubsetDataset(ds, perm[n_val:]), SubsetDataset(ds, perm[:n_val])
