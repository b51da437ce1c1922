"""Fast Gradient Sign Method (and its L2 variant, the Fast Gradient Method)."""

from __future__ import annotations

from torch import Tensor

from robustlab.attacks.base import Attack, AttackContext
from robustlab.attacks.losses import ce_loss
from robustlab.attacks.norms import geometry


class FGSM(Attack):
    """One gradient step of size ``eps``: ``x_adv = clip(x + eps · dir(∇ₓ L(x, y)), 0, 1)``.

    ``dir`` is ``sign`` for ``norm="linf"`` (FGSM) and ``g / ‖g‖₂`` for ``norm="l2"`` (FGM).
    ``L`` is the cross-entropy (untargeted: ascend CE of the true label; targeted: descend CE of
    the target label ``y``). One forward and one backward pass w.r.t. the input; deterministic.
    The L∞ output matches torchattacks' FGSM (same loss up to the reduction, which does not
    change the sign of the gradient).

    Args:
        eps: perturbation budget in pixel units (None: 8/255 for linf, 0.5 for l2), >= 0.
        norm: "linf" or "l2".
        targeted: if True, ``y`` are target labels and the step descends their cross-entropy.

    Shapes: ``x`` ``(N, C, H, W)`` float in [0, 1]; ``y`` ``(N,)`` int; output like ``x``.

    Reference: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples",
    ICLR 2015.
    """

    name = "fgsm"
    whitebox = True
    description = "Fast Gradient Sign Method: one signed-gradient step of size eps (L2: normalised gradient)"
    reference = "Goodfellow et al., Explaining and Harnessing Adversarial Examples, ICLR 2015"

    def __init__(self, *, eps: float | None = None, norm: str = "linf", targeted: bool = False) -> None:
        self._init_common(eps=eps, norm=norm, targeted=targeted, seed=0)

    def _run(self, ctx: AttackContext) -> Tensor:
        x, y = ctx.x, ctx.y
        assert y is not None and self.eps is not None
        geom = geometry(self.norm)
        _, _, grad = ctx.loss_grad(x, y, ce_loss(self.targeted))
        assert grad is not None
        return (x + self.eps * geom.direction(grad)).clamp_(0.0, 1.0)
