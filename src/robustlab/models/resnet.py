"""ResNet-18 backbones: torchvision's, with an ImageNet stem or a CIFAR stem (3×3, stride 1, no max-pool)."""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet18


def resnet18_backbone(in_channels: int = 3, cifar_stem: bool = False, batchnorm: bool = True) -> nn.Module:
    """A torchvision ResNet-18 whose ``fc`` is the identity: output features ``(N, 512)``.

    ``cifar_stem`` swaps conv1 for a 3×3 stride-1 convolution and removes the max-pool (for 32×32
    inputs). ``batchnorm=False`` replaces every BatchNorm with the identity.
    """
    norm_layer = nn.BatchNorm2d if batchnorm else _no_norm
    net = resnet18(weights=None, norm_layer=norm_layer)
    if cifar_stem:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    elif in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.fc = nn.Identity()
    return net


def _no_norm(num_features: int) -> nn.Module:
    return nn.Identity()
