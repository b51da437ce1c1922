"""The dataset interface every robustlab loader returns.

An :class:`ImageDataset` yields ``(x, y)`` with ``x`` a float32 ``C×H×W`` tensor in [0, 1] and ``y``
an ``int``. Subclasses implement two raw accessors that ignore ``transform``:

* ``_load(i) -> (x, y)`` for one item, and
* ``_load_batch(indices) -> (x: N×C×H×W float32, y: int64 N)`` for many; the default stacks
  ``_load`` calls, in-memory datasets override it with one tensor index.

The public ``__getitem__``/``__getitems__`` add the optional per-image ``transform`` on top, so views
(subsets, adapted copies) compose raw accessors and the transform is applied exactly once, by the
outermost dataset.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from robustlab.data.spec import DatasetInfo

Transform = Callable[[torch.Tensor], torch.Tensor]


class ImageDataset(Dataset):
    """A labelled image dataset with pixels in [0, 1].

    Attributes:
        info: the dataset's :class:`DatasetInfo` (reflects this object's actual shape and classes).
        transform: optional callable applied to each float ``C×H×W`` [0, 1] image on access.
    """

    info: DatasetInfo
    transform: Transform | None

    def __init__(self, info: DatasetInfo, transform: Transform | None = None) -> None:
        self.info = info
        self.transform = transform

    # -- raw access, implemented by subclasses -------------------------------------------------
    def __len__(self) -> int:
        raise NotImplementedError

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        """Item ``index`` without ``transform``: (float32 C×H×W in [0, 1], label)."""
        raise NotImplementedError

    def _load_batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Items ``indices`` without ``transform``: (float32 N×C×H×W in [0, 1], int64 N)."""
        idx = torch.as_tensor(indices, dtype=torch.long).reshape(-1).tolist()
        if not idx:
            c, h, w = self.info.shape
            return torch.empty(0, c, h, w), torch.empty(0, dtype=torch.long)
        items = [self._load(i) for i in idx]
        return torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items], dtype=torch.long)

    @property
    def targets(self) -> torch.Tensor:
        """All labels as an int64 tensor of length ``len(self)``, without decoding any image."""
        raise NotImplementedError

    # -- public access -------------------------------------------------------------------------
    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x, y = self._load(int(index))
        if self.transform is not None:
            x = self.transform(x)
        return x, y

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[torch.Tensor, int]]:
        """Many items at once; DataLoader uses this instead of one ``__getitem__`` per sample."""
        xb, yb = self._load_batch(indices)
        ys = yb.tolist()
        if self.transform is None:
            return list(zip(xb.unbind(0), ys, strict=True))
        return [(self.transform(x), y) for x, y in zip(xb.unbind(0), ys, strict=True)]

    @property
    def classes(self) -> list[str]:
        """Class names, index = label (``"0"``, ``"1"``, ... when the dataset has no names)."""
        if self.info.class_names is not None:
            return list(self.info.class_names)
        return [str(i) for i in range(self.info.num_classes)]

    @property
    def coarse_targets(self) -> torch.Tensor | None:
        """Superclass labels (CIFAR-100's 20 coarse classes) or ``None`` when the dataset has none."""
        return None

    @property
    def coarse_classes(self) -> list[str] | None:
        """Superclass names, index = coarse label, or ``None``."""
        return None

    def with_transform(self, transform: Transform | None) -> ImageDataset:
        """A shallow copy sharing the data but with a different ``transform`` (``None`` removes it)."""
        clone = copy.copy(self)
        clone.transform = transform
        return clone

    def __repr__(self) -> str:
        c, h, w = self.info.shape
        extra: dict[str, Any] = {"n": len(self), "shape": f"{c}x{h}x{w}", "classes": self.info.num_classes}
        if self.transform is not None:
            extra["transform"] = type(self.transform).__name__
        inner = ", ".join(f"{k}={v}" for k, v in extra.items())
        return f"{type(self).__name__}({self.info.name!r}, {inner})"
