"""Per-image transforms on float [0, 1] tensors: Gaussian noise and augmentation presets.

Every transform here takes a ``C×H×W`` image (the noise also an ``N×C×H×W`` batch), returns a new
tensor of the same shape with pixels in [0, 1], and never modifies its input. Randomness comes from
torch's global generator (seeded per DataLoader worker by torch), or from ``generator`` where offered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from robustlab.core.errors import RobustlabError
from robustlab.core.registry import Registry

Transform = Callable[[torch.Tensor], torch.Tensor]


class GaussianNoise:
    """Add ``N(0, std²)`` noise to images in [0, 1]; clamp back to [0, 1] when ``clip``.

    Works on a single ``C×H×W`` image and on an ``N×C×H×W`` batch (any shape, in fact).
    """

    def __init__(self, std: float, clip: bool = True) -> None:
        if not (math.isfinite(std) and std >= 0):
            raise RobustlabError(f"noise std must be a finite number >= 0, got {std!r}")
        self.std = float(std)
        self.clip = clip

    @classmethod
    def from_variance(cls, var: float, clip: bool = True) -> GaussianNoise:
        """Noise with variance ``var`` (std = sqrt(var))."""
        if not (math.isfinite(var) and var >= 0):
            raise RobustlabError(f"noise variance must be a finite number >= 0, got {var!r}")
        return cls(math.sqrt(var), clip=clip)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.std == 0:
            out = x.clone()
        else:
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            out = x + self.std * noise
        return out.clamp_(0.0, 1.0) if self.clip else out

    def __repr__(self) -> str:
        return f"GaussianNoise(std={self.std:g}, clip={self.clip})"


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            x = t(x)
        return x

    def __repr__(self) -> str:
        return f"Compose({', '.join(repr(t) for t in self.transforms)})"


class RandomCropPad:
    """Zero-pad by ``padding`` pixels on each side, then crop a random window of the original size."""

    def __init__(self, padding: int = 4) -> None:
        self.padding = padding

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        p = self.padding
        if p <= 0:
            return x.clone()
        h, w = x.shape[-2:]
        padded = F.pad(x, (p, p, p, p))
        top, left = (int(v) for v in torch.randint(0, 2 * p + 1, (2,)))
        return padded[..., top : top + h, left : left + w].contiguous()

    def __repr__(self) -> str:
        return f"RandomCropPad(padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if float(torch.rand(())) < self.p:
            return x.flip(-1)
        return x.clone()

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomAffine:
    """Small random rotation (± ``degrees``), shift (± ``translate`` of the size) and scale; zero fill."""

    def __init__(self, degrees: float = 10.0, translate: float = 0.1, scale: tuple[float, float] = (0.9, 1.1)):
        self.degrees = degrees
        self.translate = translate
        self.scale = scale

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        r = torch.rand(4).tolist()
        angle = math.radians((2 * r[0] - 1) * self.degrees)
        tx, ty = ((2 * r[1] - 1) * self.translate * 2, (2 * r[2] - 1) * self.translate * 2)  # grid units
        s = self.scale[0] + r[3] * (self.scale[1] - self.scale[0])
        cos, sin = math.cos(angle) / s, math.sin(angle) / s
        theta = torch.tensor([[cos, -sin, tx], [sin, cos, ty]], dtype=x.dtype, device=x.device)
        xb = x.unsqueeze(0) if x.dim() == 3 else x
        grid = F.affine_grid(theta.expand(xb.shape[0], 2, 3), list(xb.shape), align_corners=False)
        out = F.grid_sample(xb, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        out = out.clamp_(0.0, 1.0)
        return out[0] if x.dim() == 3 else out

    def __repr__(self) -> str:
        return f"RandomAffine(degrees={self.degrees}, translate={self.translate}, scale={self.scale})"


def _cifar() -> Transform:
    return Compose([RandomCropPad(4), RandomHorizontalFlip(0.5)])


def _digits() -> Transform:
    return RandomAffine(degrees=10.0, translate=0.1, scale=(0.9, 1.1))


def _no_augmentation() -> None:
    return None


AUGMENTATIONS: Registry[Callable[[], Transform | None]] = Registry("augmentation")
"""Training augmentation presets: name → factory of a fresh transform (``None`` for ``none``)."""
AUGMENTATIONS.register("none", _no_augmentation)
AUGMENTATIONS.register("cifar", _cifar)  # random crop with 4-pixel zero padding + horizontal flip (natural images)
AUGMENTATIONS.register("digits", _digits)  # small rotation/shift/scale, no flip (digits and characters)


def augmentation(name: str) -> Transform | None:
    """The training augmentation preset ``name`` (``none``, ``cifar``, ``digits``); ``None`` for none.

    Presets act on one float ``C×H×W`` [0, 1] image of any size and keep its shape and range. An
    unknown name raises the one-line :class:`RobustlabError` listing the presets.
    """
    return AUGMENTATIONS.get(name)()
