"""Experiment configuration: one typed schema per lab, chosen by ``task`` (a discriminated union
resolved through the lab registry), YAML in, fully resolved YAML out.

``parse_config(raw)`` validates ``raw`` against the config model of the lab that ``raw["task"]`` names
(``classification`` when absent); an unknown task, an unknown key or a bad value is one line naming it.
The shared part (:class:`robustlab.core.config.ExperimentConfig`) carries no lab's defaults.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from robustlab.core.config import (
    DataConfig,
    EMAConfig,
    ExperimentConfig,
    ParamGroup,
    Strict,
    TrainConfig,
    deep_merge,
    describe_validation_error,
    load_yaml,
    parse_override,
    set_dotted,
    validate_model,
)
from robustlab.core.errors import RobustlabError
from robustlab.evaluation.config import EvalConfig
from robustlab.labs.base import Lab, get_lab
from robustlab.labs.classification.config import ClassificationConfig, ClassificationTrainConfig

DEFAULT_TASK = "classification"

__all__ = [
    "ClassificationConfig",
    "ClassificationTrainConfig",
    "DataConfig",
    "EMAConfig",
    "EvalConfig",
    "ExperimentConfig",
    "ParamGroup",
    "Strict",
    "TrainConfig",
    "deep_merge",
    "describe_validation_error",
    "lab_of",
    "load_yaml",
    "parse_config",
    "parse_override",
    "set_dotted",
]


def lab_for(data: Any, where: str = "config") -> Lab:
    """The lab that a raw config mapping's ``task`` names (``classification`` when absent)."""
    task = data.get("task", DEFAULT_TASK) if isinstance(data, dict) else DEFAULT_TASK
    if not isinstance(task, str):
        raise RobustlabError(f"{where}: task must be a lab name, got {task!r}")
    try:
        return get_lab(task)
    except RobustlabError as e:
        raise RobustlabError(f"{where}: task: {e}") from None


def parse_config(data: dict[str, Any], where: str = "config", model: type[BaseModel] | None = None) -> Any:
    """Validate a mapping into ``model`` — by default the config model of the lab its ``task`` names;
    raise :class:`RobustlabError` naming the bad key."""
    if model is None:
        model = lab_for(data, where).config_model
    return validate_model(model, data, where)


def lab_of(cfg: ExperimentConfig) -> Lab:
    """The lab of a validated config."""
    return get_lab(cfg.task)
