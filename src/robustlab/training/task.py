"""What a task contributes to training: how to unpack a batch, the loss, and the metrics.

The trainer knows nothing about labels, logits or accuracy: it asks the task. Classification is
the first task; captioning, VAEs, sequence models and language-model fine-tuning plug in the same
way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn


@dataclass
class StepOutput:
    """The result of one forward pass on a batch.

    ``loss`` is the scalar to minimise; ``outputs`` whatever the model produced (e.g. logits);
    ``targets`` what it is compared with; ``extras`` named scalar parts of the loss to log.
    """

    loss: torch.Tensor
    outputs: Any
    targets: Any
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class Task(Protocol):
    """The contract the trainer relies on."""

    name: str
    #: the metric that early stopping and the best checkpoint follow, and whether higher is better
    monitor: str
    higher_is_better: bool

    def unpack(self, batch: Any, device: torch.device) -> tuple[Any, Any]:
        """Move a batch to ``device`` and split it into ``(inputs, targets)``."""
        ...

    def forward(self, model: nn.Module, inputs: Any, targets: Any) -> StepOutput:
        """Run the model and compute the loss."""
        ...

    def batch_metrics(self, out: StepOutput) -> dict[str, torch.Tensor]:
        """Per-batch sums (not means) of the metrics, plus ``count``: summed across batches and ranks."""
        ...

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        """Turn summed metrics into the epoch's numbers (e.g. ``loss``, ``accuracy``)."""
        ...
