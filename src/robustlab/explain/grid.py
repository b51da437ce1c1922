"""A picture of what an attack did: clean image, adversarial image, amplified perturbation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from robustlab.core.errors import RobustlabError
from robustlab.viz import RED, label_name, new_figure, save_figure, show_image, to_image


def amplify_perturbation(delta: torch.Tensor, amplify: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Make perturbations visible: ``0.5 + factor · delta`` clipped to [0, 1], so 0.5 grey is "no change".

    ``delta``: ``N×C×H×W``. ``amplify=None`` picks, per image, the factor that makes the largest
    absolute change reach 0 or 1 (``0.5 / max|delta|``); a number uses that factor for all images.
    Returns ``(images N×C×H×W in [0, 1], factors N)``.
    """
    peak = delta.detach().abs().flatten(1).amax(1)
    if amplify is None:
        factors = torch.where(peak > 0, 0.5 / peak.clamp_min(1e-12), torch.ones_like(peak))
    else:
        if amplify <= 0:
            raise RobustlabError(f"amplify must be > 0, got {amplify}")
        factors = torch.full_like(peak, float(amplify))
    images = (0.5 + factors.view(-1, 1, 1, 1) * delta.detach()).clamp(0.0, 1.0)
    return images, factors


def adversarial_grid(
    x: torch.Tensor,
    x_adv: torch.Tensor,
    y: torch.Tensor,
    pred_clean: torch.Tensor,
    pred_adv: torch.Tensor,
    class_names: Sequence[str] | None,
    path: str | Path,
    amplify: float | None = None,
    norm: str = "linf",
) -> Path:
    """Three rows per image column: the clean image (true label and prediction), the adversarial
    image (its prediction, in red when the attack fooled the model) and the perturbation
    ``x_adv − x`` amplified around 0.5 grey (see :func:`amplify_perturbation`; its title gives the
    factor and the perturbation's ``norm``).

    ``x``, ``x_adv``: ``N×C×H×W`` in [0, 1]; ``y``, ``pred_clean``, ``pred_adv``: ``N`` labels.
    Writes a PNG to ``path`` and returns it.
    """
    if x.shape != x_adv.shape:
        raise RobustlabError(f"adversarial_grid: x {tuple(x.shape)} and x_adv {tuple(x_adv.shape)} differ in shape")
    x, x_adv = x.detach().cpu().float(), x_adv.detach().cpu().float()
    y, pc, pa = (torch.as_tensor(t).reshape(-1).cpu() for t in (y, pred_clean, pred_adv))
    n = x.shape[0]
    if n == 0:
        raise RobustlabError("adversarial_grid needs at least one image")
    delta = x_adv - x
    shown, factors = amplify_perturbation(delta, amplify)
    flat = delta.flatten(1)
    sizes = flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)
    names = list(class_names) if class_names is not None else None
    fig = new_figure(1.45 * n + 0.9, 5.6)
    axes = np.atleast_2d(fig.subplots(3, n, squeeze=False))
    for i in range(n):
        truth, p0, p1 = int(y[i]), int(pc[i]), int(pa[i])
        show_image(
            axes[0, i],
            to_image(x[i]),
            f"true: {label_name(names, truth)}\npred: {label_name(names, p0)}",
            color=RED if p0 != truth else "black",
            fontsize=7,
        )
        fooled = p1 != truth
        show_image(
            axes[1, i],
            to_image(x_adv[i]),
            f"pred: {label_name(names, p1)}" + ("\nfooled" if fooled else ""),
            color=RED if fooled else "black",
            fontsize=7,
        )
        size = f"{sizes[i].item():.3g}"
        show_image(axes[2, i], to_image(shown[i]), f"×{factors[i].item():.0f}  ‖δ‖={size}", fontsize=6)
    for row, label in enumerate(("clean", "adversarial", "perturbation")):
        axes[row, 0].set_ylabel(label, fontsize=9)
    fig.tight_layout(pad=0.4)
    return save_figure(fig, path)
