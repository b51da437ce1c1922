"""Robustness evaluation: robust accuracy with per-sample worst case and an exact early exit,
sweeps over eps and noise, per-class/superclass tables, confusion matrices, cross-domain accuracy,
sanity flags, resumable state.

Main entry point::

    from robustlab.config import EvalConfig
    from robustlab.evaluation import evaluate_robustness

    res = evaluate_robustness(model, test_set, EvalConfig(attacks=["fgsm", "pgd"], eps=[2/255, 8/255]))
    res.to_json()["worst_case"]      # [{"eps": ..., "accuracy": ...}, ...]
    res.worst_case[8/255]            # (N,) bool: robust against every attack

See :mod:`robustlab.evaluation.robust` for what the numbers mean and why early exit gives the same
ones, and :data:`FLAG_DOCS` for the sanity flags.
"""

from robustlab.evaluation.flags import FLAG_DOCS, Flag, run_checks
from robustlab.evaluation.metrics import (
    accuracy_under_noise,
    confusion_matrix,
    cross_domain_table,
    per_class_accuracy,
    superclass_accuracy,
)
from robustlab.evaluation.result import EvaluationResult
from robustlab.evaluation.robust import evaluate_robustness

__all__ = [
    "FLAG_DOCS",
    "EvaluationResult",
    "Flag",
    "accuracy_under_noise",
    "confusion_matrix",
    "cross_domain_table",
    "evaluate_robustness",
    "per_class_accuracy",
    "run_checks",
    "superclass_accuracy",
]
