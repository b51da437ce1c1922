"""The shared training loop and its plumbing (optimizers, schedules, seeds, DDP)."""

from robustlab.training.trainer import FitResult, NonFiniteLossError, Trainer, autocast_context

__all__ = ["FitResult", "NonFiniteLossError", "Trainer", "autocast_context"]
