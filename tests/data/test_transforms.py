"""Augmentation presets and Gaussian noise."""

from __future__ import annotations

import pytest
import torch

from robustlab.core.errors import RobustlabError
from robustlab.data import GaussianNoise, augmentation


@pytest.mark.parametrize(("name", "shape"), [("cifar", (3, 32, 32)), ("digits", (1, 28, 28)), ("cifar", (1, 8, 8))])
def test_presets_keep_shape_and_range(name, shape):
    torch.manual_seed(0)
    aug = augmentation(name)
    x = torch.rand(shape)
    before = x.clone()
    outs = [aug(x) for _ in range(8)]
    assert torch.equal(x, before)  # input untouched
    for out in outs:
        assert out.shape == x.shape and out.dtype == torch.float32
        assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert any(not torch.equal(o, x) for o in outs)


def test_none_and_unknown_presets():
    assert augmentation("none") is None
    with pytest.raises(RobustlabError, match="unknown augmentation 'mixup'; choose one of: cifar, digits, none"):
        augmentation("mixup")


def test_gaussian_noise_statistics():
    x = torch.full((4, 3, 64, 64), 0.5)
    noisy = GaussianNoise(0.1, clip=False)(x, generator=torch.Generator().manual_seed(0))
    delta = noisy - x
    assert abs(float(delta.std()) - 0.1) < 0.003 and abs(float(delta.mean())) < 0.003
    assert torch.equal(x, torch.full_like(x, 0.5))
    single = GaussianNoise(0.1)(torch.full((3, 8, 8), 0.5))
    assert single.shape == (3, 8, 8)


def test_gaussian_noise_clip_and_variance():
    x = torch.rand(2, 1, 16, 16)
    out = GaussianNoise(1.0)(x)
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert float((GaussianNoise(1.0, clip=False)(x)).max()) > 1
    assert GaussianNoise.from_variance(0.04).std == pytest.approx(0.2)
    assert torch.equal(GaussianNoise(0.0)(x), x)
    with pytest.raises(RobustlabError):
        GaussianNoise(-0.1)
    with pytest.raises(RobustlabError):
        GaussianNoise.from_variance(-1)
