"""The JSON summary of a robustness evaluation (the layout is in
:meth:`robustlab.evaluation.EvaluationResult.to_json`): the robust-accuracy rows, worst case, noise,
per-class and superclass tables, confusion matrices, minimal perturbations, early-exit counts and
the sanity flags. Accuracies are fractions in [0, 1]."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from robustlab.evaluation import flags as F
from robustlab.evaluation.metrics import confusion_matrix, norm_summary, per_class_accuracy, superclass_accuracy
from robustlab.evaluation.plan import EvaluationPlan
from robustlab.evaluation.result import EvaluationResult


def _mean(mask: Tensor) -> float:
    return float(mask.double().mean()) if mask.numel() else 0.0


def _eps_255(eps: float, norm: str) -> float | None:
    return round(eps * 255, 2) if norm == "linf" else None


def robust_rows(plan: EvaluationPlan, res: EvaluationResult, acc: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per attack and budget (attack-major), see ``robust`` in ``to_json``."""
    n = res.labels.numel()
    clean_acc = res.clean_accuracy
    n_correct = int(res.clean_correct.sum())
    rows = []
    for k, ap in enumerate(plan.attacks):
        for m, e in enumerate(plan.eps):
            robust_acc = _mean(res.robust_correct[ap.name][e])
            stats = acc["new_norm"][k, m]
            stats = stats[torch.isfinite(stats)]
            rows.append({
                "attack": ap.name,
                "norm": plan.norm,
                "eps": e,
                "eps_255": _eps_255(e, plan.norm),
                "accuracy": robust_acc,
                "success_rate": (clean_acc - robust_acc) * n / n_correct if n_correct else None,
                "mean_norm": float(stats.double().mean()) if stats.numel() else None,
                "median_norm": float(stats.double().median()) if stats.numel() else None,
                "newly_fooled": int(stats.numel()),
                "attacked": int(acc["attacked"][k, m]),
                "seconds": float(acc["seconds"][k, m]),
            })
    return rows


def per_class_table(res: EvaluationResult, robust_mask: Tensor | None) -> dict[str, dict[str, Any]]:
    """``{class: {clean, robust, n}}``; ``robust`` from ``robust_mask`` ``(N,)`` (None without one)."""
    k_cls = len(res.class_names)
    clean_pc = per_class_accuracy(res.labels, res.clean_correct, k_cls)
    robust_pc: list[float | None] = [None] * k_cls
    if robust_mask is not None:
        robust_pc = per_class_accuracy(res.labels, robust_mask, k_cls)
    counts = torch.bincount(res.labels, minlength=k_cls).tolist()
    return {
        name: {"clean": c, "robust": r, "n": int(cnt)}
        for name, c, r, cnt in zip(res.class_names, clean_pc, robust_pc, counts, strict=True)
    }


def superclass_table(data: Any, res: EvaluationResult, adv_pred: Tensor | None) -> dict[str, Any] | None:
    """Clean and robust superclass accuracy when ``data`` has coarse labels (else None)."""
    coarse = getattr(data, "coarse_targets", None)
    if coarse is None or not data.coarse_classes:
        return None
    preds = {"clean": res.clean_pred}
    if adv_pred is not None:
        preds["robust"] = adv_pred
    coarse = torch.as_tensor(coarse)
    return superclass_accuracy(res.labels, coarse, preds, len(res.class_names), data.coarse_classes)


def min_perturbation_table(plan: EvaluationPlan, res: EvaluationResult) -> dict[str, dict[str, Any]]:
    """Norm statistics of each minimal-perturbation attack over the clean-correct points."""
    out = {}
    for name, norms in res.min_norms.items():
        vals = norms[res.clean_correct]
        ap = next(p for p in plan.attacks if p.name == name)
        out[name] = {
            "norm": ap.native_norm(),
            "found": _mean(torch.isfinite(vals)) if vals.numel() else None,
            **norm_summary(vals),
        }
    return out


def early_exit_counts(plan: EvaluationPlan, n: int, acc: dict[str, Any]) -> dict[str, Any]:
    """``{enabled, attacked_points, skipped_points}``: attacked vs skipped (point, attack, budget) runs."""
    total = sum(n if (not p.minimal and e > 0) else 0 for p in plan.attacks for e in plan.eps)
    total += n * sum(1 for p in plan.attacks if p.minimal and plan.eps)
    attacked = int(acc["attacked"].sum())
    return {"enabled": plan.early_exit, "attacked_points": attacked, "skipped_points": total - attacked}


def summarise(
    plan: EvaluationPlan, data: Any, res: EvaluationResult, acc: dict[str, Any], sanity: dict[str, Any] | None
) -> dict[str, Any]:
    """The JSON summary of ``res`` (without the timings ``sanity_seconds``/``eval_seconds``), its
    sanity ``flags`` included; ``acc`` is the evaluation's whole state."""
    n = res.labels.numel()
    largest = plan.eps[-1] if plan.eps else None
    robust_mask = res.worst_case[largest] if largest is not None else None
    adv_pred = res.adv_pred[largest] if largest is not None else None
    k_cls = len(res.class_names)
    summary: dict[str, Any] = {
        "clean_accuracy": res.clean_accuracy,
        "n_samples": n,
        "norm": plan.norm,
        "attacks": res.attacks,
        "eps": list(plan.eps),
        "robust": robust_rows(plan, res, acc),
        "worst_case": [
            {"eps": e, "eps_255": _eps_255(e, plan.norm), "accuracy": _mean(res.worst_case[e])} for e in plan.eps
        ],
        "noise": [{"sigma": s, "accuracy": _mean(res.noise_correct[s])} for s in plan.sigmas],
        "per_class": per_class_table(res, robust_mask),
        "superclass": superclass_table(data, res, adv_pred),
        "confusion": {
            "clean": confusion_matrix(res.labels, res.clean_pred, k_cls).tolist(),
            "adversarial": None if adv_pred is None else confusion_matrix(res.labels, adv_pred, k_cls).tolist(),
            "eps": largest,
        },
        "min_perturbation": min_perturbation_table(plan, res),
        "early_exit": early_exit_counts(plan, n, acc),
        "per_attack": plan.per_attack,
        "sanity": sanity,
    }
    summary["flags"] = [f.to_json() for f in F.run_checks(summary)]
    return summary
