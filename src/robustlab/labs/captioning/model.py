"""The captioner: an :class:`~robustlab.labs.captioning.encoders.Encoder` and an
:class:`~robustlab.labs.captioning.decoder.AttentionDecoder`, plus the encoder's pretraining head."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robustlab.labs.captioning.decoder import AttentionDecoder
from robustlab.labs.captioning.encoders import Encoder


class Captioner(nn.Module):
    """Pixels ``(B, 3, S, S)`` in [0, 1] → encoder grid ``(B, C, h, w)`` → annotations ``(B, h·w, C)``
    → the decoder. With ``reads_features`` (a frozen encoder) training and validation read cached
    encoder grids instead of pixels (:meth:`source_annotations`); attacks always start from pixels
    (:meth:`annotations`)."""

    def __init__(self, encoder: Encoder, decoder: AttentionDecoder, reads_features: bool = False,
                 arch: str = "captioner") -> None:
        super().__init__()
        self.encoder, self.decoder, self.reads_features, self.arch = encoder, decoder, reads_features, arch

    def source_annotations(self, source: Tensor) -> Tensor:
        """Annotations ``(B, P, C)`` of a batch's source: cached grids ``(B, C, h, w)`` when
        ``reads_features``, else pixels ``(B, 3, S, S)`` in [0, 1]."""
        return grid_annotations(source) if self.reads_features else self.annotations(source)

    def annotations(self, pixels: Tensor) -> Tensor:
        """Annotations ``(B, P, C)`` (float32) of pixels ``(B, 3, S, S)`` in [0, 1]."""
        return grid_annotations(self.encoder(pixels))

    def grid_shape(self, size: int) -> tuple[int, int]:
        """The encoder grid ``(h, w)`` of ``size`` px images."""
        with torch.no_grad():
            p = next(self.encoder.parameters())
            g = self.encoder(torch.zeros(1, 3, size, size, device=p.device, dtype=p.dtype))
        return int(g.shape[2]), int(g.shape[3])

    def forward(self, source: Tensor, captions: Tensor, lengths: Tensor, teacher_forcing: float = 1.0
                ) -> tuple[Tensor, Tensor]:
        """Next-word logits ``(B, T, V)`` and attention ``(B, T, P)`` of a batch's source (see
        :meth:`source_annotations` and :meth:`AttentionDecoder.forward`)."""
        return self.decoder(self.source_annotations(source), captions, lengths, teacher_forcing)


def grid_annotations(grid: Tensor) -> Tensor:
    """An encoder grid ``(B, C, h, w)`` (a cached one may be float16) as annotations ``(B, h·w, C)``
    in float32, cells in row-major order."""
    return grid.float().flatten(2).transpose(1, 2)


class CellClassifier(nn.Module):
    """The encoder's pretraining model: the grid pooled to ``cells × cells`` and, per cell, logits of
    the shape (``shapes`` + 1 for "empty") and the colour (``colours`` + 1): ``(B, cells², S+1)``,
    ``(B, cells², K+1)``."""

    def __init__(self, encoder: Encoder, cells: int, shapes: int, colours: int) -> None:
        super().__init__()
        self.encoder, self.cells, self.arch = encoder, cells, "cell-classifier"
        self.pool = nn.AdaptiveAvgPool2d(cells)
        self.shape_head = nn.Linear(encoder.channels, shapes + 1)
        self.colour_head = nn.Linear(encoder.channels, colours + 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        cells = self.pool(self.encoder(x)).flatten(2).transpose(1, 2)
        return self.shape_head(cells), self.colour_head(cells)
