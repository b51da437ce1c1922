"""Optimizers (with parameter groups) and learning-rate schedules from a :class:`~robustlab.core.config.TrainConfig`."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from robustlab.core.config import TrainConfig
from robustlab.core.errors import RobustlabError


def param_groups(model: torch.nn.Module, cfg: TrainConfig) -> list[dict]:
    """The trainable parameters in optimizer groups: one group per ``cfg.param_groups`` entry (the
    parameters whose name starts with one of its prefixes, with its own lr / weight decay), then the
    rest with the config's lr. A parameter goes to the first entry that matches; an entry matching
    no trainable parameter is an error (a typo would otherwise silently train at the base lr)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    taken: set[str] = set()
    groups = []
    for g in cfg.param_groups:
        params = [p for n, p in named if n not in taken and any(n.startswith(pre) for pre in g.prefixes)]
        if not params:
            raise RobustlabError(f"train.param_groups: no trainable parameter starts with {', '.join(g.prefixes)}")
        taken |= {n for n, _ in named if any(n.startswith(pre) for pre in g.prefixes)}
        group: dict = {"params": params}
        if g.lr is not None:
            group["lr"] = g.lr
        if g.weight_decay is not None:
            group["weight_decay"] = g.weight_decay
        groups.append(group)
    rest = [p for n, p in named if n not in taken]
    if rest or not groups:
        groups.append({"params": rest})
    return groups


def build_optimizer(model: torch.nn.Module | Iterable[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (with momentum, Nesterov off), Adam or AdamW with the config's lr, weight decay and
    parameter groups, over the trainable parameters of ``model`` (a module, or an iterable of
    parameters when there are no groups)."""
    if isinstance(model, torch.nn.Module):
        groups = param_groups(model, cfg)
    else:
        if cfg.param_groups:
            raise RobustlabError("train.param_groups needs the model, not a list of parameters")
        groups = [{"params": [p for p in model if p.requires_grad]}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


class Schedule:
    """A learning-rate schedule that knows whether it steps per batch or per epoch.

    ``step_batch()`` is called after every optimizer step, ``step_epoch(metric)`` after every
    validation point (an epoch, or ``val_every`` steps); each is a no-op for schedules of the other
    kind. ``total_steps`` (step-based training) replaces ``epochs × steps_per_epoch``; the plateau
    schedule follows the monitored metric in the direction ``higher_is_better`` gives.
    """

    def __init__(
        self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int,
        total_steps: int | None = None, higher_is_better: bool = True,
    ) -> None:
        self.kind = cfg.schedule
        total = max(1, total_steps if total_steps is not None else cfg.epochs * steps_per_epoch)
        warm = int(round(cfg.warmup_epochs * steps_per_epoch))
        self.scheduler: LRScheduler | ReduceLROnPlateau | None
        if self.kind == "none":
            self.scheduler = None
        elif self.kind == "step":
            self.scheduler = torch.optim.lr_scheduler.StepLR(optimizer, cfg.step_size, cfg.gamma)
        elif self.kind == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, cfg.epochs))
        elif self.kind == "plateau":
            mode = "max" if higher_is_better else "min"
            self.scheduler = ReduceLROnPlateau(optimizer, mode=mode, factor=cfg.gamma, patience=cfg.plateau_patience)
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
