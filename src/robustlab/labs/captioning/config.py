"""The typed configuration of the captioning lab (``task: captioning``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from robustlab.core.config import DataConfig, ExperimentConfig, Strict, TrainConfig

ENCODERS = ("small-cnn", "resnet18", "resnet50", "efficientnet_b0", "efficientnet_b7")


class CaptioningDataConfig(DataConfig):
    """Which images and captions.

    ``shapes`` (procedural scenes of coloured shapes, ``train_images``/``test_images`` of ``size`` px,
    ``references`` captions per image and language, exact per-object ground truth), ``fashion``
    (Fashion-MNIST items composed on a 2×2 grid; needs the Fashion-MNIST files) or ``coco`` (the
    user's caption JSON ``captions`` — a Karpathy-split ``dataset_*.json`` or a COCO ``captions_*.json``
    — over the image folder ``images``, in any language). ``language`` picks the references of the
    procedural sets and how captions are cleaned (``normaliser`` for Persian: ``auto`` = hazm when
    installed). Words seen fewer than ``min_count`` times in the training captions become ``<unk>``
    for the model (never in the references BLEU is scored on). ``stage: encoder`` pretrains the
    small CNN on per-cell labels of the scenes instead (the offline stand-in for ImageNet weights).
    """

    dataset: Literal["shapes", "fashion", "coco"] = "shapes"
    stage: Literal["caption", "encoder"] = "caption"
    language: Literal["en", "fa"] = "en"
    normaliser: Literal["auto", "hazm", "builtin"] = "auto"
    size: int = Field(64, ge=32, description="image side in pixels")
    train_images: int = Field(6000, ge=4)
    test_images: int = Field(500, ge=4)
    references: int = Field(5, ge=1, le=10, description="procedural: references per image")
    max_objects: int = Field(3, ge=1, le=4, description="shapes: most objects in a scene")
    captions: str | None = Field(None, description="coco: the caption JSON file")
    images: str | None = Field(None, description="coco: the image folder")
    test_fraction: float = Field(0.1, gt=0.0, lt=1.0, description="coco without splits: images held out")
    min_count: int = Field(3, ge=1, description="words seen fewer times become <unk>")
    max_length: int = Field(40, ge=4, description="caption tokens kept for training (longer are cut)")
    cache: str | None = Field(None, description="feature cache folder (default <data root>/cache/captioning)")
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(250, ge=1)

    @model_validator(mode="after")
    def _sources(self) -> CaptioningDataConfig:
        used = self.image_option_in_use()
        if used is not None:
            raise ValueError(f"data.{used} is not used by the captioning lab (use train_images/test_images, "
                             "captions/images)")
        if self.dataset == "coco" and not (self.captions and self.images):
            raise ValueError("dataset coco needs data.captions (caption JSON) and data.images (image folder)")
        if self.dataset != "coco" and (self.captions or self.images):
            raise ValueError("data.captions/images are read only with dataset: coco")
        if self.stage == "encoder" and self.dataset == "coco":
            raise ValueError("stage encoder pretrains on the procedural scenes (dataset shapes or fashion)")
        return self


class CaptioningModelConfig(Strict):
    """Encoder and attention decoder ("Show, Attend and Tell").

    ``encoder`` names the network whose last feature map is the grid of annotation vectors
    (``small-cnn``: 4 conv blocks, 8×8 at 64 px; torchvision ResNets and EfficientNets: their
    ``features``, 7×7×2560 for B7 at 224 px). ``weights``: ``random`` (seeded; results say "random
    encoder"), ``self-pretrained`` (the ``stage: encoder`` run given as ``train.init_from``) or
    ``local`` (a torchvision/timm state dict or safetensors file ``pretrained``, read weights-only,
    never downloaded). The encoder is frozen unless ``fine_tune`` is ``last`` (its last block
    trains too) or ``all``. Decoder: LSTM of ``decoder_dim`` over ``embed_dim`` word embeddings,
    ``attention`` ``additive`` (Bahdanau) or ``dot`` (scaled dot-product) of width
    ``attention_dim``, a sigmoid ``gate`` on the context, ``dropout``, and the doubly stochastic
    attention penalty weighted by ``alpha_c`` (λ)."""

    encoder: Literal[ENCODERS] = "small-cnn"  # type: ignore[valid-type]
    weights: Literal["random", "self-pretrained", "local"] = "random"
    pretrained: str | None = Field(None, description="weights local: the encoder's weights file")
    encoder_seed: int = 0
    width: int = Field(128, ge=8, description="small-cnn: channels of the last block")
    fine_tune: Literal["none", "last", "all"] = "none"
    attention: Literal["additive", "dot"] = "additive"
    attention_dim: int = Field(256, ge=8)
    embed_dim: int = Field(256, ge=8)
    decoder_dim: int = Field(512, ge=8)
    gate: bool = True
    dropout: float = Field(0.5, ge=0.0, lt=1.0)
    alpha_c: float = Field(1.0, ge=0.0, description="weight of the doubly stochastic attention penalty")

    @model_validator(mode="after")
    def _weights(self) -> CaptioningModelConfig:
        if self.weights == "local" and not self.pretrained:
            raise ValueError("weights local needs model.pretrained (the encoder's local weights file)")
        if self.weights != "local" and self.pretrained:
            raise ValueError(f"model.pretrained is only read with weights local, not {self.weights}")
        if self.weights == "self-pretrained" and self.encoder != "small-cnn":
            raise ValueError("weights self-pretrained is the small-cnn of a stage encoder run")
        return self


class CaptioningTrainConfig(TrainConfig):
    """The course's schedule: Adam 1e-3, lr ÷5 after 3 validations without a free-running BLEU-4
    gain, early stop after 12, gradient clipping 5. ``teacher_forcing`` ``always``, or scheduled
    sampling: the probability of feeding the true previous word decays from 1 to
    ``teacher_forcing_min`` linearly over training (``linear``) or as k/(k+exp(t/k)) with
    ``k = teacher_forcing_k`` epochs (``inverse-sigmoid``), drawn per step and caption.
    ``adversarial_eps`` trains on ``adversarial_steps``-step PGD images instead (a defense)."""

    epochs: int = 20
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0.0)
    schedule: Literal["none", "step", "cosine", "plateau", "warmup_cosine", "warmup_linear", "onecycle"] = "plateau"
    gamma: float = Field(0.2, gt=0.0, le=1.0)
    plateau_patience: int = Field(3, ge=0)
    patience: int | None = Field(12, ge=1)
    grad_clip: float | None = Field(5.0, gt=0.0)
    teacher_forcing: Literal["always", "linear", "inverse-sigmoid"] = "always"
    teacher_forcing_min: float = Field(0.5, ge=0.0, le=1.0)
    teacher_forcing_k: float = Field(5.0, gt=1.0)
    adversarial_eps: float | None = Field(None, gt=0.0, le=1.0,
                                          description="PGD adversarial training at this L∞ budget (pixel units)")
    adversarial_steps: int = Field(3, ge=1, description="PGD steps of adversarial training")


class CaptioningAuditConfig(Strict):
    """The audit of a trained captioner: test captions decoded greedily and with each of ``beams``
    (``length_penalty`` α divides a beam's log-probability by length^α; 0 = none), at most
    ``max_length`` words; attention scored on the procedural scenes (``deletion_k`` cells removed
    in the deletion test); the robustness of captions under ``attacks`` at each ``eps`` (L∞, pixel
    units, ``steps`` PGD steps) on the first ``n_samples`` test images, and the targeted keyword
    attack; attention grids of the ``figures`` worst captions."""

    beams: list[int] = Field(default_factory=lambda: [3, 5])
    length_penalty: float = Field(0.0, ge=0.0, le=2.0)
    max_length: int = Field(40, ge=2)
    attacks: list[Literal["fgsm", "pgd"]] = Field(default_factory=lambda: ["fgsm", "pgd"])
    eps: list[float] = Field(default_factory=lambda: [2 / 255, 4 / 255, 8 / 255])
    steps: int = Field(10, ge=1)
    n_samples: int = Field(200, ge=1)
    keyword_attack: bool = True
    deletion_k: int = Field(4, ge=1)
    figures: int = Field(6, ge=0, le=32)

    @model_validator(mode="after")
    def _ranges(self) -> CaptioningAuditConfig:
        if any(b < 1 or b > 20 for b in self.beams):
            raise ValueError("evaluate.beams are beam widths in 1..20")
        if any(e <= 0 or e > 1 for e in self.eps):
            raise ValueError("evaluate.eps values must be in (0, 1] (pixel units)")
        return self


class CaptioningConfig(ExperimentConfig):
    task: Literal["captioning"] = "captioning"
    data: CaptioningDataConfig = Field(default_factory=CaptioningDataConfig)
    model: CaptioningModelConfig = Field(default_factory=CaptioningModelConfig)
    train: CaptioningTrainConfig = Field(default_factory=CaptioningTrainConfig)
    evaluate: CaptioningAuditConfig = Field(default_factory=CaptioningAuditConfig)

    @model_validator(mode="after")
    def _stage(self) -> CaptioningConfig:
        if self.data.stage == "encoder" and self.model.encoder != "small-cnn":
            raise ValueError("stage encoder pretrains the small-cnn encoder")
        if self.data.stage == "encoder" and self.train.teacher_forcing != "always":
            raise ValueError("train.teacher_forcing applies to the captioning stage, not stage encoder")
        if self.data.stage == "encoder" and self.train.adversarial_eps is not None:
            raise ValueError("train.adversarial_eps applies to the captioning stage, not stage encoder")
        return self
