"""Metrics computed over a whole split: ``update`` on every batch, ``compute`` once at the end.

Per-batch sums (the task's ``batch_metrics``) cannot express corpus-level numbers — ROC-AUC, BLEU,
a Fréchet distance. A :class:`Metric` keeps what it needs per example (:meth:`CorpusMetric.keep`);
before :meth:`Metric.compute` the kept rows of every DDP rank are gathered exactly
(:func:`robustlab.core.distributed.gather_rows`), so the number equals a single process's.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from robustlab.core import distributed as D
from robustlab.training.task import StepOutput


class Metric:
    """One or more numbers over a split. ``directions`` says, per produced name, whether higher is better."""

    name: ClassVar[str] = "metric"
    directions: ClassVar[dict[str, bool]] = {}

    def reset(self) -> None:
        """Forget every update (called before each pass over a split)."""

    def update(self, out: StepOutput) -> None:
        """Take one batch's outputs and targets."""
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        """The metric's numbers over everything seen since :meth:`reset`, identical on every rank."""
        raise NotImplementedError


class CorpusMetric(Metric):
    """A metric over per-example rows: subclasses ``keep`` tensors in ``update`` and turn the gathered
    rows into numbers in :meth:`score`."""

    def __init__(self) -> None:
        self._rows: dict[str, list[torch.Tensor]] = {}

    def reset(self) -> None:
        self._rows = {}

    def keep(self, **rows: torch.Tensor) -> None:
        """Append per-example rows (first dimension = examples), detached and moved to the CPU."""
        for k, v in rows.items():
            self._rows.setdefault(k, []).append(v.detach().to("cpu"))

    def gathered(self) -> dict[str, torch.Tensor]:
        """Every kept row of every rank, concatenated (rank order; one process: the update order)."""
        return {k: D.gather_rows(torch.cat(v)) for k, v in self._rows.items()}

    def compute(self) -> dict[str, float]:
        rows = self.gathered()
        if not rows or not next(iter(rows.values())).shape[0]:
            return {}
        return self.score(rows)

    def score(self, rows: dict[str, torch.Tensor]) -> dict[str, float]:
        """Numbers from the gathered rows."""
        raise NotImplementedError


class BinaryROCAUC(CorpusMetric):
    """Area under the ROC curve of a binary classifier (``roc_auc``) and the average precision
    (``pr_auc``), from the positive-class probability. ``outputs`` are logits ``(N, 2)`` or ``(N,)``;
    targets ``(N,)`` in {0, 1}. Undefined (omitted) when a split holds a single class."""

    name = "roc_auc"
    directions: ClassVar[dict[str, bool]] = {"roc_auc": True, "pr_auc": True}

    def update(self, out: StepOutput) -> None:
        logits = out.outputs.detach().float()
        score = logits.softmax(-1)[..., 1] if logits.dim() == 2 else logits.sigmoid()
        self.keep(score=score, target=out.targets)

    def score(self, rows: dict[str, torch.Tensor]) -> dict[str, Any]:
        from sklearn.metrics import average_precision_score, roc_auc_score

        y, s = rows["target"].numpy(), rows["score"].double().numpy()
        if len(set(y.tolist())) < 2:
            return {}
        return {"roc_auc": float(roc_auc_score(y, s)), "pr_auc": float(average_precision_score(y, s))}
