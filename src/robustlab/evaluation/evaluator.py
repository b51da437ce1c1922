"""One batch of a robustness evaluation: the ``K × M`` early-exit recurrence over attacks and budgets.

:meth:`BatchEvaluator.run_batch` fills the per-sample rows of the evaluation state (see
:func:`robustlab.evaluation.state.empty_state`) for one batch; the definitions of ``F``, ``C`` and
the early exit are in :mod:`robustlab.evaluation.robust`.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor, nn

from robustlab.attacks.norms import geometry
from robustlab.core.precision import autocast_context
from robustlab.evaluation.metrics import derive_seed, noisy_correct
from robustlab.evaluation.plan import EvaluationPlan
from robustlab.evaluation.runner import check_threat_model, run_attack
from robustlab.models.inference import predict


class BatchEvaluator:
    """Runs an :class:`~robustlab.evaluation.plan.EvaluationPlan` on batches of one model (already in
    eval mode, on ``device``); forward passes under ``amp``, random draws seeded from ``seed``."""

    def __init__(self, model: nn.Module, plan: EvaluationPlan, device: torch.device, amp: str, seed: int) -> None:
        self.model, self.plan = model, plan
        self.device, self.amp, self.seed = device, amp, seed

    # -- one batch -------------------------------------------------------------------------------

    def _attack(
        self, k: int, eps: float | None, x: Tensor, y: Tensor, todo: Tensor, seed: int
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Run attack ``k`` of the plan on rows ``todo``: ``(pred (B,), verified fooled (B,), norms in the
        evaluation's norm (B,), norms in the attack's own norm (B,))``; rows outside ``todo`` get pred −1,
        not fooled, nan norms."""
        ap = self.plan.attacks[k]
        attack = ap.build(eps, seed, self.plan.early_exit)
        with autocast_context(self.device, self.amp):
            x_adv = run_attack(attack, self.model, x, y, todo)
        idx = todo.nonzero().squeeze(1)
        xa, xo = x_adv[idx], x[idx]
        delta = (xa - xo).float()
        norms = self.plan.geom.norms(delta)
        check_threat_model(ap.name, xo, xa, eps, self.plan.norm, norms)
        native = norms if ap.native_norm() == self.plan.norm else geometry(ap.native_norm()).norms(delta)
        p_rows = predict(self.model, xa, self.amp)
        pred = torch.full_like(y, -1)
        pred[idx] = p_rows
        fooled = torch.zeros_like(todo)
        fooled[idx] = p_rows != y[idx]
        nrm = torch.full(y.shape, float("nan"), device=y.device)
        nat = torch.full(y.shape, float("nan"), device=y.device)
        nrm[idx], nat[idx] = norms, native
        return pred, fooled, nrm, nat

    def run_batch(self, x: Tensor, y: Tensor, batch_seed: int, acc: dict[str, Any], rows: slice) -> None:
        """Evaluate one batch ``x`` ``(B, C, H, W)``, ``y`` ``(B,)``: write rows ``rows`` of the state
        ``acc``'s per-sample tensors and add its attack counts and seconds. Every random draw derives
        from ``batch_seed``."""
        dev = x.device
        clean_pred = predict(self.model, x, self.amp)
        correct = clean_pred == y
        k_n, m_n, b = len(self.plan.attacks), len(self.plan.eps), y.shape[0]
        cum = torch.zeros(k_n, m_n, b, dtype=torch.bool, device=dev)
        adv_pred = torch.empty(m_n, b, dtype=torch.long, device=dev)
        new_norm = torch.full((k_n, m_n, b), float("nan"), device=dev)
        attacked = torch.zeros(k_n, m_n, dtype=torch.long)
        seconds = torch.zeros(k_n, m_n, dtype=torch.float64)
        minimal: dict[int, tuple[Tensor, Tensor]] = {}  # k -> (pred, eval-norm norm, inf if not found)
        min_native = torch.full((len(self.plan.minimal_idx), b), float("nan"), device=dev)
        everyone = torch.ones_like(correct)

        for m, e in enumerate(self.plan.eps):
            prev_k = ~correct  # C[k-1, m]
            wc_found = ~correct if m == 0 else cum[:, m - 1].any(0)  # worst-case fooled so far
            adv_pred[m] = clean_pred if m == 0 else adv_pred[m - 1]
            for k, ap in enumerate(self.plan.attacks):
                prev_m = ~correct if m == 0 else cum[k, m - 1]  # C[k, m-1]
                # standalone: each attack is judged on its own (only its smaller budgets count as known)
                known = prev_m if self.plan.standalone else prev_k | prev_m
                t0 = time.perf_counter()
                if ap.minimal:
                    if k not in minimal:
                        todo = correct if self.plan.early_exit else everyone
                        pred, fooled, nrm, nat = self._attack(k, None, x, y, todo, derive_seed(batch_seed, ap.name))
                        ok = fooled & correct
                        minimal[k] = (pred, torch.where(ok, nrm, torch.full_like(nrm, float("inf"))))
                        j = self.plan.minimal_idx.index(k)
                        min_native[j] = torch.where(ok, nat, torch.full_like(nat, float("inf")))
                        min_native[j][~correct] = float("nan")
                        attacked[k, m] += int(todo.sum())
                    pred, min_norm = minimal[k]
                    fooled = min_norm <= e
                    nrm = min_norm
                elif e == 0:
                    pred = clean_pred
                    fooled = torch.zeros_like(correct)
                    nrm = torch.zeros(b, device=dev)
                else:
                    todo = ~known if self.plan.early_exit else everyone
                    if bool(todo.any()):
                        pred, fooled, nrm, _ = self._attack(k, e, x, y, todo, derive_seed(batch_seed, ap.name, m))
                        fooled = fooled & correct
                        attacked[k, m] += int(todo.sum())
                    else:
                        pred, fooled, nrm = clean_pred, torch.zeros_like(correct), torch.zeros(b, device=dev)
                seconds[k, m] += time.perf_counter() - t0
                new = fooled & ~known
                cum[k, m] = known | fooled
                new_norm[k, m] = torch.where(new, nrm, new_norm[k, m])
                first = fooled & ~wc_found
                adv_pred[m] = torch.where(first, pred, adv_pred[m])
                wc_found |= fooled
                prev_k = cum[k, m]

        acc["clean_pred"][rows] = clean_pred.cpu()
        acc["cum"][:, :, rows] = cum.cpu()
        acc["adv_pred"][:, rows] = adv_pred.cpu()
        acc["new_norm"][:, :, rows] = new_norm.cpu()
        acc["min_norm"][:, rows] = min_native.cpu()
        acc["noise"][:, rows] = noisy_correct(self.model, x, y, self.plan.sigmas, batch_seed, self.amp).cpu()
        acc["attacked"] += attacked
        acc["seconds"] += seconds

    # -- examples for figures ----------------------------------------------------------------------

    def examples(self, x: Tensor, y: Tensor) -> dict[str, Any]:
        """Each attack alone at the largest eps (minimal-perturbation attacks without eps) on ``x``
        ``(n, C, H, W)``, ``y`` ``(n,)``: ``{x, y, clean_pred, x_adv: {attack: (n, C, H, W)},
        adv_pred: {attack: (n,)}, eps}``, on the CPU (no attack when the largest eps is 0 or absent)."""
        clean_pred = predict(self.model, x, self.amp)
        out: dict[str, Any] = {"x": x.cpu(), "y": y.cpu(), "clean_pred": clean_pred.cpu(), "x_adv": {},
                               "adv_pred": {}, "eps": self.plan.eps[-1] if self.plan.eps else None}
        if not self.plan.eps or self.plan.eps[-1] == 0:
            return out
        everyone = torch.ones_like(y, dtype=torch.bool)
        for k, ap in enumerate(self.plan.attacks):
            eps = None if ap.minimal else self.plan.eps[-1]
            attack = ap.build(eps, derive_seed(self.seed, "examples", k), False)
            with autocast_context(self.device, self.amp):
                x_adv = run_attack(attack, self.model, x, y, everyone)
            out["x_adv"][ap.name] = x_adv.detach().cpu()
            out["adv_pred"][ap.name] = predict(self.model, x_adv, self.amp).cpu()
        return out
