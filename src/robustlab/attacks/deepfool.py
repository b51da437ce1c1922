"""DeepFool (Moosavi-Dezfooli et al. 2016): the minimal step to the nearest linearised boundary."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from robustlab.attacks.base import Attack, AttackContext
from robustlab.attacks.norms import geometry, per_sample
from robustlab.core.checks import check_int, check_number
from robustlab.core.errors import RobustlabError


class DeepFool(Attack):
    """DeepFool, L2 or L∞, batched over the whole batch.

    At every step each still-correct sample is linearised around its current point; for each
    candidate class ``k`` (the ``num_classes − 1`` classes with the highest clean logits other
    than ``y``) the boundary with ``y`` is at distance ``|f_k| / ‖w_k‖_q`` where
    ``f_k = z_k − z_y``, ``w_k = ∇(z_k − z_y)`` and ``q`` is the dual norm (2 for L2, 1 for L∞).
    The sample moves to the nearest one (plus 1e-4) and the total perturbation is scaled by
    ``1 + overshoot``. The Jacobian rows come from ``num_classes − 1`` backward passes over the
    batch (no per-image loop); samples drop out of the batch once misclassified.

    DeepFool is untargeted. Returned per sample: the first point found misclassified; samples
    already misclassified, and samples still correct after ``steps`` steps, are returned
    unchanged (``x``). With ``eps`` set, results farther than ``eps`` (in ``norm``) are rejected
    and returned as ``x``, so every output is either adversarial inside the ball or ``x``.

    Args:
        steps: maximum iterations >= 1.
        overshoot: relative overshoot >= 0 (0.02 in the paper).
        num_classes: candidate classes including the true one (top-k of the clean logits) >= 2.
        norm: "l2" or "linf".
        eps: optional budget >= 0; None means unbounded.

    Shapes: ``x`` ``(N, C, H, W)`` float in [0, 1]; ``y`` ``(N,)`` int; output like ``x``.

    Reference: Moosavi-Dezfooli, Fawzi & Frossard, "DeepFool: a simple and accurate method to fool
    deep neural networks", CVPR 2016.
    """

    name = "deepfool"
    minimal = True
    whitebox = True
    description = "DeepFool: iterative step to the nearest linearised decision boundary (L2/L∞), minimal"
    reference = (
        "Moosavi-Dezfooli et al., DeepFool: a simple and accurate method to fool deep neural networks, CVPR 2016"
    )

    def __init__(
        self,
        *,
        steps: int = 50,
        overshoot: float = 0.02,
        num_classes: int = 10,
        norm: str = "l2",
        eps: float | None = None,
    ) -> None:
        self._init_common(eps=eps, norm=norm, targeted=False, seed=0, eps_default=False)
        self.steps = check_int("steps", steps)
        self.overshoot = check_number("overshoot", overshoot, min=0.0)
        self.num_classes = check_int("num_classes", num_classes, min=2)

    def _check_num_classes(self, num_classes: int) -> None:
        if num_classes < 2:
            raise RobustlabError(f"deepfool needs at least 2 classes, the model has {num_classes}")

    def _run(self, ctx: AttackContext) -> Tensor:
        x, y = ctx.x, ctx.y
        assert y is not None
        geom = geometry(self.norm)
        n, dev = x.shape[0], x.device
        out = x.clone()
        idx = torch.arange(n, device=dev)
        ys, xs = y, x
        cur = x
        r_tot = torch.zeros_like(x)
        cand: Tensor | None = None
        for it in range(self.steps + 1):
            need_grad = it < self.steps
            xa = cur.detach().requires_grad_(need_grad)
            with torch.set_grad_enabled(need_grad):
                z = ctx.logits(xa)
            if cand is None:
                k = min(self.num_classes, z.shape[1])
                cand = (
                    z.detach().masked_fill(F.one_hot(ys, z.shape[1]).bool(), float("-inf")).topk(k - 1, dim=1).indices
                )
            fooled = z.detach().argmax(1) != ys
            if it > 0:
                out[idx[fooled]] = cur[fooled]
            keep = ~fooled
            if not need_grad or not bool(keep.any()):
                break
            zy = z.gather(1, ys[:, None])
            f = (z.gather(1, cand) - zy).detach()[keep]  # (m, k-1)
            onehot_y = F.one_hot(ys, z.shape[1]).to(z.dtype)
            rows = []
            for j in range(cand.shape[1]):
                go = F.one_hot(cand[:, j], z.shape[1]).to(z.dtype) - onehot_y
                go = go * keep[:, None].to(z.dtype)
                (gj,) = torch.autograd.grad(z, xa, grad_outputs=go, retain_graph=j < cand.shape[1] - 1)
                rows.append(gj[keep].to(x.dtype))
            idx, ys, xs, r_tot, cand = idx[keep], ys[keep], xs[keep], r_tot[keep], cand[keep]
            wk = torch.stack(rows, dim=1)  # (m, k-1, ...)
            flat = wk.flatten(2)
            dual = flat.abs().sum(2) if self.norm == "linf" else flat.norm(dim=2)  # (m, k-1)
            dist = f.abs().to(x.dtype) / (dual + 1e-8)
            best = dist.argmin(dim=1)
            ar = torch.arange(best.shape[0], device=dev)
            w_l = wk[ar, best]
            d_l = dist[ar, best] + 1e-4
            if self.norm == "linf":
                r = per_sample(d_l, w_l) * w_l.sign()
            else:
                r = per_sample(d_l / (dual[ar, best] + 1e-8), w_l) * w_l
            r_tot = r_tot + r
            cur = (xs + (1.0 + self.overshoot) * r_tot).clamp(0.0, 1.0)
        if self.eps is not None:
            too_far = geom.norms(out - x) > self.eps
            out = torch.where(per_sample(too_far, x), x, out)
        return out
