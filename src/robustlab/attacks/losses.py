"""Per-sample attack objectives on logits ``(N, K)``; every one is to be *maximised* by the attack.

All of them compute in float32 (logits from an autocast forward are upcast first) and return ``(N,)``.
For untargeted attacks ``y`` is the true label; for targeted attacks it is the target label.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from robustlab.core.errors import RobustlabError, choice_error

LossFn = Callable[[Tensor, Tensor], Tensor]


def _other_max(z: Tensor, y: Tensor) -> Tensor:
    """``max_{i != y} z_i`` per row."""
    mask = F.one_hot(y, z.shape[1]).bool()
    return z.masked_fill(mask, float("-inf")).amax(dim=1)


def ce_loss(targeted: bool) -> LossFn:
    """Cross-entropy: ``CE(z, y)`` untargeted, ``-CE(z, t)`` targeted."""
    sign = -1.0 if targeted else 1.0

    def loss(z: Tensor, y: Tensor) -> Tensor:
        return sign * F.cross_entropy(z.float(), y, reduction="none")

    return loss


def margin_loss(targeted: bool) -> LossFn:
    """The Carlini–Wagner margin on logits: ``max_{i≠y} z_i − z_y`` untargeted,
    ``z_t − max_{i≠t} z_i`` targeted (positive ⇔ success)."""

    def loss(z: Tensor, y: Tensor) -> Tensor:
        z = z.float()
        zy = z.gather(1, y[:, None]).squeeze(1)
        other = _other_max(z, y)
        return zy - other if targeted else other - zy

    return loss


def dlr_loss(targeted: bool) -> LossFn:
    """Difference of Logits Ratio (Croce & Hein 2020), shift- and scale-invariant in the logits.

    Untargeted (needs K ≥ 3): ``-(z_y − max_{i≠y} z_i) / (z_π1 − z_π3)``.
    Targeted (needs K ≥ 4): ``(z_t − max_{i≠t} z_i) / (z_π1 − (z_π3 + z_π4) / 2)``, where π sorts
    the logits in decreasing order. The paper's targeted version uses the true class in place of
    the strongest competitor of ``t``; since this API only receives target labels, the strongest
    competitor is used (the same thing while the true class is still the top prediction).
    """

    def loss(z: Tensor, y: Tensor) -> Tensor:
        z = z.float()
        zs = z.sort(dim=1, descending=True).values
        zy = z.gather(1, y[:, None]).squeeze(1)
        other = _other_max(z, y)
        if targeted:
            return (zy - other) / (zs[:, 0] - 0.5 * (zs[:, 2] + zs[:, 3]) + 1e-12)
        return -(zy - other) / (zs[:, 0] - zs[:, 2] + 1e-12)

    return loss


LOSSES: dict[str, Callable[[bool], LossFn]] = {"ce": ce_loss, "dlr": dlr_loss, "margin": margin_loss}


def min_classes(loss: str, targeted: bool) -> int:
    """The fewest classes a loss is defined for."""
    if loss == "dlr":
        return 4 if targeted else 3
    return 2 if loss == "margin" else 1


def get_loss(name: str, targeted: bool) -> LossFn:
    """The loss called ``name`` ∈ {"ce", "dlr", "margin"}."""
    if name not in LOSSES:
        raise choice_error("loss", name, LOSSES)
    return LOSSES[name](targeted)


def check_classes(loss: str, targeted: bool, num_classes: int) -> None:
    """Raise a one-line error when ``loss`` is undefined for ``num_classes`` classes."""
    need = min_classes(loss, targeted)
    if num_classes < need:
        kind = "targeted " if targeted else ""
        raise RobustlabError(f"{kind}{loss.upper()} loss needs at least {need} classes, the model has {num_classes}")


def success(z: Tensor, y: Tensor, targeted: bool) -> Tensor:
    """Per-sample success ``(N,)`` bool: prediction ≠ y (untargeted) or = y (targeted)."""
    pred = z.argmax(dim=1)
    return pred == y if targeted else pred != y


def is_success_margin(z: Tensor, y: Tensor, targeted: bool, kappa: float = 0.0) -> Tensor:
    """Success with a confidence margin ``kappa``: the winning class beats the other side by > kappa."""
    return margin_loss(targeted)(z, y) > kappa if kappa > 0 else success(z, y, targeted)


__all__ = [
    "LOSSES",
    "LossFn",
    "ce_loss",
    "check_classes",
    "dlr_loss",
    "get_loss",
    "is_success_margin",
    "margin_loss",
    "min_classes",
    "success",
]
