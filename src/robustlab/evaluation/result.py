"""What a robustness evaluation returns: per-sample outcomes, examples for figures and the JSON summary."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from robustlab.evaluation.plan import EvaluationPlan


@dataclass
class EvaluationResult:
    """Everything :func:`~robustlab.evaluation.robust.evaluate_robustness` measured.

    Per-sample tensors (CPU, length ``N`` = number of evaluated images, in dataset order):

    - ``labels`` int64, ``clean_pred`` int64, ``clean_correct`` bool;
    - ``robust_correct[attack][eps]`` bool: robust against this attack and every earlier one, at
      every budget ≤ eps (see :mod:`robustlab.evaluation.robust`);
    - ``worst_case[eps]`` bool: robust against every attack at every budget ≤ eps;
    - ``adv_pred[eps]`` int64: the prediction on the first verified adversarial example found within
      eps (the clean prediction where none was found) — the adversarial confusion matrix;
    - ``min_norms[attack]`` float: for minimal-perturbation attacks, the norm of the adversarial
      perturbation in the attack's own norm (``inf``: none found; ``nan``: misclassified clean);
    - ``noise_correct[sigma]`` bool: correct under Gaussian noise of std ``sigma``.

    ``examples`` holds the first images for figures: ``x`` ``(n, C, H, W)``, ``y``, ``clean_pred``,
    ``x_adv[attack]`` and ``adv_pred[attack]`` (each attack alone at the largest eps).
    ``summary`` is the JSON (see :meth:`to_json`).
    """

    attacks: list[str]
    eps: list[float]
    norm: str
    class_names: list[str]
    labels: Tensor
    clean_pred: Tensor
    clean_correct: Tensor
    robust_correct: dict[str, dict[float, Tensor]]
    worst_case: dict[float, Tensor]
    adv_pred: dict[float, Tensor]
    min_norms: dict[str, Tensor]
    noise_correct: dict[float, Tensor]
    examples: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.double().mean()) if self.clean_correct.numel() else 0.0

    @property
    def flags(self) -> list[dict[str, str]]:
        return list(self.summary.get("flags", []))

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready summary (a deep copy). Accuracies are fractions in [0, 1], eps in pixel units::

            clean_accuracy, n_samples, norm, attacks, eps,
            robust: [{attack, norm, eps, eps_255 (L∞: eps·255, 2 decimals; L2: null), accuracy
                      (against this attack and the ones before it), success_rate (fooled / clean-correct),
                      mean_norm, median_norm (perturbation norm of the points this row newly fooled),
                      newly_fooled, attacked (points the attack ran on), seconds}],
            worst_case: [{eps, eps_255, accuracy}],
            noise: [{sigma, accuracy}],
            per_class: {class: {clean, robust (worst case, largest eps), n}},
            superclass: null | {clean_accuracy, robust_accuracy, per_superclass: {name: {clean, robust, n}}},
            confusion: {clean: K×K, adversarial: K×K | null, eps},   # rows true, columns predicted
            min_perturbation: {attack: {norm, found, n, mean, median, quantiles: {"0.1": …, …}}},
            early_exit: {enabled, attacked_points, skipped_points},
            sanity: null | {...} (see robustlab.evaluation.sanity.sanity_measurements),
            flags: [{code, severity, message, remedy}],
            sanity_seconds, eval_seconds
        """
        return copy.deepcopy(self.summary)


def assemble_result(
    plan: EvaluationPlan, data: Any, labels: Tensor, acc: dict[str, Any], examples: dict[str, Any]
) -> EvaluationResult:
    """The per-sample result of a finished evaluation of ``plan`` on ``data`` (``labels`` ``(N,)``)
    from its whole state ``acc`` (see :func:`robustlab.evaluation.state.empty_state`); ``summary``
    is left empty."""
    clean_pred = acc["clean_pred"]
    correct = clean_pred == labels
    robust = {
        p.name: {e: ~acc["cum"][k, m] for m, e in enumerate(plan.eps)} for k, p in enumerate(plan.attacks)
    }
    if plan.attacks:
        worst = {e: ~acc["cum"][:, m].any(0) for m, e in enumerate(plan.eps)}
        adv_pred = {e: acc["adv_pred"][m] for m, e in enumerate(plan.eps)}
    else:
        worst = {e: correct.clone() for e in plan.eps}
        adv_pred = {e: clean_pred.clone() for e in plan.eps}
    return EvaluationResult(
        attacks=[p.name for p in plan.attacks],
        eps=list(plan.eps),
        norm=plan.norm,
        class_names=list(data.classes),
        labels=labels,
        clean_pred=clean_pred,
        clean_correct=correct,
        robust_correct=robust,
        worst_case=worst,
        adv_pred=adv_pred,
        min_norms={plan.attacks[k].name: acc["min_norm"][j] for j, k in enumerate(plan.minimal_idx)},
        noise_correct={s: acc["noise"][i] for i, s in enumerate(plan.sigmas)},
        examples=examples,
    )
