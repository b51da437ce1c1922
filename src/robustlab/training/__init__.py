"""The shared training loop and its parts: task protocol, step strategies, callbacks, split-level
metrics, optimizers and schedules. Nothing here knows a modality or a defense."""

from robustlab.training.callbacks import EMA, Callback
from robustlab.training.metrics import BinaryROCAUC, CorpusMetric, Metric
from robustlab.training.step import StepStrategy
from robustlab.training.task import StepOutput, Task
from robustlab.training.trainer import FitResult, NonFiniteLossError, Trainer

__all__ = [
    "EMA",
    "BinaryROCAUC",
    "Callback",
    "CorpusMetric",
    "FitResult",
    "Metric",
    "NonFiniteLossError",
    "StepOutput",
    "StepStrategy",
    "Task",
    "Trainer",
]
