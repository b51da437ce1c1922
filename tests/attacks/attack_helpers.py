"""Helpers shared by the attack tests: accuracy, tiny random models, random batches."""

from __future__ import annotations

import torch
from torch import nn


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    with torch.no_grad():
        return 100.0 * (model(x).argmax(1) == y).float().mean().item()


def tiny_model(
    kind: str, c: int, h: int, w: int, k: int, seed: int, batchnorm: bool = False, dropout: float = 0.0
) -> nn.Module:
    """A random-init tiny CNN or MLP: (N, c, h, w) in [0, 1] → logits (N, k)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if kind == "cnn":
            layers: list[nn.Module] = [nn.Conv2d(c, 4, 3, padding=1)]
            if batchnorm:
                layers.append(nn.BatchNorm2d(4))
            layers += [nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.Linear(16, k))
            model = nn.Sequential(*layers)
        else:
            model = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 8), nn.Tanh(), nn.Linear(8, k))
        # larger weights give decisive logits, so attacks actually move things
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(3.0)
    return model.eval()


def random_batch(n: int, c: int, h: int, w: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels in [0, 1] with some exact 0s and 1s, and labels in [0, k)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, h, w, generator=g)
    r = torch.rand(n, c, h, w, generator=g)
    x = torch.where(r < 0.1, torch.zeros_like(x), torch.where(r > 0.9, torch.ones_like(x), x))
    y = torch.randint(0, k, (n,), generator=g)
    return x, y
