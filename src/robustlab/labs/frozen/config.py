"""The typed configuration of the frozen-features lab (``task: frozen``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from robustlab.core.config import DataConfig, ExperimentConfig, Strict, TrainConfig

PATCH = 14
"""The patch size of every DINOv2 architecture (pixels)."""

ARCHS = ("vit_small_patch14_dinov2", "vit_base_patch14_dinov2", "vit_large_patch14_dinov2",
         "vit_giant_patch14_dinov2", "vit_small_patch14_reg4_dinov2", "vit_base_patch14_reg4_dinov2",
         "vit_large_patch14_reg4_dinov2", "vit_giant_patch14_reg4_dinov2")


class FrozenDataConfig(DataConfig):
    """Which tiles: ``procedural`` (generated, exact masks; ``train_tiles``/``test_tiles`` of ``size``
    px at ``gsd`` m/px, ``positive_fraction`` with panels) or ``folder`` (the user's ``images`` and
    ``masks`` folders, matched by file stem, with an optional ``areas_csv`` of per-tile areas in m²,
    split by ``test_fraction``). ``stage`` ``head`` trains the classifier on frozen features;
    ``pretrain`` trains the backbone itself on panel-free tiles (a dense self-supervised proxy
    objective, no labels). Frozen features are cached once per backbone and tile set under
    ``cache`` (default ``<data root>/cache/frozen``)."""

    dataset: Literal["procedural", "folder"] = "procedural"
    stage: Literal["head", "pretrain"] = "head"
    size: int = Field(112, ge=PATCH, description="tile side in pixels (a multiple of the patch size 14)")
    gsd: float | None = Field(None, gt=0.0, description="metres per pixel (procedural default 0.3; folder: "
                              "of the original images, unless areas_csv gives gsd_m)")
    train_tiles: int = Field(2000, ge=4)
    test_tiles: int = Field(500, ge=4)
    positive_fraction: float = Field(0.5, ge=0.0, le=1.0)
    max_arrays: int = Field(3, ge=1, le=8, description="procedural: most panel arrays on a positive tile")
    images: str | None = Field(None, description="folder: the image folder")
    masks: str | None = Field(None, description="folder: the mask folder (one mask per image, same stem)")
    areas_csv: str | None = Field(None, description="folder: CSV with name, area_m2 (and optionally gsd_m)")
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="folder: tiles held out for testing (seeded)")
    calibration_tiles: int = Field(50, ge=4, description="positive training tiles of known area that fit the "
                                   "area estimators")
    cache: str | None = Field(None, description="feature cache folder (default <data root>/cache/frozen)")
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(128, ge=1)

    @model_validator(mode="after")
    def _shape(self) -> FrozenDataConfig:
        if self.size % PATCH:
            raise ValueError(f"data.size {self.size} is not a multiple of the patch size {PATCH} "
                             f"(use {PATCH * (self.size // PATCH)} or {PATCH * (self.size // PATCH + 1)})")
        for key in ("train_subset", "test_subset"):
            if getattr(self, key) is not None:
                raise ValueError(f"data.{key} is not used by the frozen-features lab (use train_tiles/test_tiles)")
        if self.download:
            raise ValueError("data.download is not used by the frozen-features lab (nothing is downloaded)")
        if self.dataset == "folder" and not (self.images and self.masks):
            raise ValueError("dataset folder needs data.images and data.masks (folders of tiles and their masks)")
        if self.dataset == "procedural" and (self.images or self.masks or self.areas_csv):
            raise ValueError("data.images/masks/areas_csv are read only with dataset: folder")
        return self


class FrozenModelConfig(Strict):
    """The frozen backbone and the trained head.

    ``arch`` is a timm DINOv2 architecture (``…_reg4_…`` has 4 register tokens); ``embed_dim``,
    ``depth`` and ``heads`` shrink it (None: the architecture's own). ``backbone`` names where its
    weights come from, as results and reports say: ``random-init`` (seeded by ``backbone_seed``; a
    control), ``self-pretrained`` (a ``pretrain`` stage run's checkpoint, given as ``train.init_from``)
    or ``dinov2-local`` (the user's file ``pretrained``: the original facebookresearch ``.pth`` or a
    timm ``.safetensors``/``.pth``; read weights-only). The head: a new CLS query and one pre-norm
    transformer layer of width ``dim`` with ``head_heads`` heads over the patch tokens (and the
    registers when ``attend_registers``), then a linear classifier."""

    arch: Literal[ARCHS] = "vit_small_patch14_reg4_dinov2"  # type: ignore[valid-type]
    embed_dim: int | None = Field(None, ge=8)
    depth: int | None = Field(None, ge=1)
    heads: int | None = Field(None, ge=1)
    backbone: Literal["random-init", "self-pretrained", "dinov2-local"] = "random-init"
    backbone_seed: int = 0
    pretrained: str | None = Field(None, description="dinov2-local: the weights file")
    dim: int = Field(96, ge=8)
    head_heads: int = Field(4, ge=1)
    mlp_ratio: float = Field(2.0, gt=0.0)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    attend_registers: bool = False

    @model_validator(mode="after")
    def _weights(self) -> FrozenModelConfig:
        if self.dim % self.head_heads:
            raise ValueError(f"model.dim {self.dim} must be divisible by model.head_heads {self.head_heads}")
        if self.embed_dim is not None and self.heads is not None and self.embed_dim % self.heads:
            raise ValueError(f"model.embed_dim {self.embed_dim} must be divisible by model.heads {self.heads}")
        if self.backbone == "dinov2-local" and not self.pretrained:
            raise ValueError("backbone dinov2-local needs model.pretrained (the local DINOv2 weights file)")
        if self.backbone != "dinov2-local" and self.pretrained:
            raise ValueError(f"model.pretrained is only read with backbone dinov2-local, not {self.backbone}")
        if self.attend_registers and "reg4" not in self.arch:
            raise ValueError(f"attend_registers needs a register architecture (…_reg4_…), not {self.arch}")
        return self


class FrozenAuditConfig(Strict):
    """The audit of a trained head: the area estimators (``mass_fraction`` of the DINO-style mask,
    ``peak_ratio`` of the naive count), attention maps of ``figures`` test tiles, and the robustness
    of classifier and area estimate under ``attacks`` at each ``eps`` (L∞, pixel units, ``steps`` PGD
    steps) on the first ``n_samples`` test tiles."""

    mass_fraction: float = Field(0.6, gt=0.0, lt=1.0)
    peak_ratio: float = Field(0.5, gt=0.0, lt=1.0)
    figures: int = Field(8, ge=0, le=32)
    attacks: list[Literal["fgsm", "pgd"]] = Field(default_factory=lambda: ["fgsm", "pgd"])
    eps: list[float] = Field(default_factory=lambda: [1 / 255, 4 / 255])
    steps: int = Field(10, ge=1)
    n_samples: int = Field(200, ge=1)

    @model_validator(mode="after")
    def _eps(self) -> FrozenAuditConfig:
        if any(e <= 0 or e > 1 for e in self.eps):
            raise ValueError("evaluate.eps values must be in (0, 1] (pixel units)")
        return self


class FrozenTrainConfig(TrainConfig):
    """Head training defaults: AdamW 1e-3, 30 epochs on cached features, best on validation accuracy."""

    epochs: int = 30
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.05, ge=0.0)


class FrozenConfig(ExperimentConfig):
    task: Literal["frozen"] = "frozen"
    data: FrozenDataConfig = Field(default_factory=FrozenDataConfig)
    model: FrozenModelConfig = Field(default_factory=FrozenModelConfig)
    train: FrozenTrainConfig = Field(default_factory=FrozenTrainConfig)
    evaluate: FrozenAuditConfig = Field(default_factory=FrozenAuditConfig)

    @model_validator(mode="after")
    def _stage(self) -> FrozenConfig:
        if self.data.stage == "pretrain" and self.model.backbone == "dinov2-local":
            raise ValueError("the pretrain stage trains a backbone from random-init; dinov2-local is already trained")
        return self
