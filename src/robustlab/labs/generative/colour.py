"""The coloured variant of a single-channel dataset.

Each image's single channel is multiplied by three numbers in [0, 1], one per RGB channel. The
three numbers are a hash of the image's own pixels (and a seed), so an image gets the same colour in
every epoch, in every split, in any batch order and on any machine: the coloured dataset is a fixed
dataset, like the report's, without needing image indices in the batch.
"""

from __future__ import annotations

import torch

from robustlab.core.errors import RobustlabError

_MASK24 = (1 << 24) - 1
_MUL = 6364136223846793005  # Knuth's MMIX LCG multiplier (wraps modulo 2**64 in int64)
_INC = 1442695040888963407


def _weights(n: int, seed: int, device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 1 << 20, (n,), generator=g, dtype=torch.int64).to(device)


def colour_factors(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Three factors in [0, 1) per image, a deterministic function of the image's pixels and ``seed``.

    ``x``: ``(B, 1, H, W)`` float in [0, 1]. Returns float ``(B, 3)`` on ``x``'s device.
    """
    if x.dim() != 4 or x.shape[1] != 1:
        raise RobustlabError(f"colour needs single-channel images (B×1×H×W), got shape {tuple(x.shape)}")
    flat = (x.detach().float().clamp(0, 1) * 255).round().to(torch.int64).flatten(1)
    h = (flat * _weights(flat.shape[1], seed, x.device)).sum(1)
    out = []
    for _ in range(3):
        h = h * _MUL + _INC  # int64 arithmetic wraps: a 64-bit LCG step
        out.append(((h >> 40) & _MASK24).double() / (1 << 24))
    return torch.stack(out, 1).to(x.dtype if x.is_floating_point() else torch.float32)


def colourize(x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """The coloured images: ``(B, 1, H, W)`` in [0, 1] → ``(B, 3, H, W)`` in [0, 1],
    channel c = ``x * colour_factors(x, seed)[:, c]``."""
    return x * colour_factors(x, seed)[:, :, None, None]
