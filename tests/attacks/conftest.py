"""Fixtures for the attack tests (helpers live in ``attack_helpers``): sklearn digits (8×8) and a small
CNN trained on them once per worker."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustlab.models import build_model


@dataclass
class Digits:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@pytest.fixture(scope="session")
def digits() -> Digits:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    return Digits(x[:1200], y[:1200], x[1200:], y[1200:])


@pytest.fixture(scope="session")
def digits_model(digits: Digits, tmp_path_factory: pytest.TempPathFactory) -> nn.Module:
    """small_cnn (width 16) trained for a few epochs on digits: ~98% test accuracy, eval mode.

    Trained once per test session: pytest-xdist workers share the weights through a file under
    the session's base temporary folder (guarded by a file lock).
    """
    from filelock import FileLock

    with torch.random.fork_rng():  # the same initial weights whichever tests ran first in this worker
        torch.manual_seed(0)
        model = build_model("small_cnn", 10, in_channels=1, image_size=8, width=16)
    root = tmp_path_factory.getbasetemp().parent
    weights = root / "attacks_digits_small_cnn.pt"
    with FileLock(str(weights) + ".lock"):
        if weights.exists():
            model.load_state_dict(torch.load(weights, weights_only=True))
        else:
            _train(model, digits)
            torch.save(model.state_dict(), weights)
    model.eval()
    model.zero_grad(set_to_none=True)
    acc = (model(digits.x_test).argmax(1) == digits.y_test).float().mean().item()
    assert acc > 0.93, f"digits model trained badly: {acc:.3f}"
    return model


def _train(model: nn.Module, digits: Digits) -> None:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        gen = torch.Generator().manual_seed(0)
        for _ in range(8):
            perm = torch.randperm(len(digits.x_train), generator=gen)
            for i in range(0, len(perm), 64):
                b = perm[i : i + 64]
                opt.zero_grad()
                F.cross_entropy(model(digits.x_train[b]), digits.y_train[b]).backward()
                opt.step()
