"""The model registry: names → builders of :class:`ImageClassifier`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustlab.core.errors import RobustlabError
from robustlab.core.registry import Registry
from robustlab.models.classifier import ImageClassifier
from robustlab.models.pretrained import load_pretrained
from robustlab.models.resnet import resnet18_backbone
from robustlab.models.small_cnn import SmallCNN
from robustlab.models.vit import VIT_VARIANTS, vit_backbone, vit_cam_reshape


@dataclass(frozen=True)
class ModelInfo:
    """What ``robustlab models`` prints for one architecture."""

    name: str
    description: str
    options: dict[str, Any]


def _small_cnn(c: int, size: int, batchnorm: bool, width: int = 32, feature_dim: int = 128, **_: Any):
    net = SmallCNN(c, width=width, feature_dim=feature_dim, batchnorm=batchnorm)
    return net, net.feature_dim, (lambda b: b.features[-1]), None


def _resnet(cifar: bool):
    def build(c: int, size: int, batchnorm: bool, **_: Any):
        net = resnet18_backbone(c, cifar_stem=cifar, batchnorm=batchnorm)
        return net, 512, (lambda b: b.layer4[-1]), None

    return build


def _vit(c: int, size: int, batchnorm: bool, patch_size: int | None = None, variant: str = "tiny", **_: Any):
    if patch_size is None:
        patch_size = 16 if size >= 128 else max(1, size // 8)
    net = vit_backbone(c, image_size=size, patch_size=patch_size, variant=variant)
    grid = size // patch_size
    return net, net.num_features, (lambda b: b.blocks[-1].norm1), vit_cam_reshape(grid, net.num_prefix_tokens)


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: what ``robustlab models`` prints and the function that builds it.

    ``build(in_channels, image_size, batchnorm, **options)`` returns ``(backbone, feature_dim,
    cam_layer(backbone) -> module, cam_reshape or None)``.
    """

    info: ModelInfo
    build: Callable[..., Any]


MODELS: Registry[ModelSpec] = Registry("model")
"""Every architecture, keyed by name (``small_cnn``; ``small-cnn`` is found too)."""


def register_model(name: str, build: Callable[..., Any], description: str, options: dict[str, Any]) -> ModelSpec:
    """Make ``build`` available as model ``name`` with its specific ``options`` and their defaults."""
    return MODELS.register(name, ModelSpec(ModelInfo(name, description, options), build))


register_model(
    "small_cnn", _small_cnn, "4-layer VGG-style CNN with BN, for small images", {"width": 32, "feature_dim": 128}
)
register_model("resnet18_cifar", _resnet(cifar=True), "ResNet-18 with CIFAR stem (3x3 stride-1 conv1, no max-pool)", {})
register_model(
    "resnet18", _resnet(cifar=False), "torchvision ResNet-18 (ImageNet stem); pretrained from a local file", {}
)
register_model(
    "vit",
    _vit,
    "timm Vision Transformer; variants " + "/".join(VIT_VARIANTS) + " (b16 = ViT-B/16 at 224)",
    {"variant": "tiny", "patch_size": "auto (image_size/8, or 16 at >=128 px)"},
)

COMMON_OPTIONS = {"batchnorm": True, "dropout": 0.0, "pretrained": None}


def list_models() -> list[ModelInfo]:
    """Every registered architecture, sorted by name, with its specific options and their defaults."""
    return [spec.info for _, spec in MODELS.items()]


def build_model(
    name: str,
    num_classes: int,
    in_channels: int = 3,
    image_size: int = 32,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    batchnorm: bool = True,
    dropout: float = 0.0,
    pretrained: str | Path | None = None,
    **options: Any,
) -> ImageClassifier:
    """Build a classifier for ``(N, in_channels, image_size, image_size)`` pixels in [0, 1].

    ``mean``/``std`` (per channel, pixel units) go into the model's :class:`Normalize` front module;
    they default to 0.5/0.5. ``pretrained`` is a local weights file (see
    :func:`robustlab.models.pretrained.load_pretrained`). ``name`` is matched like every registry
    name (``small-cnn`` is ``small_cnn``); unknown names or options raise :class:`RobustlabError`.
    """
    spec = MODELS.get(name)
    info = spec.info
    name = info.name
    unknown = set(options) - set(info.options)
    if unknown:
        allowed = sorted(set(info.options) | set(COMMON_OPTIONS)) or ["(none)"]
        raise RobustlabError(
            f"unknown option {sorted(unknown)[0]!r} for model {name}; allowed: {', '.join(allowed)}"
        )
    if num_classes < 1 or in_channels < 1 or image_size < 4:
        raise RobustlabError(
            f"model {name} needs num_classes >= 1, in_channels >= 1 and image_size >= 4 "
            f"(got {num_classes}, {in_channels}, {image_size})"
        )
    mean = tuple(mean) if mean is not None else (0.5,) * in_channels
    std = tuple(std) if std is not None else (0.5,) * in_channels
    if len(mean) != in_channels or len(std) != in_channels:
        raise RobustlabError(f"mean/std need {in_channels} values (one per channel), got {len(mean)}/{len(std)}")
    try:
        backbone, dim, cam_layer, reshape = spec.build(in_channels, image_size, batchnorm, **options)
    except ValueError as e:
        raise RobustlabError(str(e)) from None
    model = ImageClassifier(
        backbone, dim, num_classes, mean, std, cam_layer=cam_layer, cam_reshape_transform=reshape,
        dropout=dropout, arch=name,
    )
    if pretrained:
        load_pretrained(model, pretrained)
    return model
