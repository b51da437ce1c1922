"""Helpers for the defense tests: tiny models on scikit-learn's 8×8 digits, the real Trainer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from robustlab.config import TrainConfig
from robustlab.data import make_loader
from robustlab.defenses import Defense
from robustlab.labs.classification.task import ClassificationTask
from robustlab.models import build_model
from robustlab.training import Trainer

torch.set_num_threads(1)

DIGITS_MEAN, DIGITS_STD = (0.3053,), (0.3760,)


def tiny_model(width: int = 8, feature_dim: int = 32, seed: int = 0) -> nn.Module:
    """A small_cnn for 8×8 grey digits (a few thousand parameters)."""
    torch.manual_seed(seed)
    return build_model("small_cnn", 10, in_channels=1, image_size=8, mean=DIGITS_MEAN, std=DIGITS_STD,
                       width=width, feature_dim=feature_dim)


def train(defense: Defense, data: Any, epochs: int = 1, model: nn.Module | None = None, batch_size: int = 64,
          lr: float = 3e-3, seed: int = 0, **cfg: Any) -> tuple[nn.Module, Trainer, Any]:
    """Train ``model`` (default: a tiny small_cnn) with ``defense`` through the real Trainer."""
    torch.manual_seed(seed)
    model = model if model is not None else tiny_model(seed=seed)
    tcfg = TrainConfig(epochs=epochs, lr=lr, optimizer="adam", **cfg)
    loader = make_loader(data, batch_size, shuffle=True, seed=seed)
    trainer = Trainer(model, ClassificationTask(10), tcfg, loader, strategy=defense, device=torch.device("cpu"))
    fit = trainer.fit()
    return model, trainer, fit


class BNCounter:
    """Counts the forward calls of every BatchNorm layer of a model, split by train/eval mode."""

    def __init__(self, model: nn.Module) -> None:
        self.train_calls = 0
        self.eval_calls = 0
        self.handles = []
        first = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
        self.handles.append(first.register_forward_pre_hook(self._hook))

    def _hook(self, module: nn.Module, args: Any) -> None:
        if module.training:
            self.train_calls += 1
        else:
            self.eval_calls += 1

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def counting_step(trainer: Trainer, model: nn.Module) -> tuple[list[bool], Callable]:
    """Wrap ``trainer._step``: record whether every module was in train mode at each optimizer step."""
    modes: list[bool] = []
    inner = trainer._step

    def step(loss: torch.Tensor) -> None:
        modes.append(all(m.training for m in model.modules()))
        inner(loss)

    trainer._step = step  # type: ignore[method-assign]
    return modes, step


def first_batch(data: Any, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images and labels of ``data`` as tensors."""
    return next(iter(make_loader(data, n)))


@torch.no_grad()
def clean_accuracy(model: nn.Module, data: Any) -> float:
    model.eval()
    x, y = next(iter(make_loader(data, len(data))))
    return (model(x).argmax(1) == y).float().mean().item()


def robust_accuracy(model: nn.Module, data: Any, eps: float, steps: int = 10) -> float:
    """PGD (registry attack, alpha = eps/4) accuracy of ``model`` on all of ``data``."""
    from robustlab.attacks import build_attack

    model.eval()
    x, y = next(iter(make_loader(data, len(data))))
    atk = build_attack("pgd", eps=eps, alpha=eps / 4, steps=steps, seed=0)
    x_adv = atk(model, x, y)
    with torch.no_grad():
        return (model(x_adv).argmax(1) == y).float().mean().item()
