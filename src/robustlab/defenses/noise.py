"""Gaussian-noise training: every training batch is seen through additive pixel noise.

Zero-mean Gaussian noise is added to the [0, 1] pixels the model receives, i.e. before the model's
own normalization module (the same as adding it after torchvision's ``ToTensor`` and before
``Normalize``). The default variance 0.05 means std ``sqrt(0.05) ≈ 0.224``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from robustlab.core.checks import check_number
from robustlab.core.errors import RobustlabError
from robustlab.data import GaussianNoise
from robustlab.defenses._common import ParamsMixin
from robustlab.defenses.base import Defense, StepFn
from robustlab.defenses.registry import register_defense
from robustlab.training.task import StepOutput, Task

DEFAULT_VARIANCE = 0.05


@register_defense
class NoiseTraining(ParamsMixin, Defense):
    """Gaussian-noise training: add N(0, std²) to the [0, 1] pixels of every training batch.

    Args:
        std: noise standard deviation in pixel units (give ``std`` or ``variance``, not both).
        variance: noise variance; ``std = sqrt(variance)``. With neither, variance 0.05.
        clip: clamp the noisy pixels back to [0, 1] (the model's input contract).

    The noise comes from torch's global generator, which the trainer seeds and checkpoints, so a run
    is reproducible and ``--resume`` continues the same noise stream. Validation and test data are
    left clean.
    """

    name = "noise"

    def __init__(self, std: float | None = None, variance: float | None = None, clip: bool = True) -> None:
        if std is not None and variance is not None:
            raise RobustlabError("noise defense: give std or variance, not both")
        if std is None:
            variance = DEFAULT_VARIANCE if variance is None else check_number("variance", variance, min=0.0)
            std = math.sqrt(variance)
        std = check_number("std", std, min=0.0)
        if not isinstance(clip, bool):
            raise RobustlabError(f"clip must be true or false, got {clip!r}")
        self.std = std
        self.clip = clip
        self.noise = GaussianNoise(std, clip=clip)
        self._record(std=std, variance=std * std, clip=clip)

    def train_batch(
        self, model: nn.Module, inputs: Any, targets: Any, task: Task, step: StepFn
    ) -> StepOutput:
        with torch.no_grad():
            noisy = self.noise(inputs)
        out = task.forward(model, noisy, targets)
        step(out.loss)
        return out
