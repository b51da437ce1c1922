"""The two models of the lab: the frozen-features classifier (backbone + attention head) and the
backbone's self-supervised pretrainer (backbone + a per-patch descriptor regressor)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustlab.labs.frozen.backbones import Backbone
from robustlab.labs.frozen.head import AttentionHead, HeadOutput

DESCRIPTORS = 9
"""Per-patch descriptors the pretrainer regresses: RGB mean (3), RGB standard deviation (3), mean
absolute horizontal and vertical gradient and Laplacian of the luminance (3)."""


class FrozenFeatureClassifier(nn.Module):
    """Pixels ``(B, 3, S, S)`` in [0, 1] → logits ``(B, K)`` through a frozen :class:`Backbone` and a
    trained :class:`AttentionHead`; :meth:`explain` also returns the head's attention. Training
    on cached tokens calls :attr:`head` directly."""

    def __init__(self, backbone: Backbone, head: AttentionHead, arch: str = "") -> None:
        super().__init__()
        self.backbone, self.head, self.arch = backbone, head, arch

    def explain(self, x: Tensor) -> HeadOutput:
        return self.head(self.backbone(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.explain(x).logits


def patch_descriptors(x: Tensor, patch: int) -> Tensor:
    """``(B, P, 9)`` descriptors (see :data:`DESCRIPTORS`) of the ``patch``-px patches of pixels
    ``x`` ``(B, 3, S, S)`` in [0, 1], patches in row-major order; each in pixel units of [0, 1]."""
    b = x.shape[0]
    luma = (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)
    dx = F.pad((luma[..., :, 1:] - luma[..., :, :-1]).abs(), (0, 1, 0, 0))
    dy = F.pad((luma[..., 1:, :] - luma[..., :-1, :]).abs(), (0, 0, 0, 1))
    lap = (F.conv2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"),
                    luma.new_tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).view(1, 1, 3, 3))).abs()
    mean = F.avg_pool2d(x, patch)
    std = (F.avg_pool2d(x * x, patch) - mean * mean).clamp_min(0).sqrt()
    feats = [mean, std, F.avg_pool2d(dx, patch), F.avg_pool2d(dy, patch), F.avg_pool2d(lap, patch)]
    return torch.cat(feats, 1).reshape(b, DESCRIPTORS, -1).transpose(1, 2)


class DescriptorPretrainer(nn.Module):
    """A trainable :class:`Backbone` whose patch tokens regress each patch's own descriptors
    (:func:`patch_descriptors`) through a linear layer: a dense,
    label-free proxy objective (hand-made targets, as in MaskFeat's HOG targets, without masking).
    ``forward`` maps pixels ``(B, 3, S, S)`` to predictions ``(B, P, 9)``."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone
        self.norm = nn.LayerNorm(backbone.dim)
        self.regressor = nn.Linear(backbone.dim, DESCRIPTORS)

    def forward(self, x: Tensor) -> Tensor:
        _, _, patches = self.backbone.layout.split(self.backbone(x))
        return self.regressor(self.norm(patches))
