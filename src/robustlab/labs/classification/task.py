"""Image classification: cross-entropy (with optional label smoothing) and accuracy."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.training.task import StepOutput


class ClassificationTask:
    """Batches are ``(x, y)`` with ``x`` pixels in [0, 1] ``(N, C, H, W)`` and ``y`` int64 ``(N,)``.

    Loss: mean cross-entropy with ``label_smoothing``. Metrics: ``loss`` and ``accuracy`` (fraction
    of the argmax equal to the label).
    """

    name = "classification"
    monitor = "accuracy"
    higher_is_better = True

    def __init__(self, num_classes: int, label_smoothing: float = 0.0) -> None:
        self.num_classes = num_classes
        self.label_smoothing = label_smoothing

    def unpack(self, batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = batch[0], batch[1]
        return x.to(device, non_blocking=True), y.to(device, non_blocking=True)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of ``logits (N, K)`` against ``y (N,)``, computed in float32."""
        return F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)

    def forward(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        logits = model(inputs)
        return StepOutput(self.loss(logits, targets), logits, targets)

    def batch_metrics(self, out: StepOutput) -> dict[str, torch.Tensor]:
        n = out.targets.numel()
        return {
            "loss": out.loss.detach().float() * n,
            "correct": (out.outputs.detach().argmax(1) == out.targets).sum().float(),
            "count": torch.tensor(float(n), device=out.targets.device),
            **{k: v.detach().float() * n for k, v in out.extras.items()},
        }

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums.get("count", 0.0), 1.0)
        res = {"loss": sums["loss"] / n, "accuracy": sums["correct"] / n}
        res.update({k: v / n for k, v in sums.items() if k not in ("loss", "correct", "count")})
        return res
