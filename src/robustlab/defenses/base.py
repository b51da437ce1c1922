"""A training defense: a step strategy of the shared trainer with a name, parameters and a budget.

The trainer calls ``defense.train_batch(model, inputs, targets, task, step)`` for every batch (see
:class:`robustlab.training.step.StepStrategy`); attacks used inside a defense run with the model in
eval mode and give every submodule its flag back. An adversarial defense (``robust_validation``)
asks for :class:`~robustlab.defenses.robust_validation.RobustValidation` at its ``eps`` and ``norm``,
and names the metric best.pt should follow (``preferred_monitor``).
"""

from __future__ import annotations

from typing import ClassVar

from robustlab.training.step import StepFn, StepStrategy

__all__ = ["Defense", "StepFn"]


class Defense(StepStrategy):
    """Plain training (``none``); subclasses make each batch harder."""

    name = "none"
    #: the trainer should measure PGD accuracy on validation images at this defense's eps every epoch
    robust_validation: ClassVar[bool] = False
    #: the metric whose best value picks best.pt unless the config names one (None: the task's)
    preferred_monitor: str | None = None
