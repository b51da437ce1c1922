"""The real Fashion-MNIST files of Debian's dataset-fashion-mnist package load in place."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustlab.data import is_available, load_dataset

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not DEBIAN_DIR.is_dir(), reason="dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist(tmp_path):
    root = tmp_path / "empty"  # nothing under the root: the system folder must be found
    assert is_available("fashion-mnist", root)
    train = load_dataset("fashion-mnist", "train", root=root)
    test = load_dataset("fashion-mnist", "test", root=root)
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.data.dtype == torch.uint8 and tuple(train.data.shape) == (60_000, 1, 28, 28)
    assert train.targets.bincount().tolist() == [6000] * 10
    assert test.targets.bincount().tolist() == [1000] * 10
    mean = float(train.data.float().mean() / 255)
    assert abs(mean - train.info.mean[0]) < 0.01
