"""Small, vectorised metrics on per-sample predictions, and accuracies over a dataset.

Every function here works on whole tensors (no per-image Python loop). Conventions:

- ``labels``/``preds`` are int64 tensors of shape ``(N,)`` with values in ``[0, K)``;
- accuracies are fractions in [0, 1] (``None`` where a class has no sample);
- pixels are float ``(N, C, H, W)`` in [0, 1], as everywhere in robustlab.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from robustlab.core.errors import RobustlabError
from robustlab.core.modes import eval_mode
from robustlab.data import make_loader
from robustlab.models.inference import dataset_accuracy, model_dtype, predict

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


# -- plumbing shared by the evaluation modules ---------------------------------------------------


def derive_seed(seed: int, *parts: int | str) -> int:
    """A stable 63-bit seed from ``seed`` and ``parts`` (same inputs → same seed, on every machine)."""
    digest = hashlib.blake2b(repr((seed, *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


# -- accuracy tables -----------------------------------------------------------------------------


def confusion_matrix(labels: Tensor, preds: Tensor, num_classes: int) -> Tensor:
    """``(K, K)`` int64 counts: row = true class, column = predicted class.

    ``trace / N`` is the accuracy of ``preds``. Vectorised with one ``bincount``.
    """
    labels, preds = labels.reshape(-1).long().cpu(), preds.reshape(-1).long().cpu()
    if labels.shape != preds.shape:
        raise RobustlabError(f"labels and predictions differ in length: {labels.numel()} vs {preds.numel()}")
    if labels.numel() and (int(labels.max()) >= num_classes or int(preds.max()) >= num_classes):
        raise RobustlabError(f"labels and predictions must lie in 0..{num_classes - 1}")
    flat = labels * num_classes + preds
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_accuracy(labels: Tensor, correct: Tensor, num_classes: int) -> list[float | None]:
    """Accuracy of each class ``k``: mean of ``correct`` over samples with ``labels == k``.

    Args:
        labels: ``(N,)`` int64 true classes.
        correct: ``(N,)`` bool, e.g. ``preds == labels`` or a robustness mask.
        num_classes: ``K``.

    Returns:
        ``K`` fractions in [0, 1], ``None`` for a class without samples.
    """
    labels = labels.reshape(-1).long().cpu()
    correct = correct.reshape(-1).cpu().to(torch.float64)
    counts = torch.bincount(labels, minlength=num_classes).to(torch.float64)
    hits = torch.bincount(labels, weights=correct, minlength=num_classes)
    return [None if n == 0 else float(h / n) for h, n in zip(hits.tolist(), counts.tolist(), strict=True)]


def fine_to_coarse(labels: Tensor, coarse_labels: Tensor, num_classes: int) -> Tensor:
    """The ``(K,)`` map from fine class to superclass read off paired label tensors.

    Classes that never occur map to -1. Raises :class:`RobustlabError` when one fine class appears
    with two different superclasses (the coarse labels are then not a partition).
    """
    labels, coarse_labels = labels.reshape(-1).long().cpu(), coarse_labels.reshape(-1).long().cpu()
    mapping = torch.full((num_classes,), -1, dtype=torch.long)
    mapping[labels] = coarse_labels
    if bool((mapping[labels] != coarse_labels).any()):
        raise RobustlabError("coarse labels are inconsistent: a fine class belongs to two superclasses")
    return mapping


def superclass_accuracy(
    labels: Tensor,
    coarse_labels: Tensor,
    preds: dict[str, Tensor],
    num_classes: int,
    coarse_names: Sequence[str],
) -> dict[str, Any]:
    """Accuracy at the superclass level: a prediction counts when it falls in the true superclass.

    Args:
        labels: ``(N,)`` fine true classes; ``coarse_labels``: ``(N,)`` their superclasses.
        preds: named ``(N,)`` fine predictions, e.g. ``{"clean": p, "robust": p_adv}``.
        num_classes: number of fine classes ``K``.
        coarse_names: superclass names, index = coarse label.

    Returns:
        ``{"<name>_accuracy": float, ..., "per_superclass": {superclass: {"<name>": float, "n": int}}}``.
    """
    mapping = fine_to_coarse(labels, coarse_labels, num_classes)
    coarse_labels = coarse_labels.reshape(-1).long().cpu()
    n_coarse = len(coarse_names)
    out: dict[str, Any] = {}
    counts = torch.bincount(coarse_labels, minlength=n_coarse).tolist()
    per: dict[str, dict[str, Any]] = {
        str(name): {"n": int(c)} for name, c in zip(coarse_names, counts, strict=True)
    }
    for key, p in preds.items():
        hit = mapping[p.reshape(-1).long().cpu()] == coarse_labels
        out[f"{key}_accuracy"] = float(hit.double().mean()) if hit.numel() else None
        accs = per_class_accuracy(coarse_labels, hit, n_coarse)
        for name, acc in zip(coarse_names, accs, strict=True):
            per[str(name)][key] = acc
    out["per_superclass"] = per
    return out


def norm_summary(values: Tensor) -> dict[str, Any]:
    """``{n, mean, median, quantiles{q: v}}`` of the finite entries of a 1-D tensor (None when empty)."""
    v = values.reshape(-1).double()
    v = v[torch.isfinite(v)]
    if v.numel() == 0:
        return {"n": 0, "mean": None, "median": None, "quantiles": {str(q): None for q in QUANTILES}}
    qs = torch.quantile(v, torch.tensor(QUANTILES, dtype=torch.float64)).tolist()
    return {
        "n": int(v.numel()),
        "mean": float(v.mean()),
        "median": float(v.median()),
        "quantiles": {str(q): float(x) for q, x in zip(QUANTILES, qs, strict=True)},
    }


# -- evaluations over a dataset ------------------------------------------------------------------


def noisy_correct(
    model: nn.Module, x: Tensor, y: Tensor, sigmas: Sequence[float], seed: int, amp: str = "none"
) -> Tensor:
    """``(S, B)`` bool: is ``clip(x + sigma·n, 0, 1)`` classified as ``y``, for each ``sigma``.

    The Gaussian noise ``n`` is drawn on the CPU from a generator seeded with
    ``derive_seed(seed, sigma index)`` and moved to ``x``'s device, so the draw is identical on
    every device and for a resumed evaluation.
    """
    out = torch.zeros(len(sigmas), x.shape[0], dtype=torch.bool, device=x.device)
    for s, sigma in enumerate(sigmas):
        if sigma == 0:
            xn = x
        else:
            gen = torch.Generator().manual_seed(derive_seed(seed, "noise", s))
            noise = torch.randn(x.shape, generator=gen, dtype=torch.float32).to(x.device, x.dtype)
            xn = (x + sigma * noise).clamp_(0.0, 1.0)
        out[s] = predict(model, xn, amp) == y
    return out


def accuracy_under_noise(
    model: nn.Module,
    dataset: Any,
    sigmas: Sequence[float],
    device: torch.device = torch.device("cpu"),
    batch_size: int = 256,
    seed: int = 0,
    amp: str = "none",
) -> list[dict[str, float]]:
    """Accuracy on ``dataset`` when Gaussian noise of std ``sigma`` (pixel units) is added and clipped.

    Batch ``b`` uses noise seeded by ``derive_seed(seed, b)`` (see :func:`noisy_correct`), which is
    the draw :func:`robustlab.evaluation.evaluate_robustness` makes with the same ``batch_size``.

    Returns:
        ``[{"sigma": s, "accuracy": a}, ...]`` in the order of ``sigmas``.
    """
    hits = torch.zeros(len(sigmas), dtype=torch.long)
    total = 0
    dtype = model_dtype(model)
    with eval_mode(model):
        for b, (x, y) in enumerate(make_loader(dataset, batch_size=batch_size, shuffle=False)):
            x, y = x.to(device, dtype), y.to(device)
            hits += noisy_correct(model, x, y, sigmas, derive_seed(seed, b), amp).sum(dim=1).cpu()
            total += y.numel()
    return [
        {"sigma": float(s), "accuracy": float(h) / total if total else 0.0}
        for s, h in zip(sigmas, hits.tolist(), strict=True)
    ]


def cross_domain_table(
    model: nn.Module,
    datasets: Mapping[str, Any],
    device: torch.device = torch.device("cpu"),
    batch_size: int = 256,
    amp: str = "none",
) -> list[dict[str, Any]]:
    """Clean accuracy of ``model`` on each named dataset (already adapted to the model's input shape).

    Returns:
        ``[{"dataset": name, "accuracy": a, "n": len(ds)}, ...]`` in the mapping's order.
    """
    return [
        {"dataset": name, "accuracy": dataset_accuracy(model, ds, batch_size, device, amp), "n": len(ds)}
        for name, ds in datasets.items()
    ]
