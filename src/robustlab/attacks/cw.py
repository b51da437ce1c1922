"""Carlini–Wagner L2: a minimal-perturbation attack optimised with Adam in tanh space."""

from __future__ import annotations

import torch
from torch import Tensor

from robustlab.attacks.base import Attack, AttackContext
from robustlab.attacks.losses import is_success_margin, margin_loss
from robustlab.attacks.norms import per_sample
from robustlab.core.checks import check_int, check_number
from robustlab.core.errors import RobustlabError


class CWL2(Attack):
    """Carlini–Wagner L2: minimise ``‖x' − x‖₂² + c · max(−margin(x'), −kappa)`` over ``x'``.

    ``x' = (tanh(w) + 1) / 2`` keeps pixels in [0, 1] without clipping; ``w`` is optimised with
    Adam (``lr``) for ``steps`` iterations per binary-search round, starting from ``x`` each round.
    ``margin`` is the logit margin (untargeted: ``max_{i≠y} z_i − z_y``; targeted:
    ``z_t − max_{i≠t} z_i``). The constant ``c`` is searched per sample over
    ``binary_search_steps`` rounds: after a round in which the sample was fooled, ``c`` moves down
    (bisection towards the largest failing value), otherwise up (bisection, or ×10 while no
    success has been seen). Every round costs ``steps`` forward and backward passes over the batch.

    Returned per sample: the smallest-L2 iterate that fooled the model with margin > kappa (plain
    misclassification when ``kappa = 0``), over all rounds; samples never fooled are returned
    unchanged (``x``). With ``eps`` set, only iterates with ``‖x' − x‖₂ ≤ eps`` count as
    successes — the rest are rejected, so an output is either an adversarial example inside the
    ball or ``x`` itself.

    Args:
        c: initial trade-off constant > 0.
        kappa: confidence margin >= 0.
        steps: Adam iterations per round >= 1.
        lr: Adam learning rate > 0 (in tanh space).
        binary_search_steps: rounds of the search over ``c`` >= 1.
        targeted: if True, ``y`` are target labels.
        eps: optional L2 budget >= 0 (see above); None means unbounded.

    Shapes: ``x`` ``(N, C, H, W)`` float in [0, 1]; ``y`` ``(N,)`` int; output like ``x``.

    Reference: Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks",
    IEEE S&P 2017.
    """

    name = "cw-l2"
    minimal = True
    whitebox = True
    description = "Carlini-Wagner L2: minimal perturbation via Adam in tanh space, binary search over c"
    reference = "Carlini & Wagner, Towards Evaluating the Robustness of Neural Networks, IEEE S&P 2017"

    def __init__(
        self,
        *,
        c: float = 1.0,
        kappa: float = 0.0,
        steps: int = 100,
        lr: float = 0.01,
        binary_search_steps: int = 5,
        targeted: bool = False,
        eps: float | None = None,
    ) -> None:
        self._init_common(eps=eps, norm="l2", targeted=targeted, seed=0, eps_default=False)
        self.c = check_number("c", c, min=0.0, min_open=True)
        self.kappa = check_number("kappa", kappa, min=0.0)
        self.steps = check_int("steps", steps)
        self.lr = check_number("lr", lr, min=0.0, min_open=True)
        self.binary_search_steps = check_int("binary_search_steps", binary_search_steps)

    def _check_num_classes(self, num_classes: int) -> None:
        super()._check_num_classes(num_classes)
        if num_classes < 2:
            raise RobustlabError(f"cw-l2 needs at least 2 classes, the model has {num_classes}")

    def _run(self, ctx: AttackContext) -> Tensor:
        x, y = ctx.x, ctx.y
        assert y is not None
        n, dev = x.shape[0], x.device
        margin = margin_loss(self.targeted)
        x_tanh = torch.atanh((2.0 * x - 1.0) * (1.0 - 1e-6))
        c = torch.full((n,), self.c, device=dev, dtype=x.dtype)
        lower = torch.zeros_like(c)
        upper = torch.full_like(c, 1e10)
        best_l2 = torch.full((n,), float("inf"), device=dev, dtype=x.dtype)
        best = x.clone()
        limit = float("inf") if self.eps is None else self.eps**2
        b1, b2 = 0.9, 0.999
        for _ in range(self.binary_search_steps):
            w = torch.zeros_like(x)
            m1 = torch.zeros_like(x)
            m2 = torch.zeros_like(x)
            fooled_round = torch.zeros(n, dtype=torch.bool, device=dev)
            for t in range(1, self.steps + 1):
                wl = w.requires_grad_(True)
                with torch.enable_grad():
                    xa = (torch.tanh(x_tanh + wl) + 1.0) * 0.5
                    z = ctx.logits(xa)
                    l2 = (xa - x).pow(2).flatten(1).sum(1)
                    f = (-margin(z, y)).clamp(min=-self.kappa)
                    loss = l2 + c * f
                (g,) = torch.autograd.grad(loss.sum(), wl)
                w = w.detach()
                with torch.no_grad():
                    zd, l2d, xad = z.detach(), l2.detach(), xa.detach()
                    ok = is_success_margin(zd, y, self.targeted, self.kappa)
                    fooled_round |= ok
                    better = ok & (l2d < best_l2) & (l2d <= limit)
                    best_l2 = torch.where(better, l2d, best_l2)
                    best = torch.where(per_sample(better, x), xad, best)
                    m1.mul_(b1).add_(g, alpha=1 - b1)
                    m2.mul_(b2).addcmul_(g, g, value=1 - b2)
                    step = self.lr / (1 - b1**t)
                    denom = (m2 / (1 - b2**t)).sqrt_().add_(1e-8)
                    w.addcdiv_(m1, denom, value=-step)
            upper = torch.where(fooled_round, torch.minimum(upper, c), upper)
            lower = torch.where(fooled_round, lower, torch.maximum(lower, c))
            c = torch.where(upper < 1e9, (lower + upper) / 2, c * 10)
        return best
