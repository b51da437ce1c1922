"""Training tasks of the lab: the attention head on cached frozen tokens (cross-entropy, accuracy;
best by validation loss), and the backbone's descriptor-regression pretraining (standardised MSE)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.labs.frozen.model import patch_descriptors
from robustlab.training.task import StepOutput


class HeadTask:
    """Batches ``(tokens (B, T, D) float16, labels (B,))`` → the head's logits and cross-entropy."""

    name = "frozen"
    monitor = "loss"
    higher_is_better = False
    directions: ClassVar[dict[str, bool]] = {"accuracy": True}

    def unpack(self, batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, labels = batch
        return tokens.to(device).float(), labels.to(device)

    def forward(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        logits = model.head(inputs).logits.float()
        return StepOutput(F.cross_entropy(logits, targets), logits, targets)

    def batch_metrics(self, out: StepOutput) -> dict[str, torch.Tensor]:
        n = out.targets.numel()
        return {"loss": out.loss.detach().float() * n,
                "correct": (out.outputs.detach().argmax(1) == out.targets).sum().float(),
                "count": torch.tensor(float(n))}

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums.get("count", 0.0), 1.0)
        return {"loss": sums["loss"] / n, "accuracy": sums["correct"] / n}


class DescriptorTask:
    """Batches ``(images (B, 3, S, S) uint8, _)`` → the pretrainer's per-patch predictions against
    the patches' descriptors standardised by ``mean``/``std`` (9 values each, from the training
    tiles); the loss is their mean squared error."""

    name = "frozen-pretrain"
    monitor = "loss"
    higher_is_better = False
    directions: ClassVar[dict[str, bool]] = {}

    def __init__(self, mean: list[float], std: list[float], patch: int = 14) -> None:
        self.mean, self.std, self.patch = torch.tensor(mean), torch.tensor(std), patch

    def unpack(self, batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        images = batch[0].to(device).float().div_(255)
        target = (patch_descriptors(images, self.patch) - self.mean.to(device)) / self.std.to(device)
        return images, target

    def forward(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        pred = model(inputs).float()
        return StepOutput(F.mse_loss(pred, targets), pred, targets)

    def batch_metrics(self, out: StepOutput) -> dict[str, torch.Tensor]:
        n = out.targets.shape[0]
        return {"loss": out.loss.detach().float() * n, "count": torch.tensor(float(n))}

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        return {"loss": sums["loss"] / max(sums.get("count", 0.0), 1.0)}
