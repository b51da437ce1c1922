"""Frozen DINOv2 backbones: timm's architectures built offline, with random, self-pretrained or a
user's local weights, behind one module that maps pixels in [0, 1] to tokens.

Every DINOv2 architecture comes from timm with ``pretrained=False`` (nothing is downloaded). A
user's file is read safely (safetensors, or ``torch.load(weights_only=True)``) and goes through
timm's own DINOv2 checkpoint filter — the conversion of the original facebookresearch layout
(``mask_token`` dropped, ``register_tokens`` → ``reg_token``, ``w12``/``w3`` → ``fc1``/``fc2``) and
the resampling of position embeddings to the tile size — before a strict load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from robustlab.core.checkpoint import load_model_state, read_state_dict
from robustlab.core.errors import RobustlabError
from robustlab.models.normalize import Normalize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class TokenLayout:
    """Where the tokens of a ``(B, T, D)`` backbone output are: CLS at 0, ``registers`` register
    tokens after it, then the ``grid × grid`` patch tokens in row-major order."""

    registers: int
    grid: int

    @property
    def prefix(self) -> int:
        return 1 + self.registers

    @property
    def patches(self) -> int:
        return self.grid * self.grid

    def split(self, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(cls (B, D), registers (B, R, D), patches (B, P, D))`` of ``tokens`` ``(B, prefix + P, D)``."""
        if tokens.shape[1] != self.prefix + self.patches:
            raise RobustlabError(f"expected {self.prefix + self.patches} tokens ({self.prefix} prefix + "
                                 f"{self.grid}×{self.grid} patches), got {tokens.shape[1]}")
        return tokens[:, 0], tokens[:, 1 : self.prefix], tokens[:, self.prefix :]


def create_vit(arch: str, image_size: int, embed_dim: int | None = None, depth: int | None = None,
               heads: int | None = None) -> nn.Module:
    """The timm architecture ``arch`` for ``image_size`` px tiles with fresh random weights (the
    global RNG), optionally narrowed to ``embed_dim``/``depth``/``heads``; no classifier head."""
    import timm

    kwargs = {k: v for k, v in (("embed_dim", embed_dim), ("depth", depth), ("num_heads", heads)) if v is not None}
    try:
        return timm.create_model(arch, pretrained=False, img_size=image_size, num_classes=0, **kwargs)
    except (RuntimeError, ValueError, AssertionError) as e:
        raise RobustlabError(f"cannot build {arch} at {image_size} px with {kwargs or 'its own widths'}: "
                             f"{str(e).splitlines()[0][:160]}") from None


def seeded_vit(arch: str, image_size: int, seed: int, embed_dim: int | None = None, depth: int | None = None,
               heads: int | None = None) -> nn.Module:
    """:func:`create_vit` whose random weights depend on ``seed`` alone (the global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return create_vit(arch, image_size, embed_dim, depth, heads)


def load_dinov2_file(vit: nn.Module, path: str | Path) -> None:
    """Load the DINOv2 weights in ``path`` into ``vit`` (any of the original facebookresearch
    ``.pth``, timm's ``.safetensors`` or ``.pth``): read weights-only, converted and resampled by
    timm's checkpoint filter, then loaded strictly — a file of another architecture is a one-line
    error naming the first tensor that does not fit."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    state = read_state_dict(path)
    try:
        state = checkpoint_filter_fn(dict(state), vit)
    except (RuntimeError, ValueError, KeyError, IndexError) as e:
        raise RobustlabError(f"weights file {path} is not a DINOv2 checkpoint timm can convert: "
                             f"{str(e).splitlines()[0][:160]}") from None
    load_model_state(vit, state, path)


class Backbone(nn.Module):
    """A ViT behind ImageNet normalisation: pixels ``(B, 3, S, S)`` in [0, 1] → tokens
    ``(B, 1 + R + P, D)`` (layout in :attr:`layout`). When ``frozen`` its parameters take no
    gradient and it stays in eval mode whatever ``train()`` asks (gradients still reach the input,
    which attacks need)."""

    def __init__(self, vit: nn.Module, frozen: bool = True) -> None:
        super().__init__()
        self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.vit = vit
        self.frozen = frozen
        grid = vit.patch_embed.grid_size
        if grid[0] != grid[1]:
            raise RobustlabError(f"square tiles only, the backbone's patch grid is {grid}")
        self.layout = TokenLayout(registers=int(getattr(vit, "num_reg_tokens", 0)), grid=int(grid[0]))
        self.dim = int(vit.embed_dim)
        if frozen:
            self.requires_grad_(False)
            super().train(False)

    def train(self, mode: bool = True) -> Backbone:
        return super().train(mode and not self.frozen)

    def forward(self, x: Tensor) -> Tensor:
        return self.vit.forward_features(self.normalize(x))
