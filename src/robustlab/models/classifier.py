"""The shape every robustlab image classifier has: normalize → backbone → head."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from robustlab.models.normalize import Normalize


class ImageClassifier(nn.Module):
    """An image classifier that takes pixels in [0, 1].

    ``forward(x)``: ``x`` float ``(N, C, H, W)`` in [0, 1] → logits ``(N, num_classes)``.
    ``embed(x)``: the penultimate features ``(N, feature_dim)`` (used by UMAP, metric learning and
    kNN). ``cam_target_layers()`` names the layers Grad-CAM should look at, and
    ``cam_reshape_transform`` turns token activations into a spatial map for transformers.
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_dim: int,
        num_classes: int,
        mean: Sequence[float],
        std: Sequence[float],
        cam_layer: Callable[[nn.Module], nn.Module] | None = None,
        cam_reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        dropout: float = 0.0,
        arch: str = "",
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.normalize = Normalize(mean, std)
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.arch = arch
        self._cam_layer = cam_layer
        self.cam_reshape_transform = cam_reshape_transform

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``(N, feature_dim)`` of pixels ``x`` in [0, 1]."""
        return self.backbone(self.normalize(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.embed(x)))

    def cam_target_layers(self) -> list[nn.Module]:
        """The layers whose activations Grad-CAM weighs (last conv block, or last ViT block's norm)."""
        if self._cam_layer is None:
            raise ValueError(f"model {self.arch or type(self.backbone).__name__} has no Grad-CAM layer")
        return [self._cam_layer(self.backbone)]
