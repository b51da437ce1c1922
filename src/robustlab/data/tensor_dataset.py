"""In-memory datasets: all images in one ``N×C×H×W`` tensor.

CIFAR, SVHN, MNIST, Fashion-MNIST, digits and font-digits fit in memory as uint8 (CIFAR-10 train is
150 MB), so they are decoded once into a :class:`TensorImageDataset`. A batch then costs one tensor
index and one float conversion instead of one Python call per image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from robustlab.core.errors import RobustlabError
from robustlab.data.base import ImageDataset, Transform
from robustlab.data.spec import DatasetInfo


class TensorImageDataset(ImageDataset):
    """Images held in a tensor.

    Args:
        data: ``N×C×H×W`` uint8 (0..255, divided by 255 on access) or floating point already in [0, 1]
            (returned as float32).
        targets: ``N`` integer labels.
        info: description; its ``channels``/``image_size`` must match ``data``.
        transform: optional per-image callable on float ``C×H×W`` [0, 1] images.
        coarse_targets: optional ``N`` superclass labels (CIFAR-100).
        coarse_classes: names of the superclasses.
    """

    def __init__(
        self,
        data: torch.Tensor,
        targets: torch.Tensor | Sequence[int],
        info: DatasetInfo,
        transform: Transform | None = None,
        coarse_targets: torch.Tensor | Sequence[int] | None = None,
        coarse_classes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(info, transform)
        if data.dim() != 4:
            raise RobustlabError(f"dataset {info.name!r}: expected N×C×H×W images, got shape {tuple(data.shape)}")
        if data.dtype != torch.uint8 and not data.is_floating_point():
            raise RobustlabError(f"dataset {info.name!r}: images must be uint8 or float, got {data.dtype}")
        targets = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
        if targets.numel() != data.shape[0]:
            raise RobustlabError(f"dataset {info.name!r}: {data.shape[0]} images but {targets.numel()} labels")
        if tuple(data.shape[1:]) != info.shape:
            raise RobustlabError(f"dataset {info.name!r}: images are {tuple(data.shape[1:])}, info says {info.shape}")
        self.data = data
        self._targets = targets
        self._coarse = None if coarse_targets is None else torch.as_tensor(coarse_targets, dtype=torch.long)
        self._coarse_classes = None if coarse_classes is None else list(coarse_classes)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def _to_float(self, x: torch.Tensor) -> torch.Tensor:
        """float32 in [0, 1], always a new tensor (callers may modify it in place)."""
        if x.dtype == torch.uint8:
            return x.to(torch.float32).div_(255.0)
        return x.to(torch.float32, copy=True)

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        return self._to_float(self.data[index]), int(self._targets[index])

    def _load_batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        return self._to_float(self.data[idx]), self._targets[idx]

    @property
    def targets(self) -> torch.Tensor:
        return self._targets

    @property
    def coarse_targets(self) -> torch.Tensor | None:
        return self._coarse

    @property
    def coarse_classes(self) -> list[str] | None:
        return None if self._coarse_classes is None else list(self._coarse_classes)
