"""Optimizers and learning-rate schedules from a :class:`~robustlab.config.TrainConfig`."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from robustlab.config import TrainConfig


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (with momentum, Nesterov off), Adam or AdamW with the config's lr and weight decay."""
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class Schedule:
    """A learning-rate schedule that knows whether it steps per batch or per epoch.

    ``step_batch()`` is called after every batch, ``step_epoch(metric)`` after every epoch; each is
    a no-op for schedules of the other kind.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> None:
        self.kind = cfg.schedule
        total = max(1, cfg.epochs * steps_per_epoch)
        warm = int(round(cfg.warmup_epochs * steps_per_epoch))
        self.scheduler: LRScheduler | ReduceLROnPlateau | None
        if self.kind == "none":
            self.scheduler = None
        elif self.kind == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.step_size, cfg.gamma)
        elif self.kind == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, cfg.epochs))
        elif self.kind == "plateau":
            mode = "min" if cfg.monitor.endswith("loss") else "max"
            self.scheduler = ReduceLROnPlateau(optimizer, mode=mode, factor=cfg.gamma, patience=2)
        elif self.kind == "onecycle":
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total)
        else:  # warmup_cosine / warmup_linear: linear warm-up, then decay to 0 per batch
            cosine = self.kind == "warmup_cosine"

            def factor(step: int) -> float:
                if warm and step < warm:
                    return (step + 1) / warm
                progress = min(1.0, (step - warm) / max(1, total - warm))
                return 0.5 * (1 + math.cos(math.pi * progress)) if cosine else 1.0 - progress

            self.scheduler = LambdaLR(optimizer, factor)
        self.per_batch = self.kind in ("onecycle", "warmup_cosine", "warmup_linear")

    def step_batch(self) -> None:
        if self.per_batch and self.scheduler is not None:
            self.scheduler.step()

    def step_epoch(self, metric: float | None) -> None:
        if self.per_batch or self.scheduler is None:
            return
        if isinstance(self.scheduler, ReduceLROnPlateau):
            if metric is not None:
                self.scheduler.step(metric)
        else:
            self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict() if self.scheduler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scheduler is not None and state:
            self.scheduler.load_state_dict(state)
