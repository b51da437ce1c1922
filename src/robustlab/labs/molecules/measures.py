"""Numbers of a binary classifier's probabilities: threshold metrics, ranking metrics, calibration,
and the per-length-decile breakdown. Inputs are numpy arrays: ``y`` in {0, 1}, ``p`` in [0, 1]."""

from __future__ import annotations

import numpy as np


def binary_metrics(y: np.ndarray, p: np.ndarray, bins: int = 10) -> dict[str, float]:
    """AUROC, PR-AUC (average precision), accuracy, balanced accuracy, MCC, Brier score and ECE at
    threshold 0.5 (ranking metrics omitted when ``y`` holds one class)."""
    from sklearn.metrics import average_precision_score, balanced_accuracy_score, matthews_corrcoef, roc_auc_score

    pred = (p >= 0.5).astype(np.int64)
    out = {"accuracy": float((pred == y).mean()), "brier": float(((p - y) ** 2).mean()),
           "ece": expected_calibration_error(y, p, bins), "n": int(len(y)), "positive_rate": float(y.mean())}
    if len(np.unique(y)) == 2:
        out.update(roc_auc=float(roc_auc_score(y, p)), pr_auc=float(average_precision_score(y, p)),
                   balanced_accuracy=float(balanced_accuracy_score(y, pred)), mcc=float(matthews_corrcoef(y, pred)))
    return out


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Equal-width confidence bins of the positive-class probability: count, mean predicted, observed rate."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        m = which == b
        if m.any():
            rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "n": int(m.sum()),
                         "predicted": float(p[m].mean()), "observed": float(y[m].mean())})
    return rows


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Count-weighted mean |observed rate − mean predicted probability| over equal-width bins."""
    rows = reliability(y, p, bins)
    return float(sum(r["n"] * abs(r["observed"] - r["predicted"]) for r in rows) / max(len(y), 1))


def length_deciles(lengths: np.ndarray, bins: int = 10) -> np.ndarray:
    """Bin index in [0, bins) of each molecule by length quantile (ties kept in one bin)."""
    edges = np.quantile(lengths, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, lengths, side="left")


def decile_rows(y: np.ndarray, probs: dict[str, np.ndarray], lengths: np.ndarray, bins: int = 10) -> list[dict]:
    """Per length bin: size, longest length, positive rate, majority-class accuracy and, per model,
    accuracy, accuracy minus majority accuracy (what the model adds over the bin's base rate) and AUROC."""
    from sklearn.metrics import roc_auc_score

    which = length_deciles(lengths, bins)
    rows = []
    for b in range(bins):
        m = which == b
        if not m.any():
            continue
        pos = float(y[m].mean())
        row = {"bin": b, "n": int(m.sum()), "max_length": int(lengths[m].max()), "positive_rate": pos,
               "majority_accuracy": max(pos, 1 - pos)}
        for name, p in probs.items():
            acc = float(((p[m] >= 0.5) == y[m]).mean())
            row[f"{name}_accuracy"] = acc
            row[f"{name}_gain"] = acc - row["majority_accuracy"]
            if 0 < pos < 1:
                row[f"{name}_roc_auc"] = float(roc_auc_score(y[m], p[m]))
        rows.append(row)
    return rows


def invariance(p_canonical: np.ndarray, p_variants: np.ndarray) -> dict[str, float]:
    """How one molecule's many SMILES agree: ``p_variants (N, V)`` beside ``p_canonical (N,)`` —
    the flip rate (share of (molecule, variant) pairs whose decision differs from the canonical
    string's), the share of molecules with at least one flipping variant (an enumeration attack's
    success), and the mean per-molecule standard deviation and range of the probability."""
    canon = (p_canonical >= 0.5)[:, None]
    flips = (p_variants >= 0.5) != canon
    allp = np.concatenate([p_canonical[:, None], p_variants], 1)
    return {"flip_rate": float(flips.mean()), "any_flip_rate": float(flips.any(1).mean()),
            "probability_std": float(allp.std(1).mean()), "probability_range": float(np.ptp(allp, 1).mean()),
            "variants": int(p_variants.shape[1])}
