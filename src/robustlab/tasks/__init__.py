"""Tasks: what a kind of learning problem contributes to the shared trainer."""

from robustlab.tasks.base import StepOutput, Task
from robustlab.tasks.classification import ClassificationTask

__all__ = ["ClassificationTask", "StepOutput", "Task"]
