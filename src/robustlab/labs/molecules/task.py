"""The training task of a binary SMILES classifier: batches ``(ids, lengths, labels)``, one logit
per molecule, binary cross-entropy (optionally class-weighted), accuracy; the monitor is the split's
ROC-AUC (from the lab's split-level metric)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.training.task import StepOutput


class BinarySequenceTask:
    name = "molecules"
    monitor = "roc_auc"
    higher_is_better = True
    directions: ClassVar[dict[str, bool]] = {"accuracy": True}

    def __init__(self, pos_weight: float | None = None) -> None:
        self.pos_weight = pos_weight

    def unpack(self, batch: Any, device: torch.device) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        ids, lengths, labels = batch
        return (ids.to(device), lengths.to(device)), labels.to(device)

    def forward(self, model: nn.Module, inputs: tuple[torch.Tensor, torch.Tensor], targets: torch.Tensor) -> StepOutput:
        logits = model(*inputs).float()
        weight = None
        if self.pos_weight is not None:
            weight = torch.tensor(self.pos_weight, device=logits.device)
        loss = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=weight)
        return StepOutput(loss, logits, targets)

    def batch_metrics(self, out: StepOutput) -> dict[str, torch.Tensor]:
        n = out.targets.numel()
        pred = (out.outputs.detach() > 0).float()
        return {"loss": out.loss.detach().float() * n, "correct": (pred == out.targets).sum().float(),
                "count": torch.tensor(float(n))}

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums.get("count", 0.0), 1.0)
        return {"loss": sums["loss"] / n, "accuracy": sums["correct"] / n}
