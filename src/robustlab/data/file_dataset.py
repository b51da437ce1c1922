"""File-based datasets: images decoded with PIL on access.

Used for Flowers-102 and the user's own image folders, whose images have varying sizes. Each image is
scaled to cover ``image_size`` (bilinear, antialiased) and centre-cropped, so every item has the same
shape and the aspect ratio is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from robustlab.core.errors import RobustlabError
from robustlab.data.base import ImageDataset, Transform
from robustlab.data.spec import DatasetInfo


def fit_image(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Scale ``img`` to cover ``size`` = (H, W), keeping its aspect ratio, then centre-crop to it."""
    h, w = size
    iw, ih = img.size
    if (ih, iw) == (h, w):
        return img
    scale = max(h / ih, w / iw)
    nw, nh = max(w, round(iw * scale)), max(h, round(ih * scale))
    img = img.resize((nw, nh), Image.Resampling.BILINEAR)
    left, top = (nw - w) // 2, (nh - h) // 2
    return img.crop((left, top, left + w, top + h))


def read_image(path: Path, size: tuple[int, int], channels: int) -> torch.Tensor:
    """Decode one image file into a float32 ``C×H×W`` tensor in [0, 1] of the given size."""
    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as im:
            im.draft(mode, (size[1], size[0]))  # JPEG: decode at a reduced scale when possible
            img = fit_image(im.convert(mode), size)
            arr = np.asarray(img, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError) as exc:
        raise RobustlabError(f"cannot read image {path}: {exc}") from exc
    t = torch.from_numpy(arr.copy())
    t = t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)
    return t.to(torch.float32).div_(255.0)


class FileImageDataset(ImageDataset):
    """Images listed as ``(path, label)`` pairs, decoded and resized on each access.

    ``info.image_size`` is the output size and ``info.channels`` the output channels (1 = grayscale,
    3 = RGB). Use ``num_workers`` in :func:`robustlab.data.make_loader` to decode in parallel.
    """

    def __init__(
        self, samples: Sequence[tuple[Path, int]], info: DatasetInfo, transform: Transform | None = None
    ) -> None:
        super().__init__(info, transform)
        if info.channels not in (1, 3):
            raise RobustlabError(f"dataset {info.name!r}: channels must be 1 or 3, got {info.channels}")
        self.samples = [(Path(p), int(y)) for p, y in samples]
        self._targets = torch.tensor([y for _, y in self.samples], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        return read_image(path, self.info.image_size, self.info.channels), label

    @property
    def targets(self) -> torch.Tensor:
        return self._targets
