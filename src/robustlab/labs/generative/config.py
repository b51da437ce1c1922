"""The typed configuration of the generative labs: ``vae``, ``cvae`` and ``vqvae``.

A run's ``model.options`` are the lab's own option model (:class:`VAEOptions`, :class:`VQVAEOptions`),
validated with the whole config — so unknown keys and bad values fail before any folder is created
(for every run of a recipe), naming the key and what is allowed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from robustlab.core.config import ExperimentConfig, Strict, TrainConfig
from robustlab.data.config import ImageDataConfig


class _Options(Strict):

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


class VAEModelConfig(Strict):
    """The MLP (C)VAE and its options."""

    name: Literal["mlp_vae"] = "mlp_vae"
    options: VAEOptions = Field(default_factory=VAEOptions)


class VQVAEModelConfig(Strict):
    """The conv VQ-VAE and its options."""

    name: Literal["conv_vqvae"] = "conv_vqvae"
    options: VQVAEOptions = Field(default_factory=VQVAEOptions)


class VAEConfig(ExperimentConfig):
    """A VAE run: images in, ``loss = recon + beta * KL`` minimised, test ELBO and figures out."""

    task: Literal["vae"] = "vae"
    data: ImageDataConfig = Field(default_factory=ImageDataConfig)
    model: VAEModelConfig = Field(default_factory=VAEModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


class CVAEConfig(VAEConfig):
    """A conditional VAE run (the label goes into encoder and decoder)."""

    task: Literal["cvae"] = "cvae"  # type: ignore[assignment]


class VQVAEConfig(ExperimentConfig):
    """A VQ-VAE run: reconstruction MSE, codebook perplexity and use, the codebook GIF."""

    task: Literal["vqvae"] = "vqvae"
    data: ImageDataConfig = Field(default_factory=ImageDataConfig)
    model: VQVAEModelConfig = Field(default_factory=VQVAEModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
