"""The ``model.options`` of the generative families, validated with one-line errors.

Everything a VAE, CVAE or VQ-VAE needs beyond the shared config lives in ``model.options`` (the one
free-form mapping of :class:`robustlab.config.ModelConfig`); unknown keys and bad values fail before
any folder is created, naming the key and what is allowed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from robustlab.config import describe_validation_error
from robustlab.core.errors import RobustlabError

#: architecture names per family; the config default ``small_cnn`` stands for the family default
ARCHITECTURES = {"vae": "mlp_vae", "cvae": "mlp_vae", "vqvae": "conv_vqvae"}


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    colour: bool = Field(False, description="colour each single-channel image with three factors in [0, 1]")
    colour_seed: int = Field(0, description="seed of the content hash that picks each image's colour")


class VAEOptions(_Options):
    """MLP (C)VAE: ``hidden`` widths per side (2–4 layers each side in the report), a ``latent_dim``-D
    Gaussian latent, reconstruction ``recon`` summed over pixels, KL weighted by ``beta``."""

    hidden: list[int] = Field(default_factory=lambda: [512, 256], min_length=1, max_length=6)
    latent_dim: int = Field(2, ge=1, le=512)
    recon: Literal["bce", "mse"] = "bce"
    beta: float = Field(1.0, ge=0.0)
    samples_per_class: int = Field(100, ge=1, le=10_000, description="CVAE label-following test, per class")


class VQVAEOptions(_Options):
    """Conv VQ-VAE: ``channels`` of the stride-2 conv layers (each halves the image), a codebook of
    ``codebook_size`` (K) vectors of ``code_dim`` (D), commitment weight ``beta``; optional EMA
    codebook (``ema``, ``decay``) and restarts of codes unused for ``restart_after`` training batches."""

    channels: list[int] = Field(default_factory=lambda: [32, 64], min_length=1, max_length=4)
    codebook_size: int = Field(3, ge=1, le=65_536)
    code_dim: int = Field(2, ge=1, le=1024)
    beta: float = Field(0.25, ge=0.0)
    ema: bool = False
    decay: float = Field(0.99, gt=0.0, lt=1.0)
    restart_dead: bool = False
    restart_after: int = Field(20, ge=1, description="training batches without use before a code is restarted")
    recon: Literal["mse", "bce"] = "mse"
    snapshot_points: int = Field(256, ge=0, le=4096, description="encoder outputs kept per codebook snapshot")
    study: str | None = Field(
        None, description="study group: runs in the same parent folder with this group are tabulated together"
    )


OPTION_MODELS: dict[str, type[_Options]] = {"vae": VAEOptions, "cvae": VAEOptions, "vqvae": VQVAEOptions}


def parse_options(family: str, options: dict[str, Any]) -> Any:
    """``options`` validated as the ``family``'s option model; :class:`RobustlabError` names the bad key."""
    try:
        return OPTION_MODELS[family].model_validate(options or {})
    except ValidationError as e:
        raise RobustlabError(describe_validation_error(e, where=f"model.options of task {family}")) from None


def check_architecture(family: str, name: str) -> None:
    """Accept the family's architecture name (or the config default ``small_cnn``); else one-line error."""
    expected = ARCHITECTURES[family]
    if name not in (expected, "small_cnn"):
        raise RobustlabError(f"task {family} builds model {expected!r}; got model.name {name!r}")
