"""Square Attack (Andriushchenko et al. 2020), L∞: a score-based black-box random search."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustlab.attacks.base import Attack, AttackContext
from robustlab.attacks.losses import margin_loss, success
from robustlab.core.checks import check_int, check_number
from robustlab.core.errors import RobustlabError


def p_schedule(p_init: float, it: int, n_queries: int) -> float:
    """The fraction of pixels changed at iteration ``it``: the paper's piecewise-constant halving
    schedule, defined for 10,000 queries and rescaled to ``n_queries``."""
    it = int(it / n_queries * 10000)
    for bound, div in (
        (10, 1),
        (50, 2),
        (200, 4),
        (500, 8),
        (1000, 16),
        (2000, 32),
        (4000, 64),
        (6000, 128),
        (8000, 256),
    ):
        if it <= bound:
            return p_init / div
    return p_init / 512


class Square(Attack):
    """Square Attack, L∞: random search over square patches of ±eps, using only the logits.

    Starts from vertical stripes of ±eps; each query proposes, for every sample still correct,
    a new random square window (side ``≈ sqrt(p · H · W)``, ``p`` from :func:`p_schedule`) whose
    pixels all get one random ±eps per channel, and keeps it if the margin loss improves
    (untargeted: ``max_{i≠y} z_i − z_y``; targeted: ``z_t − max_{i≠t} z_i``). No gradients are
    used; samples leave the batch once fooled. ``n_queries`` counts model evaluations per sample,
    including the initial one. Batched: every sample gets its own window position.

    Args:
        eps: L∞ budget >= 0 (None: 8/255).
        n_queries: query budget per sample >= 1 (AutoAttack uses 5000).
        p_init: initial fraction of pixels per window, in (0, 1].
        targeted: if True, ``y`` are target labels.
        seed: seed of the per-call generator (None: fresh entropy).

    Shapes: ``x`` ``(N, C, H, W)`` with ``H, W >= 2``, float in [0, 1]; ``y`` ``(N,)`` int.

    Reference: Andriushchenko, Croce, Flammarion & Hein, "Square Attack: a query-efficient black-box
    adversarial attack via random search", ECCV 2020.
    """

    name = "square"
    description = "Square Attack (L∞): query-efficient black-box random search, logits only"
    reference = (
        "Andriushchenko et al., Square Attack: a query-efficient black-box adversarial attack via "
        "random search, ECCV 2020"
    )

    def __init__(
        self,
        *,
        eps: float | None = None,
        n_queries: int = 1000,
        p_init: float = 0.8,
        targeted: bool = False,
        seed: int | None = 0,
    ) -> None:
        self._init_common(eps=eps, norm="linf", targeted=targeted, seed=seed)
        self.n_queries = check_int("n_queries", n_queries)
        self.p_init = check_number("p_init", p_init, min=0.0, min_open=True, max=1.0)

    def _check_num_classes(self, num_classes: int) -> None:
        if num_classes < 2:
            raise RobustlabError(f"square needs at least 2 classes, the model has {num_classes}")

    @torch.no_grad()
    def _run(self, ctx: AttackContext) -> Tensor:
        x, y = ctx.x, ctx.y
        assert y is not None and self.eps is not None
        if x.dim() != 4 or min(x.shape[2], x.shape[3]) < 2:
            raise RobustlabError(f"square needs images (N, C, H, W) with H, W >= 2, got shape {tuple(x.shape)}")
        n, c, h, w = x.shape
        eps, gen, dev = self.eps, ctx.gen, x.device
        margin = margin_loss(self.targeted)

        def signs(shape: tuple[int, ...]) -> Tensor:
            return torch.randint(0, 2, shape, generator=gen, device=dev).to(x.dtype).mul_(2).sub_(1)

        def positions(high: int, act: Tensor) -> Tensor:
            return ctx.draw(lambda s: torch.randint(0, high, s, generator=gen, device=dev), act, (1,))

        x_best = (x + eps * ctx.draw(signs, None, (c, 1, w))).clamp_(0.0, 1.0)
        z = ctx.logits(x_best)
        m_best = margin(z, y)
        fooled = success(z, y, self.targeted)
        rows = torch.arange(h, device=dev)
        cols = torch.arange(w, device=dev)
        for it in range(1, self.n_queries):
            act = (~fooled).nonzero().squeeze(1)
            na = act.numel()
            if na == 0:
                break
            xc, xb = x[act], x_best[act]
            p = p_schedule(self.p_init, it, self.n_queries)
            s = min(max(int(round(math.sqrt(p * h * w))), 1), min(h, w) - 1)
            # draws for the full batch (see AttackContext.draw), then the active rows
            top, left = positions(h - s + 1, act), positions(w - s + 1, act)
            mh = (rows >= top) & (rows < top + s)
            mw = (cols >= left) & (cols < left + s)
            window = (mh[:, :, None] & mw[:, None, :])[:, None]  # (na, 1, h, w)
            vals = eps * ctx.draw(signs, act, (c, 1, 1))
            x_new = torch.where(window, xc + vals, xb).clamp_(0.0, 1.0)
            # a proposal equal to the current point wastes a query: flip its signs instead
            noop = ((x_new - xb).abs() < 1e-7).flatten(1).all(1)
            x_flip = torch.where(window, xc - vals, xb).clamp_(0.0, 1.0)
            x_new = torch.where(noop[:, None, None, None], x_flip, x_new)
            z = ctx.logits(x_new)
            m_new = margin(z, y[act])
            imp = m_new > m_best[act]
            x_best[act] = torch.where(imp[:, None, None, None], x_new, xb)
            m_best[act] = torch.where(imp, m_new, m_best[act])
            fooled[act] = torch.where(imp, success(z, y[act], self.targeted), fooled[act])
        return x_best
