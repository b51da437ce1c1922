"""Image encoders of the captioner: a network whose last feature map is the grid of annotation vectors.

Every encoder maps float pixels ``(B, 3, S, S)`` in [0, 1] to features ``(B, C, h, w)``; the decoder
attends over the ``h·w`` cells. ``small-cnn`` (4 conv blocks, 3 max-pools: ``h = S/8``) is built here;
ResNets and EfficientNets are torchvision's, built with ``weights=None`` (nothing is downloaded) and
loaded from a local state dict when the config names one. A frozen part never gets a gradient and
stays in eval mode (batch-norm statistics fixed) whatever ``train()`` asks.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from robustlab.core.checkpoint import read_state_dict
from robustlab.core.errors import RobustlabError
from robustlab.models.normalize import Normalize

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
_HEADS = ("fc.", "classifier.")


def _block(cin: int, cout: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                               nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SmallCNNFeatures(nn.Module):
    """4 conv blocks (BN + ReLU; max-pool after the first three): ``(B, 3, S, S)`` →
    ``(B, width, S/8, S/8)``."""

    def __init__(self, width: int = 128) -> None:
        super().__init__()
        w = [max(8, width * f // 16) for f in (3, 6, 12)] + [width]
        self.blocks = nn.Sequential(_block(3, w[0], True), _block(w[0], w[1], True), _block(w[1], w[2], True),
                                    _block(w[2], w[3], False))

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x)


def _torchvision(name: str) -> tuple[nn.Module, int]:
    import torchvision.models as tvm

    net = getattr(tvm, name)(weights=None)
    if name.startswith("resnet"):
        channels = net.fc.in_features
        del net.fc, net.avgpool
    else:
        channels = net.classifier[-1].in_features
        del net.classifier, net.avgpool
    return net, channels


class Encoder(nn.Module):
    """An encoder ``name`` (see the module docstring) with its input normalisation; ``fine_tune``
    ``none`` freezes every parameter, ``last`` all but the last block, ``all`` none."""

    def __init__(self, name: str, width: int = 128, fine_tune: str = "none", seed: int = 0) -> None:
        super().__init__()
        self.name = name
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if name == "small-cnn":
                self.net: nn.Module = SmallCNNFeatures(width)
                self.channels = width
                self.normalize = Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
            else:
                self.net, self.channels = _torchvision(name)
                self.normalize = Normalize(IMAGENET_MEAN, IMAGENET_STD)
        self.fine_tune = fine_tune
        trainable = {"none": [], "last": [self.last_block()], "all": [self.net]}[fine_tune]
        for p in self.net.parameters():
            p.requires_grad_(False)
        for m in trainable:
            for p in m.parameters():
                p.requires_grad_(True)

    def last_block(self) -> nn.Module:
        """The block ``fine_tune: last`` trains."""
        if self.name == "small-cnn":
            return self.net.blocks[-1]
        if self.name.startswith("resnet"):
            return self.net.layer4
        return self.net.features[-1]

    @property
    def frozen(self) -> bool:
        return self.fine_tune == "none"

    def train(self, mode: bool = True) -> Encoder:
        super().train(mode)
        if self.fine_tune != "all":  # frozen parts keep their batch-norm statistics and no dropout
            self.net.train(False)
            if self.fine_tune == "last":
                self.last_block().train(mode)
        return self

    def forward(self, x: Tensor) -> Tensor:
        """Features ``(B, C, h, w)`` of pixels ``(B, 3, S, S)`` in [0, 1]."""
        x = self.normalize(x)
        if self.name == "small-cnn":
            return self.net(x)
        if self.name.startswith("resnet"):
            n = self.net
            x = n.maxpool(n.relu(n.bn1(n.conv1(x))))
            return n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return self.net.features(x)


def load_encoder_weights(encoder: Encoder, path: str | Path) -> None:
    """Load a local torchvision-layout state dict (``.pth`` read weights-only, or safetensors) into a
    torchvision encoder: the classification head (``fc.*``/``classifier.*``) is dropped; every other
    tensor must be present with the encoder's shape (one-line error naming the first that is not)."""
    if encoder.name == "small-cnn":
        raise RobustlabError("weights local is for torchvision encoders; the small-cnn is self-pretrained")
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(_HEADS)}
    own = encoder.net.state_dict()
    for key, value in state.items():
        if key not in own:
            raise RobustlabError(f"encoder weights {path}: unexpected tensor {key!r} for torchvision {encoder.name} "
                                 "(another architecture?)")
        if own[key].shape != value.shape:
            raise RobustlabError(f"encoder weights {path}: {key} has shape {tuple(value.shape)}, {encoder.name} "
                                 f"expects {tuple(own[key].shape)}")
    missing = [k for k in own if k not in state]
    if missing:
        raise RobustlabError(f"encoder weights {path} lack {len(missing)} tensors of {encoder.name} "
                             f"(first: {missing[0]})")
    encoder.net.load_state_dict(state)


def describe_encoder(name: str, weights: str, fine_tune: str, pretrained: str | None = None) -> str:
    """How results and reports name the encoder, e.g. ``"random encoder small-cnn (frozen)"``."""
    origin = {"random": "random encoder", "self-pretrained": "self-pretrained encoder",
              "local": f"encoder from {Path(pretrained).name if pretrained else 'a local file'}"}[weights]
    tuned = {"none": "frozen", "last": "last block fine-tuned", "all": "fine-tuned"}[fine_tune]
    return f"{origin} {name} ({tuned})"
