"""What a task contributes to training: how to unpack a batch, the loss, and the metrics.

The trainer knows nothing about labels, logits or accuracy: it asks the task. ``loss`` is always
minimised; every other metric the task produces says whether it should rise or fall through
``monitor``/``higher_is_better`` (the task's own monitor) and ``directions`` (the others), so the best
checkpoint is never chosen by a metric's name.
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
    #: the metric (without ``val_``/``train_``) that best.pt and early stopping follow by default
    monitor: str
    #: whether ``monitor`` improves upwards
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
