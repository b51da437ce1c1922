"""The shared part of every experiment's configuration, and the YAML plumbing.

Every model forbids unknown keys, so a typo in a recipe is an error that names the key, never a
silently ignored setting. Ranges are checked here (batch size >= 1, fractions in [0, 1], lr > 0) so
bad values fail before any work starts. A lab extends :class:`ExperimentConfig` with its own typed
sections (its ``task`` literal is the discriminator: see :func:`robustlab.config.parse_config`); the
shared part carries no lab's defaults — the monitored metric, for one, comes from the lab's task.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from robustlab.core.errors import RobustlabError


class Strict(BaseModel):
    """A config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Strict):
    """Which data, how it is split and fed (every lab)."""

    dataset: str = "fashion-mnist"
    root: str | None = None
    download: bool = False
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    train_subset: int | None = Field(None, ge=1, description="use this many training examples (seeded)")
    test_subset: int | None = Field(None, ge=1, description="evaluate on this many test examples (seeded)")
    batch_size: int = Field(128, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    num_workers: int = Field(0, ge=0)

    def image_option_in_use(self) -> str | None:
        """The first of the image-dataset options (``root``, ``train_subset``, ``test_subset``,
        ``download``) that is set, for labs whose data has no use for them; None when none is."""
        for key in ("root", "train_subset", "test_subset"):
            if getattr(self, key) is not None:
                return key
        return "download" if self.download else None


class EMAConfig(Strict):
    """An exponential moving average of the trainable weights, updated after every optimizer step."""

    decay: float = Field(0.999, gt=0.0, lt=1.0)
    evaluate_with_ema: bool = Field(True, description="validate, test and evaluate with the averaged weights")


class ParamGroup(Strict):
    """Parameters whose name starts with one of ``prefixes`` get their own lr / weight decay."""

    prefixes: list[str] = Field(min_length=1)
    lr: float | None = Field(None, gt=0.0)
    weight_decay: float | None = Field(None, ge=0.0)


class TrainConfig(Strict):
    """The optimisation loop: epoch- or step-based, optimiser, schedule, precision, callbacks."""

    epochs: int = Field(5, ge=0)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps (step-based)")
    val_every: int | None = Field(
        None, ge=1, description="validate and checkpoint every N optimizer steps (default: once per epoch)"
    )
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    param_groups: list[ParamGroup] = Field(default_factory=list)
    schedule: Literal["none", "step", "cosine", "plateau", "warmup_cosine", "warmup_linear", "onecycle"] = "none"
    step_size: int = Field(10, ge=1, description="epochs between decays (schedule: step)")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="decay factor (step, plateau)")
    warmup_epochs: float = Field(0.0, ge=0.0)
    plateau_patience: int = Field(2, ge=0, description="validations without improvement before a plateau decay")
    patience: int | None = Field(None, ge=1, description="early stopping: validations without improvement")
    monitor: str | None = Field(None, description="metric that picks best.pt and early stopping (default: the task's)")
    monitor_mode: Literal["auto", "max", "min"] = Field(
        "auto", description="whether the monitor should rise or fall (auto: as the task declares)"
    )
    accumulate: int = Field(1, ge=1, description="micro-batches per optimizer step (gradient accumulation)")
    ema: EMAConfig | None = None
    amp: Literal["none", "bf16", "fp16"] = "none"
    grad_clip: float | None = Field(None, gt=0.0)
    freeze_backbone: bool = False
    init_from: str | None = Field(None, description="checkpoint or weights file to start from")
    channels_last: bool = False
    compile: bool = False

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> TrainConfig:
        if self.val_every is not None and self.max_steps is None and self.epochs == 0:
            raise ValueError("val_every needs max_steps or epochs > 0")
        return self


class ExperimentConfig(Strict):
    """The part of one run that every lab shares; a lab's subclass adds its sections."""

    name: str = "run"
    seed: int = 0
    device: str = "auto"
    task: str = Field("classification", description="the lab (see `robustlab labs`)")
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    def resolved(self) -> dict[str, Any]:
        """Every field, defaults included: enough to re-run the experiment."""
        return self.model_dump(mode="json")


def describe_validation_error(err: ValidationError, where: str = "config") -> str:
    """One line naming the first bad key and what is wrong with it."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown key '{loc}'"
    msg = first["msg"].replace("Value error, ", "")
    return f"{where}: {loc}: {msg} (got {first.get('input')!r})"


def validate_model(model: type[BaseModel], data: Any, where: str = "config") -> Any:
    """Validate a mapping into ``model``; raise :class:`RobustlabError` naming the bad key."""
    if not isinstance(data, dict):
        raise RobustlabError(f"{where}: expected a mapping of keys to values, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise RobustlabError(describe_validation_error(e, where)) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; malformed YAML raises :class:`RobustlabError` with the line number."""
    path = Path(path)
    if not path.is_file():
        raise RobustlabError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise RobustlabError(f"{path}: malformed YAML{at}: {problem}") from None
    except UnicodeDecodeError:
        raise RobustlabError(f"{path}: not a UTF-8 text file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RobustlabError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted='a.b'``, creating mappings on the way."""
    keys = dotted.split(".")
    cur = data
    for k in keys[:-1]:
        nxt = cur.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise RobustlabError(f"cannot set {dotted}: {k} is not a mapping")
        cur = nxt
    cur[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``key.sub=value`` (value as YAML: numbers, booleans, lists) from ``--set``."""
    if "=" not in text:
        raise RobustlabError(f"--set expects key=value (e.g. train.lr=0.01), got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``override``, recursing into nested mappings (neither is modified)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def unset_variable(value: str | None) -> str | None:
    """The name of the environment variable a recipe's ``${VAR}`` left unexpanded in ``value`` (None
    when there is none)."""
    match = re.search(r"\$\{(\w+)\}", value or "")
    return match.group(1) if match else None


def require_set(value: str | None, what: str) -> None:
    """One line when ``value`` still holds an unset ``${VAR}``: what to export."""
    name = unset_variable(value)
    if name:
        raise RobustlabError(f"{what} is {value!r} but the environment variable {name} is not set; "
                             f"export {name}=/path/to/it")
