"""Gaussian noise: the non-adversarial baseline every robustness number should be compared with."""

from __future__ import annotations

import torch
from torch import Tensor

from robustlab.attacks.base import Attack, AttackContext
from robustlab.attacks.norms import geometry
from robustlab.core.checks import check_number


class GaussianNoise(Attack):
    """``x_adv = clip(x + sigma · N(0, I), 0, 1)``, optionally clipped into the ``eps`` ball.

    Not an attack: the model is never called and labels are optional. Deterministic given
    ``seed``. With ``eps`` set the noise is projected onto the ``norm`` ball of radius ``eps``
    (clamped per pixel for L∞, rescaled for L2) before clipping to [0, 1].

    Args:
        sigma: noise standard deviation in pixel units >= 0.
        eps: optional budget >= 0; None means unbounded.
        norm: "linf" or "l2" (the ball used with ``eps``).
        seed: seed of the per-call generator (None: fresh entropy).

    Shapes: ``x`` ``(N, ...)`` float in [0, 1]; output like ``x``.

    Reference: a baseline; see e.g. Hendrycks & Dietterich, "Benchmarking Neural Network Robustness
    to Common Corruptions and Perturbations", ICLR 2019.
    """

    name = "gaussian-noise"
    description = "Gaussian noise of std sigma (non-adversarial baseline), optionally clipped to eps"
    reference = "Hendrycks & Dietterich, Benchmarking Neural Network Robustness to Common Corruptions, ICLR 2019"
    needs_labels = False

    def __init__(
        self, *, sigma: float = 0.1, eps: float | None = None, norm: str = "linf", seed: int | None = 0
    ) -> None:
        self._init_common(eps=eps, norm=norm, targeted=False, seed=seed, eps_default=False)
        self.sigma = check_number("sigma", sigma, min=0.0)

    def _run(self, ctx: AttackContext) -> Tensor:
        x = ctx.x
        noise = ctx.draw(lambda s: torch.randn(s, generator=ctx.gen, device=x.device, dtype=x.dtype))
        noise = noise.mul_(self.sigma)
        if self.eps is not None:
            noise = geometry(self.norm).project(noise, self.eps)
        return (x + noise).clamp_(0.0, 1.0)
