"""Experiment configuration: pydantic models, YAML in, fully resolved YAML out.

Every model forbids unknown keys, so a typo in a recipe is an error that names the key, never a
silently ignored setting. Ranges are checked here (eps ≥ 0, steps ≥ 1, batch size ≥ 1,
fractions in [0, 1]) so bad values fail before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from robustlab.core.errors import RobustlabError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Which data, how it is split and fed."""

    dataset: str = "fashion-mnist"
    root: str | None = None
    download: bool = False
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    train_subset: int | None = Field(None, ge=1, description="use this many training images (seeded)")
    test_subset: int | None = Field(None, ge=1, description="evaluate on this many test images (seeded)")
    channels: int | None = Field(None, ge=1, le=4, description="convert images to this many channels")
    image_size: int | None = Field(None, ge=4, description="resize images to this size")
    augmentation: str = "none"
    batch_size: int = Field(128, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    num_workers: int = Field(0, ge=0)


class ModelConfig(_Strict):
    """Which architecture; ``options`` are the architecture's own (see ``robustlab models``)."""

    name: str = "small_cnn"
    batchnorm: bool = True
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    pretrained: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(_Strict):
    """The optimisation loop."""

    epochs: int = Field(5, ge=0)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(0.0, ge=0.0)
    schedule: Literal["none", "step", "cosine", "plateau", "warmup_cosine", "warmup_linear", "onecycle"] = "none"
    step_size: int = Field(10, ge=1, description="epochs between decays (schedule: step)")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="decay factor (step, plateau)")
    warmup_epochs: float = Field(0.0, ge=0.0)
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    patience: int | None = Field(None, ge=1, description="early stopping: epochs without improvement")
    monitor: str = "val_accuracy"
    robust_val_samples: int = Field(
        512, ge=0,
        description="adversarial defenses: validation images attacked with PGD-10 at the defense's eps each epoch "
                    "(val_robust_accuracy, the default monitor of pgd-at/free/trades/mixed); 0 turns it off",
    )
    amp: Literal["none", "bf16", "fp16"] = "none"
    grad_clip: float | None = Field(None, gt=0.0)
    freeze_backbone: bool = False
    init_from: str | None = Field(None, description="checkpoint or weights file to start from")
    channels_last: bool = False
    compile: bool = False


class DefenseConfig(_Strict):
    """How each training batch is made harder: ``name`` from ``robustlab defenses``; ``params`` its own."""

    name: str = "none"
    params: dict[str, Any] = Field(default_factory=dict)


class EvalConfig(_Strict):
    """What ``evaluate`` measures."""

    attacks: list[str] = Field(default_factory=lambda: ["fgsm", "pgd"])
    eps: list[float] = Field(default_factory=lambda: [0.1])
    norm: Literal["linf", "l2"] = "linf"
    steps: int = Field(20, ge=1)
    alpha_ratio: float = Field(0.25, gt=0.0, description="PGD step size as a fraction of eps")
    restarts: int = Field(1, ge=1)
    noise_sigma: list[float] = Field(default_factory=list)
    n_samples: int | None = Field(None, ge=1, description="evaluate on the first n test images")
    per_attack: Literal["standalone", "cumulative"] = Field(
        "standalone", description="each attack's row alone, or against it and every attack listed before it"
    )
    sanity_samples: int = Field(100, ge=1, description="images used by the sanity measurements")
    n_examples: int = Field(16, ge=0, description="images whose adversarial examples are kept for figures")
    cross_domain: list[str] = Field(
        default_factory=list, description="also test on these datasets, adapted to the model's input shape"
    )
    early_exit: bool = True
    sanity: bool = True
    attack_params: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("eps")
    @classmethod
    def _eps_non_negative(cls, v: list[float]) -> list[float]:
        bad = [e for e in v if e < 0]
        if bad:
            raise ValueError(f"eps must be >= 0, got {bad[0]}")
        return v

    @field_validator("noise_sigma")
    @classmethod
    def _sigma_non_negative(cls, v: list[float]) -> list[float]:
        if any(s < 0 for s in v):
            raise ValueError("noise_sigma values must be >= 0")
        return v


class ExperimentConfig(_Strict):
    """One run: data → model → training (with a defense) → evaluation → report."""

    name: str = "run"
    seed: int = 0
    device: str = "auto"
    task: str = Field("classification", description="task family: classification, vae, cvae, vqvae, ...")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    defense: DefenseConfig = Field(default_factory=DefenseConfig)
    evaluate: EvalConfig = Field(default_factory=EvalConfig)

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


def parse_config(data: dict[str, Any], where: str = "config", model: type[BaseModel] = ExperimentConfig) -> Any:
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
