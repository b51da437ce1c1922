"""Fixtures for the evaluation tests: a small CNN trained for a few seconds on sklearn digits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustlab.data import load_dataset, subset
from robustlab.models import build_model

torch.set_num_threads(1)


def train_digits_cnn(epochs: int = 6, seed: int = 0) -> torch.nn.Module:
    """A width-16 SmallCNN trained with Adam on the digits train split (~3 s on one core, ~98% test)."""
    train = load_dataset("digits", "train")
    torch.manual_seed(seed)
    model = build_model("small_cnn", 10, in_channels=1, image_size=8, mean=train.info.mean,
                        std=train.info.std, width=16, feature_dim=64)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = train.data, train.targets
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    opt.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="session")
def digits_model() -> torch.nn.Module:
    return train_digits_cnn()


@pytest.fixture(scope="session")
def digits_test():
    return load_dataset("digits", "test")


@pytest.fixture(scope="session")
def digits_small(digits_test):
    """120 test images in a fixed order."""
    return subset(digits_test, indices=torch.arange(120))
