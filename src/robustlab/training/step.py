"""How one training batch becomes optimizer steps: the plain step and the hook others replace.

The trainer calls ``strategy.train_batch(model, inputs, targets, task, step)`` for every batch;
``step(loss)`` does backward + (possibly accumulated) optimizer step with AMP scaling and clipping and
may be called more than once (free adversarial training replays a batch m times). A strategy is also
a :class:`~robustlab.training.callbacks.Callback` (its state is checkpointed, its ``on_epoch_end``
may add numbers or stop training) and may ask for further callbacks through :meth:`callbacks`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from robustlab.training.callbacks import Callback
from robustlab.training.task import StepOutput, Task

StepFn = Callable[[torch.Tensor], None]


class StepStrategy(Callback):
    """Plain training: one forward on the batch, one call of ``step``. Subclass to change it."""

    name = "none"

    def setup(self, *, num_classes: int, device: torch.device, epochs: int, steps_per_epoch: int) -> None:
        """Called once before training with what the strategy may need to size itself
        (``num_classes`` is the task's class count, 0 when it has none)."""

    def train_batch(self, model: nn.Module, inputs: Any, targets: Any, task: Task, step: StepFn) -> StepOutput:
        """Train on one batch; return the forward pass whose metrics are logged."""
        out = task.forward(model, inputs, targets)
        step(out.loss)
        return out

    def callbacks(self) -> list[Callback]:
        """Further callbacks this strategy needs (e.g. a robust validation); none by default."""
        return []

    def describe(self) -> dict[str, Any]:
        """The strategy's name and parameters, for the run's results and report."""
        return {"name": self.name}
