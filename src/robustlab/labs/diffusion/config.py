"""The typed configuration of the diffusion lab (``task: diffusion``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from robustlab.core.config import DataConfig, ExperimentConfig, Strict, TrainConfig


class DiffusionDataConfig(DataConfig):
    """What the model learns from.

    ``stage`` ``base``: the text-conditional model on ``dataset`` ``digits`` (scikit-learn's 8×8
    digits, prompts "0".."9"). ``stage`` ``dreambooth``: fine-tuning on the subject — ``instance``
    ``mirrored-3`` (``instance_images`` horizontally mirrored 3s of the digits test split, a concept
    the base model never saw) or ``folder`` (the user's images in ``instance_dir``) — with the
    ``instance_prompt`` (holding the rare token ``rare_token``) and, with ``prior_preservation``,
    ``num_class_images`` images the starting model generates from ``class_prompt`` before training
    (cached), weighted by ``prior_weight`` in the loss. ``p_uncond``: the share of training prompts
    replaced by the empty prompt (classifier-free guidance training)."""

    dataset: Literal["digits"] = "digits"
    stage: Literal["base", "dreambooth"] = "base"
    p_uncond: float = Field(0.1, ge=0.0, lt=1.0)
    instance: Literal["mirrored-3", "folder"] = "mirrored-3"
    instance_dir: str | None = None
    instance_images: int = Field(5, ge=1, le=64)
    rare_token: str = "sks"
    instance_prompt: str = "sks 3"
    class_prompt: str = "3"
    prior_preservation: bool = True
    prior_weight: float = Field(1.0, ge=0.0)
    num_class_images: int = Field(100, ge=1)
    class_image_scale: float = Field(1.5, ge=0.0, description="guidance scale of the generated class images")
    resolution: int = Field(512, ge=8, description="stable-diffusion: the side the instance images are resized to "
                            "(a multiple of 8: the VAE's downsampling)")
    cache: str | None = Field(None, description="class-image cache folder (default <data root>/cache/diffusion)")
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _stage(self) -> DiffusionDataConfig:
        unused = self.image_option_in_use()
        if unused:
            raise ValueError(f"data.{unused} is not used by the diffusion lab")
        if self.instance == "folder" and not self.instance_dir:
            raise ValueError("instance folder needs data.instance_dir (the subject's images)")
        if self.stage == "dreambooth" and self.rare_token not in self.instance_prompt.split():
            raise ValueError(f"data.instance_prompt {self.instance_prompt!r} does not hold the rare token "
                             f"{self.rare_token!r} (DreamBooth binds the subject to it)")
        if self.resolution % 8:
            raise ValueError(f"data.resolution {self.resolution} is not a multiple of 8 (the VAE downsamples by 8)")
        if self.stage == "dreambooth" and self.rare_token in self.class_prompt.split():
            raise ValueError(f"data.class_prompt {self.class_prompt!r} must not hold the rare token "
                             f"{self.rare_token!r}")
        return self


class DiffusionModelConfig(Strict):
    """A pixel-space ``UNet2DConditionModel`` (``channels`` per level, ``layers_per_block``,
    cross-attention in the lower level) conditioned by a ``CLIPTextModel`` of width ``text_dim`` and
    ``text_layers`` layers over a CLIP tokenizer whose words are whole tokens; trained with ε-prediction
    on a ``DDPMScheduler`` of ``timesteps`` steps (``squaredcos_cap_v2``), sampled with DDIM."""

    name: Literal["pixel-unet", "stable-diffusion"] = "pixel-unet"
    pretrained: str | None = Field(None, description="stable-diffusion: the model folder in diffusers' layout "
                                   "(unet/, vae/, text_encoder/, tokenizer/, scheduler/; safetensors weights)")
    channels: list[int] = Field(default_factory=lambda: [32, 64], min_length=2, max_length=4)
    layers_per_block: int = Field(1, ge=1, le=4)
    attention_head_dim: int = Field(8, ge=1)
    text_dim: int = Field(64, ge=8)
    text_layers: int = Field(2, ge=1)
    text_heads: int = Field(4, ge=1)
    timesteps: int = Field(1000, ge=10)
    train_text_encoder: bool = Field(True, description="base: train the text encoder with the UNet; dreambooth: "
                                     "fine-tune it too (diffusers' default is frozen)")

    @model_validator(mode="after")
    def _widths(self) -> DiffusionModelConfig:
        if self.name == "pixel-unet" and self.pretrained:
            raise ValueError("model.pretrained is read only with model.name stable-diffusion (a diffusers folder)")
        if self.text_dim % self.text_heads:
            raise ValueError(f"model.text_dim {self.text_dim} must be divisible by model.text_heads {self.text_heads}")
        return self


class DiffusionAuditConfig(Strict):
    """The audit: ``per_prompt`` samples of every prompt at every guidance ``scales`` (diffusers'
    convention: 1 = no guidance, 0 = unconditional; Ho & Salimans' w = scale − 1), ``steps`` DDIM
    steps, seeded by ``sample_seed``; ``rescaled`` scales repeated with guidance rescale
    ``rescale``; DreamBooth runs sampled at ``dreambooth_scale``."""

    scales: list[float] = Field(default_factory=lambda: [0.0, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0])
    rescaled: list[float] = Field(default_factory=lambda: [3.0, 5.0])
    rescale: float = Field(0.7, ge=0.0, le=1.0)
    per_prompt: int = Field(100, ge=2)
    steps: int = Field(25, ge=1)
    sample_seed: int = 1234
    dreambooth_scale: float = Field(1.5, ge=0.0)
    judge_epochs: int = Field(20, ge=1)
    curve_per_prompt: int = Field(40, ge=2, description="dreambooth on the digits: samples per prompt at every "
                                  "validation point of the overfitting curve (train.val_every sets the points)")


class DiffusionTrainConfig(TrainConfig):
    """Defaults of the base model: AdamW 1e-3, 2,000 steps, EMA of the weights."""

    epochs: int = 1000
    max_steps: int | None = 2000
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0.0)


class DiffusionConfig(ExperimentConfig):
    task: Literal["diffusion"] = "diffusion"
    data: DiffusionDataConfig = Field(default_factory=DiffusionDataConfig)
    model: DiffusionModelConfig = Field(default_factory=DiffusionModelConfig)
    train: DiffusionTrainConfig = Field(default_factory=DiffusionTrainConfig)
    evaluate: DiffusionAuditConfig = Field(default_factory=DiffusionAuditConfig)

    @model_validator(mode="after")
    def _latent(self) -> DiffusionConfig:
        if self.model.name == "stable-diffusion":
            if self.data.stage != "dreambooth":
                raise ValueError("model.name stable-diffusion trains only data.stage dreambooth (the base model is "
                                 "the user's folder)")
            if self.data.instance != "folder":
                raise ValueError("model.name stable-diffusion needs data.instance folder (the subject's images)")
            if not self.model.pretrained:
                raise ValueError("model.name stable-diffusion needs model.pretrained (the model folder)")
            if self.train.init_from:
                raise ValueError("model.name stable-diffusion starts from model.pretrained; train.init_from is "
                                 "not used")
        return self
