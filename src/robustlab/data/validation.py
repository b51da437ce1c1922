"""Checks of the data a user hands us, with messages that count what is wrong."""

from __future__ import annotations

import torch

from robustlab.core.errors import RobustlabError


def check_pixels(x: torch.Tensor, what: str = "images") -> None:
    """Refuse float pixels that are NaN/inf or outside [0, 1], naming how many are."""
    if not x.is_floating_point() or x.numel() == 0:
        return
    finite = torch.isfinite(x)
    n_bad = int((~finite).sum())
    n_out = int(((x < 0) | (x > 1)).logical_and(finite).sum())
    if n_bad or n_out:
        parts = []
        if n_bad:
            parts.append(f"{n_bad} NaN/inf values")
        if n_out:
            lo, hi = float(x[finite].min()), float(x[finite].max())
            parts.append(f"{n_out} values outside [0, 1] (range {lo:.4g}..{hi:.4g})")
        raise RobustlabError(f"{what} hold {' and '.join(parts)}; pixels must be finite values in [0, 1]")


def check_labels(y: torch.Tensor, num_classes: int, what: str = "labels") -> None:
    """Refuse labels outside ``0..num_classes-1``, naming how many are and the worst value."""
    if y.numel() == 0 or num_classes < 1:
        return
    bad = (y < 0) | (y >= num_classes)
    n = int(bad.sum())
    if n:
        worst = int(y[bad][0])
        raise RobustlabError(
            f"{what}: {n} labels outside 0..{num_classes - 1} (e.g. {worst}); "
            f"the dataset declares {num_classes} classes"
        )
