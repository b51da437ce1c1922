"""Planted models and the attack factory shared by the evaluation tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attack_factory():
    """The real registry, :func:`robustlab.attacks.build_attack`."""
    from robustlab.attacks import build_attack

    return build_attack


def on_digit_grid(x: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: every pixel is a multiple of 1/16, as in unperturbed sklearn digits."""
    v = x.flatten(1) * 16
    return ((v - v.round()).abs() < 1e-3).all(dim=1)


class LabelLeakModel(nn.Module):
    """Wrong on clean digits (predicts the next class), right once the input is perturbed: a model
    whose accuracy on attacked images exceeds its clean accuracy."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.base(x)
        clean = on_digit_grid(x)[:, None]
        return torch.where(clean, z.roll(1, dims=1), z)


class QuantizedModel(nn.Module):
    """Rounds pixels to the 1/16 grid before the base model: exact on clean digits, zero input gradient."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(torch.round(x * 16) / 16)


class RandomizedModel(nn.Module):
    """Input dropout that stays on in eval mode: a stochastic defense."""

    def __init__(self, base: nn.Module, p: float = 0.2) -> None:
        super().__init__()
        self.base, self.p = base, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(F.dropout(x, self.p, training=True))
