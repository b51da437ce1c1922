"""Vision transformers from timm, sized for small images or as ViT-B/16."""

from __future__ import annotations

import torch
from torch import nn

VIT_VARIANTS: dict[str, dict[str, int]] = {
    "tiny": {"embed_dim": 192, "depth": 6, "num_heads": 3},
    "small": {"embed_dim": 384, "depth": 12, "num_heads": 6},
    "b16": {"embed_dim": 768, "depth": 12, "num_heads": 12},
}


def vit_backbone(
    in_channels: int = 3, image_size: int = 32, patch_size: int = 4, variant: str = "tiny", dropout: float = 0.0
) -> nn.Module:
    """A timm ``VisionTransformer`` without a head: output the class-token features ``(N, embed_dim)``.

    ``variant`` is one of ``VIT_VARIANTS`` (``b16`` with ``image_size=224, patch_size=16`` is
    ViT-B/16, the shape of ImageNet-pretrained checkpoints).
    """
    from timm.models.vision_transformer import VisionTransformer

    if variant not in VIT_VARIANTS:
        raise ValueError(f"unknown vit variant {variant!r}; choose one of: {', '.join(VIT_VARIANTS)}")
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
    return VisionTransformer(
        img_size=image_size,
        patch_size=patch_size,
        in_chans=in_channels,
        num_classes=0,
        drop_rate=dropout,
        **VIT_VARIANTS[variant],
    )


def vit_cam_reshape(grid: int, prefix_tokens: int = 1):
    """Return a function mapping token activations ``(N, T, D)`` to a map ``(N, D, grid, grid)``."""

    def reshape(tokens: torch.Tensor) -> torch.Tensor:
        x = tokens[:, prefix_tokens:, :]
        return x.reshape(x.size(0), grid, grid, x.size(2)).permute(0, 3, 1, 2)

    return reshape
