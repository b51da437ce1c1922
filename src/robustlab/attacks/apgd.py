"""Auto-PGD (Croce & Hein 2020): PGD with momentum and a step size that adapts itself, L∞ and L2."""

from __future__ import annotations

import torch
from torch import Tensor

from robustlab.attacks.base import Attack, AttackContext
from robustlab.attacks.losses import check_classes, get_loss, success
from robustlab.attacks.norms import geometry, per_sample
from robustlab.core.checks import check_bool, check_int, check_number


def checkpoints(steps: int) -> list[tuple[int, int]]:
    """The step-size checkpoints as ``(iteration index, interval length k)``.

    The paper's ``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06)`` in units of
    ``steps``: the first interval is ``0.22 · steps`` iterations long and each next one is
    ``0.03 · steps`` shorter, down to ``0.06 · steps`` (integer-rounded as in the reference code).
    """
    k = max(int(0.22 * steps), 1)
    k_min = max(int(0.06 * steps), 1)
    decr = max(int(0.03 * steps), 1)
    out, i = [], k - 1
    while i < steps:
        out.append((i, k))
        k = max(k - decr, k_min)
        i += k
    return out


class APGD(Attack):
    """Auto-PGD: step size ``2·eps`` halved at checkpoints when progress stalls; momentum 0.75.

    Algorithm 1 of Croce & Hein (2020). From ``x⁽⁰⁾`` (uniform in the ball) with ``η = 2·eps``::

        z   = Π(x⁽ᵏ⁾ + η · dir(∇f(x⁽ᵏ⁾)))
        x⁽ᵏ⁺¹⁾ = Π(x⁽ᵏ⁾ + α (z − x⁽ᵏ⁾) + (1 − α)(x⁽ᵏ⁾ − x⁽ᵏ⁻¹⁾)),  α = 0.75 (1 at the first step)

    At each checkpoint ``w_j`` (see :func:`checkpoints`) a sample's step size is halved and it
    restarts from its best point (with that point's gradient) when either (1) the loss increased
    in at most ``rho = 0.75`` of the iterations since the previous checkpoint, or (2) the step size
    was not reduced at the previous checkpoint and the best loss has not improved since then.
    Everything is per sample and stays on the device (no host syncs inside the loop).

    ``steps`` iterations cost ``steps + 1`` forward passes and ``steps`` backward passes. Samples
    the model already gets wrong (targeted: already classified as the target) are returned
    unchanged (one clean forward). Returned per sample: the last misclassified iterate if there
    was one, else the highest-loss point. Restarts attack only the samples not yet fooled.
    ``stop_on_success=True`` also drops samples from the batch as soon as they are fooled.

    Args:
        eps: budget (None: 8/255 for linf, 0.5 for l2), >= 0.
        steps: iterations >= 1 (AutoAttack uses 100).
        norm: "linf" or "l2".
        restarts: random restarts >= 1.
        targeted: if True, ``y`` are target labels.
        rho: the fraction in condition (1), in (0, 1].
        stop_on_success: freeze and drop samples once fooled.
        seed: seed of the per-call generator (None: fresh entropy).

    Shapes: ``x`` ``(N, C, H, W)`` float in [0, 1]; ``y`` ``(N,)`` int; output like ``x``.

    Reference: Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
    diverse parameter-free attacks", ICML 2020.
    """

    name = "apgd"
    whitebox = True
    iterative = True
    loss_name = "ce"
    reference = (
        "Croce & Hein, Reliable evaluation of adversarial robustness with an ensemble of diverse "
        "parameter-free attacks, ICML 2020"
    )

    def __init__(
        self,
        *,
        eps: float | None = None,
        steps: int = 100,
        norm: str = "linf",
        restarts: int = 1,
        targeted: bool = False,
        rho: float = 0.75,
        stop_on_success: bool = False,
        seed: int | None = 0,
    ) -> None:
        self._init_common(eps=eps, norm=norm, targeted=targeted, seed=seed)
        self.steps = check_int("steps", steps)
        self.restarts = check_int("restarts", restarts)
        self.rho = check_number("rho", rho, min=0.0, min_open=True, max=1.0)
        self.stop_on_success = check_bool("stop_on_success", stop_on_success)

    def _check_num_classes(self, num_classes: int) -> None:
        super()._check_num_classes(num_classes)
        check_classes(self.loss_name, self.targeted, num_classes)

    def _run(self, ctx: AttackContext) -> Tensor:
        x, y = ctx.x, ctx.y
        assert y is not None
        n = x.shape[0]
        with torch.no_grad():
            done = success(ctx.logits(x), y, self.targeted)
        out = x.clone()
        best = torch.full((n,), float("-inf"), device=x.device)
        for _ in range(self.restarts):
            idx = (~done).nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            adv, found, loss = self._single_run(ctx, x[idx], y[idx], idx)
            better = found | (loss > best[idx])
            out[idx] = torch.where(per_sample(better, adv), adv, out[idx])
            best[idx] = torch.where(better, loss, best[idx])
            done[idx] = found
        return out

    def _single_run(self, ctx: AttackContext, x: Tensor, y: Tensor, sel: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One APGD run on the rows ``sel`` of ``ctx.x`` (given as ``x, y``):
        ``(x_adv (m, ...), found (m,), best loss (m,))``."""
        assert self.eps is not None
        geom, eps, m, dev = geometry(self.norm), self.eps, x.shape[0], x.device
        loss_fn = get_loss(self.loss_name, self.targeted)
        lo, hi = geom.bounds(x, eps)
        start = ctx.draw(lambda s: geom.random_start(x.new_empty(s), eps, ctx.gen), sel)
        delta = geom.feasible(start, eps, lo, hi)

        loss, z, grad = ctx.loss_grad(x + delta, y, loss_fn)
        assert grad is not None
        found = success(z, y, self.targeted)
        adv = torch.where(per_sample(found, x), x + delta, x)  # last fooled point (where found)
        best_delta, best_grad, best_loss = delta.clone(), grad.clone(), loss.clone()
        step = torch.full((m,), 2.0 * eps, device=dev, dtype=x.dtype)
        prev = delta.clone()
        prev_loss = loss
        n_incr = torch.zeros(m, device=dev)
        reduced_last = torch.ones(m, dtype=torch.bool, device=dev)
        best_loss_last = best_loss.clone()
        checks = dict(checkpoints(self.steps))
        idx = torch.arange(m, device=dev)
        out_delta = torch.zeros_like(x)  # compact mode: final perturbations of dropped samples
        out_loss = torch.full((m,), float("-inf"), device=dev)
        xs, ys = x, y
        compact = self.stop_on_success

        for i in range(self.steps):
            a = 0.75 if i > 0 else 1.0
            zstep = delta + per_sample(step, delta) * geom.direction(grad)
            geom.feasible(zstep, eps, lo, hi)
            new = delta + a * (zstep - delta) + (1.0 - a) * (delta - prev)
            geom.feasible(new, eps, lo, hi)
            prev, delta = delta, new

            last = i == self.steps - 1
            loss, z, g = ctx.loss_grad(xs + delta, ys, loss_fn, need_grad=not last)
            s = success(z, ys, self.targeted)
            n_incr += (loss > prev_loss).float()
            prev_loss = loss
            better = loss > best_loss
            best_loss = torch.where(better, loss, best_loss)
            best_delta = torch.where(per_sample(better, delta), delta, best_delta)
            if g is not None:
                grad = g
                best_grad = torch.where(per_sample(better, g), g, best_grad)

            if compact:
                if bool(s.any()):
                    hit = idx[s]
                    adv[hit] = xs[s] + delta[s]
                    found[hit] = True
                    out_delta[hit] = delta[s]
                    out_loss[hit] = best_loss[s]
                    keep = ~s
                    (
                        idx,
                        xs,
                        ys,
                        lo,
                        hi,
                        delta,
                        prev,
                        grad,
                        best_delta,
                        best_grad,
                        best_loss,
                        prev_loss,
                        step,
                        n_incr,
                        reduced_last,
                        best_loss_last,
                    ) = (
                        t[keep]
                        for t in (
                            idx,
                            xs,
                            ys,
                            lo,
                            hi,
                            delta,
                            prev,
                            grad,
                            best_delta,
                            best_grad,
                            best_loss,
                            prev_loss,
                            step,
                            n_incr,
                            reduced_last,
                            best_loss_last,
                        )
                    )
                    if idx.numel() == 0:
                        break
            else:
                adv = torch.where(per_sample(s, xs), xs + delta, adv)
                found |= s

            if i in checks and not last:
                k = checks[i]
                reduce = (n_incr <= k * self.rho) | (~reduced_last & (best_loss_last >= best_loss))
                reduced_last = reduce
                best_loss_last = best_loss.clone()
                step = torch.where(reduce, step / 2.0, step)
                rm = per_sample(reduce, delta)
                delta = torch.where(rm, best_delta, delta)
                grad = torch.where(rm, best_grad, grad)
                n_incr.zero_()

        if compact:
            out_delta[idx] = best_delta
            out_loss[idx] = best_loss
            result = torch.where(per_sample(found, x), adv, x + out_delta)
            return result, found, out_loss
        return torch.where(per_sample(found, x), adv, x + best_delta), found, best_loss


class APGDCE(APGD):
    __doc__ = (APGD.__doc__ or "") + "\n    Loss: cross-entropy (targeted: minus the cross-entropy of the target).\n"
    name = "apgd-ce"
    loss_name = "ce"
    description = "Auto-PGD on the cross-entropy loss (L∞/L2), step size adapted per sample"


class APGDDLR(APGD):
    __doc__ = (APGD.__doc__ or "") + (
        "\n    Loss: Difference of Logits Ratio (scale invariant); needs at least 3 classes "
        "(4 when targeted), else ValueError.\n"
    )
    name = "apgd-dlr"
    loss_name = "dlr"
    description = "Auto-PGD on the DLR loss (L∞/L2), robust to logit rescaling; needs >= 3 classes"
