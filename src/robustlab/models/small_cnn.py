"""A small VGG-style CNN for 8×8 to 64×64 images (digits, MNIST, Fashion-MNIST, CIFAR)."""

from __future__ import annotations

from torch import nn


def _block(cin: int, cout: int, batchnorm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=not batchnorm)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU())
    return layers


class SmallCNN(nn.Module):
    """conv(w)-conv(w)-pool-conv(2w)-conv(2w)-pool-fc(feature_dim).

    Input ``(N, in_channels, H, W)`` normalized; output features ``(N, feature_dim)``. Works for any
    H, W ≥ 4 (an adaptive pool fixes the spatial size before the fully-connected layer).
    """

    def __init__(self, in_channels: int = 1, width: int = 32, feature_dim: int = 128, batchnorm: bool = True):
        super().__init__()
        self.features = nn.Sequential(
            *_block(in_channels, width, batchnorm),
            *_block(width, width, batchnorm),
            nn.MaxPool2d(2),
            *_block(width, 2 * width, batchnorm),
            *_block(2 * width, 2 * width, batchnorm),
        )
        self.pool = nn.Sequential(nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.fc = nn.Sequential(nn.Linear(2 * width * 16, feature_dim), nn.ReLU())
        self.feature_dim = feature_dim

    def forward(self, x):
        return self.fc(self.pool(self.features(x)))
