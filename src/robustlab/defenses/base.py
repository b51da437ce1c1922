"""The hook through which a defense changes how a batch is trained.

The trainer calls ``defense.train_batch(model, inputs, targets, task, step)`` for every batch;
``step(loss)`` does backward + optimizer step (with AMP scaling and clipping) and may be called
more than once (free adversarial training replays a batch m times). Attacks used inside a defense
run with the model in eval mode and give it back in train mode.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from robustlab.training.task import StepOutput, Task

StepFn = Callable[[torch.Tensor], None]


class Defense:
    """Plain training: one forward on the clean batch, one optimizer step. Subclass to change it."""

    name = "none"

    def setup(self, *, num_classes: int, device: torch.device, epochs: int, steps_per_epoch: int) -> None:
        """Called once before training with what the defense may need to size itself."""

    def train_batch(self, model: nn.Module, inputs: Any, targets: Any, task: Task, step: StepFn) -> StepOutput:
        out = task.forward(model, inputs, targets)
        step(out.loss)
        return out

    def on_epoch_end(self, epoch: int, model: nn.Module, metrics: dict[str, float]) -> dict[str, Any]:
        """Extra numbers for ``metrics.jsonl``; return ``{"stop": True}`` to end training early."""
        return {}

    def describe(self) -> dict[str, Any]:
        """The defense's name and parameters, for the run's config and report."""
        return {"name": self.name}

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (e.g. a persistent perturbation); tensors and plain data only."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
