"""Projected Gradient Descent (Madry et al. 2018), L∞ and L2, with restarts."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from robustlab.attacks.base import Attack, AttackContext
from robustlab.attacks.losses import LOSSES, check_classes, get_loss, success
from robustlab.attacks.norms import geometry, per_sample
from robustlab.core.checks import check_bool, check_choice, check_int, check_number

ALPHA_SCHEDULES = ("constant", "cosine")


class PGD(Attack):
    """Projected gradient ascent on the loss inside the ``norm`` ball of radius ``eps``.

    Each of the ``steps`` iterations does one forward and one backward pass (w.r.t. the input
    only): ``delta ← Π(delta + alpha_t · dir(∇L))`` where ``dir`` is ``sign`` (L∞) or the
    normalised gradient (L2) and ``Π`` projects onto the ball and the pixel box [0, 1].

    Which point is returned, per sample: the last iterate found misclassified (targeted: classified
    as the target), if any iterate was; otherwise the last iterate. With ``restarts > 1`` each
    restart after the first attacks only the samples not yet fooled, and among samples never
    fooled the final point with the highest loss is kept (one extra forward per restart to score
    it). ``stop_on_success=True`` freezes a sample at the first iterate that fools it and drops it
    from the batch (fewer forward/backward passes; one device sync per step) — the early exit used
    by robust evaluation; it only changes results for samples that are already fooled.

    Args:
        eps: budget in pixel units (None: 8/255 for linf, 0.5 for l2), >= 0.
        alpha: step size > 0 (None: ``2.5 · eps / steps``, Madry et al.'s rule).
        steps: iterations >= 1.
        norm: "linf" or "l2".
        random_start: start uniformly at random in the ball (L2: uniform in the ball's volume).
        restarts: independent random starts >= 1 (keeps the per-sample best, see above).
        targeted: if True, ``y`` are target labels and the loss is descended on them.
        alpha_schedule: "constant" or "cosine" (``alpha_t = alpha · (1 + cos(π t / steps)) / 2``).
        loss: "ce" (cross-entropy), "margin" (Carlini–Wagner logit margin) or "dlr" (needs ≥ 3
            classes, ≥ 4 when targeted).
        stop_on_success: freeze samples once fooled (see above).
        seed: seed of the per-call generator for the random start (None: fresh entropy).

    Shapes: ``x`` ``(N, C, H, W)`` float in [0, 1]; ``y`` ``(N,)`` int; output like ``x``.

    Reference: Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018.
    """

    name = "pgd"
    whitebox = True
    stepped = True
    iterative = True
    description = "Projected Gradient Descent (L∞/L2) with random start, restarts and step-size schedules"
    reference = "Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018"

    def __init__(
        self,
        *,
        eps: float | None = None,
        alpha: float | None = None,
        steps: int = 10,
        norm: str = "linf",
        random_start: bool = True,
        restarts: int = 1,
        targeted: bool = False,
        alpha_schedule: str = "constant",
        loss: str = "ce",
        stop_on_success: bool = False,
        seed: int | None = 0,
    ) -> None:
        self._init_common(eps=eps, norm=norm, targeted=targeted, seed=seed)
        self.alpha = None if alpha is None else check_number("alpha", alpha, min=0.0, min_open=True)
        self.steps = check_int("steps", steps)
        self.random_start = check_bool("random_start", random_start)
        self.restarts = check_int("restarts", restarts)
        self.alpha_schedule = check_choice("alpha_schedule", alpha_schedule, ALPHA_SCHEDULES)
        self.loss = check_choice("loss", loss, tuple(LOSSES))
        self.stop_on_success = check_bool("stop_on_success", stop_on_success)

    def step_sizes(self) -> list[float]:
        """The step size of every iteration (pixel units)."""
        assert self.eps is not None
        a = self.alpha if self.alpha is not None else 2.5 * self.eps / self.steps
        if self.alpha_schedule == "cosine":
            return [a * 0.5 * (1.0 + math.cos(math.pi * t / self.steps)) for t in range(self.steps)]
        return [a] * self.steps

    def _check_num_classes(self, num_classes: int) -> None:
        super()._check_num_classes(num_classes)
        check_classes(self.loss, self.targeted, num_classes)

    def _run(self, ctx: AttackContext) -> Tensor:
        x, y = ctx.x, ctx.y
        assert y is not None
        if self.restarts == 1:
            return self._single_run(ctx, x, y, None, final_eval=False)[0]
        n = x.shape[0]
        out = x.clone()
        done = torch.zeros(n, dtype=torch.bool, device=x.device)
        best = torch.full((n,), float("-inf"), device=x.device)
        idx = torch.arange(n, device=x.device)
        for r in range(self.restarts):
            if r > 0:
                idx = (~done).nonzero().squeeze(1)
                if idx.numel() == 0:
                    break
            sel = None if r == 0 else idx
            adv, found, loss = self._single_run(ctx, x[idx], y[idx], sel, final_eval=True)
            assert loss is not None
            better = found | (loss > best[idx])
            out[idx] = torch.where(per_sample(better, adv), adv, out[idx])
            best[idx] = torch.where(better, loss, best[idx])
            done[idx] = found
        return out

    def _single_run(
        self, ctx: AttackContext, x: Tensor, y: Tensor, sel: Tensor | None, final_eval: bool
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """One run from one start on the rows ``sel`` of ``ctx.x`` (None: all), given as ``x, y``:
        ``(x_adv, found (m,), loss at the final point (m,) or None)``."""
        assert self.eps is not None
        geom, eps, m = geometry(self.norm), self.eps, x.shape[0]
        loss_fn = get_loss(self.loss, self.targeted)
        lo, hi = geom.bounds(x, eps)
        start = self.random_start and eps > 0
        if start:
            delta = ctx.draw(lambda s: geom.random_start(x.new_empty(s), eps, ctx.gen), sel)
        else:
            delta = torch.zeros_like(x)
        geom.feasible(delta, eps, lo, hi)

        compact = self.stop_on_success
        out = x.clone()  # compact: result buffer; otherwise: the last fooled iterate per sample
        found = torch.zeros(m, dtype=torch.bool, device=x.device)
        idx = torch.arange(m, device=x.device)  # positions of the active samples (compact mode)
        xs, ys = x, y
        for a in self.step_sizes():
            xa = xs + delta
            _, z, g = ctx.loss_grad(xa, ys, loss_fn)
            assert g is not None
            s = success(z, ys, self.targeted)
            if compact:
                if bool(s.any()):
                    hit = idx[s]
                    out[hit] = xa[s]
                    found[hit] = True
                    keep = ~s
                    idx, xs, ys, lo, hi, delta, g = (t[keep] for t in (idx, xs, ys, lo, hi, delta, g))
                    if idx.numel() == 0:
                        break
            else:
                out = torch.where(per_sample(s, xa), xa, out)
                found |= s
            delta.add_(geom.direction(g), alpha=a)
            geom.feasible(delta, eps, lo, hi)

        loss_all: Tensor | None = None
        if idx.numel():
            xa = xs + delta
            if final_eval:
                loss, z, _ = ctx.loss_grad(xa, ys, loss_fn, need_grad=False)
                s = success(z, ys, self.targeted)
                loss_all = torch.full((m,), float("-inf"), device=x.device)
                loss_all[idx] = loss
                found[idx] |= s
                if not compact:
                    out = torch.where(per_sample(s, xa), xa, out)
            if compact:
                out[idx] = xa
            else:
                out = torch.where(per_sample(found, xa), out, xa)
        elif final_eval:
            loss_all = torch.full((m,), float("-inf"), device=x.device)
        return out, found, loss_all
