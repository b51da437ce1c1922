"""The typed configuration of the image-classification lab."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from robustlab.core.config import ExperimentConfig, Strict, TrainConfig
from robustlab.data.config import ImageDataConfig
from robustlab.evaluation.config import EvalConfig


class ModelConfig(Strict):
    """Which architecture; ``options`` are the architecture's own (see ``robustlab models``)."""

    name: str = "small_cnn"
    batchnorm: bool = True
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    pretrained: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class DefenseConfig(Strict):
    """How each training batch is made harder: ``name`` from ``robustlab defenses``; ``params`` its own."""

    name: str = "none"
    params: dict[str, Any] = Field(default_factory=dict)


class ClassificationTrainConfig(TrainConfig):
    """The shared loop plus what a classifier's training adds."""

    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    robust_val_samples: int = Field(
        512, ge=0,
        description="adversarial defenses: validation images attacked with PGD-10 at the defense's eps each epoch "
                    "(val_robust_accuracy, the default monitor of pgd-at/free/trades/mixed); 0 turns it off",
    )


class ClassificationConfig(ExperimentConfig):
    """One image-classification run: data → model → training (with a defense) → robustness audit."""

    task: Literal["classification"] = "classification"
    data: ImageDataConfig = Field(default_factory=ImageDataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: ClassificationTrainConfig = Field(default_factory=ClassificationTrainConfig)
    defense: DefenseConfig = Field(default_factory=DefenseConfig)
    evaluate: EvalConfig = Field(default_factory=EvalConfig)
