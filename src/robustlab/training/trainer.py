"""The training loop: any task, any defense, checkpoints, resume, early stopping, AMP, DDP.

Modelled on torchvision's reference scripts: one epoch = train pass + validation pass; one line
per epoch in ``metrics.jsonl``; ``checkpoints/last.pt`` after every epoch (with optimizer,
schedule, AMP scaler, RNG and defense state, so ``--resume`` continues exactly), and
``checkpoints/best.pt`` whenever the monitored metric improves.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from robustlab.config import TrainConfig
from robustlab.core import distributed as D
from robustlab.core.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from robustlab.core.errors import RobustlabError
from robustlab.core.precision import autocast_context
from robustlab.core.progress import bar, bars_enabled, log
from robustlab.core.runs import RunDir
from robustlab.core.seeding import rng_state, set_rng_state
from robustlab.defenses.base import Defense
from robustlab.training.optim import Schedule, build_optimizer
from robustlab.training.task import Task


class NonFiniteLossError(RobustlabError):
    """Training produced a NaN or infinite loss."""


@dataclass
class FitResult:
    """What :meth:`Trainer.fit` returns."""

    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_value: float | None = None
    stopped_early: bool = False
    epochs_run: int = 0


class Trainer:
    """Train ``model`` on ``train_loader`` for a ``task``, validating on ``val_loader``.

    The loader's sampler must have ``set_epoch(epoch)`` (see :mod:`robustlab.data`) so that each
    epoch's order depends only on the seed and the epoch number — that is what makes a resumed
    run identical to an uninterrupted one.
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        cfg: TrainConfig,
        train_loader: DataLoader,
        val_loader: DataLoader | None = None,
        run: RunDir | None = None,
        defense: Defense | None = None,
        device: torch.device | None = None,
        config_snapshot: dict[str, Any] | None = None,
    ) -> None:
        self.device = D.local_device(device or torch.device("cpu"))
        autocast_context(self.device, cfg.amp)  # an --amp the device cannot run fails here, not mid-epoch
        self.model = model.to(self.device)
        if cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.task = task
        self.cfg = cfg
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.run = run if D.is_main() else None
        self.run_path = run.path if run is not None else None
        self.defense = defense or Defense()
        self.config_snapshot = config_snapshot or {}
        if cfg.freeze_backbone:
            backbone = getattr(self.model, "backbone", None)
            if backbone is None:
                raise RobustlabError("freeze_backbone needs a model with a .backbone (robustlab models have one)")
            for p in backbone.parameters():
                p.requires_grad_(False)
        self.train_model: nn.Module = self.model
        if D.is_distributed():
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if cfg.compile:
            self.train_model = torch.compile(self.train_model)
        self.optimizer = build_optimizer(self.model.parameters(), cfg)
        self.schedule = Schedule(self.optimizer, cfg, max(1, len(train_loader)))
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")
        self.defense.setup(
            num_classes=getattr(task, "num_classes", 0), device=self.device, epochs=cfg.epochs,
            steps_per_epoch=len(train_loader),
        )
        self.start_epoch = 1
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0

    # -- one optimizer step -----------------------------------------------------------------------
    def _step(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss.detach()):
            raise NonFiniteLossError(
                f"training loss became {loss.item()} (non-finite); lower the learning rate or use --amp none; "
                "the last good checkpoint is kept"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def _train_mode(self) -> None:
        self.train_model.train()
        if self.cfg.freeze_backbone:
            self.model.backbone.eval()  # frozen features keep their batch-norm statistics

    # -- epochs -------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training data; returns ``train_*`` metrics (all ranks reduced)."""
        sampler = getattr(self.train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        batch_sampler = getattr(self.train_loader, "batch_sampler", None)
        if hasattr(batch_sampler, "set_epoch"):
            batch_sampler.set_epoch(epoch)
        sums: dict[str, torch.Tensor] = {}
        show = bars_enabled()
        pbar = bar(self.train_loader, desc=f"epoch {epoch}/{self.cfg.epochs}", total=len(self.train_loader))
        for i, batch in enumerate(pbar):
            self._train_mode()
            inputs, targets = self.task.unpack(batch, self.device)
            if self.cfg.channels_last and isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            with autocast_context(self.device, self.cfg.amp):
                out = self.defense.train_batch(self.train_model, inputs, targets, self.task, self._step)
            self.schedule.step_batch()
            for k, v in self.task.batch_metrics(out).items():
                sums[k] = sums[k] + v if k in sums else v
            if i % 10 == 0 and show:  # .item() syncs the GPU: only when a bar is drawn
                shown = self.task.summarize({k: v.item() for k, v in sums.items()})
                pbar.set_postfix({k: f"{v:.3f}" for k, v in list(shown.items())[:3]})
        pbar.close()
        return {f"train_{k}": v for k, v in self.task.summarize(D.all_reduce_sums(sums)).items()}

    @torch.no_grad()
    def validate(self, loader: DataLoader | None = None) -> dict[str, float]:
        """Task metrics on ``loader`` (default: the validation loader), model in eval mode."""
        loader = loader or self.val_loader
        if loader is None:
            return {}
        was_training = self.model.training
        self.model.eval()
        sums: dict[str, torch.Tensor] = {}
        try:
            for batch in loader:
                inputs, targets = self.task.unpack(batch, self.device)
                with autocast_context(self.device, self.cfg.amp):
                    out = self.task.forward(self.model, inputs, targets)
                for k, v in self.task.batch_metrics(out).items():
                    sums[k] = sums[k] + v if k in sums else v
        finally:
            self.model.train(was_training)
        return self.task.summarize(D.all_reduce_sums(sums))

    def robust_validate(self) -> dict[str, float]:
        """``{"robust_accuracy": a}``: accuracy under PGD-10 (alpha eps/4, one random start with a fixed
        seed, so epochs are compared on the same starts) on the first ``cfg.robust_val_samples``
        validation images (split over DDP ranks), at the defense's ``eps`` and ``norm``. Empty when the
        defense has no budget (clean, noise, circle training), there is no validation split, or
        ``robust_val_samples`` is 0. The model's mode, weights and the global RNG are left as they were."""
        eps = getattr(self.defense, "eps", None)
        if self.val_loader is None or not self.cfg.robust_val_samples or not eps:
            return {}
        from robustlab.attacks import build_attack
        from robustlab.defenses._common import unwrap

        attack = build_attack("pgd", eps=float(eps), alpha=float(eps) / 4, steps=10,
                              norm=getattr(self.defense, "norm", "linf"), random_start=True, seed=0)
        model = unwrap(self.model)
        budget = -(-self.cfg.robust_val_samples // D.world_size())  # this rank's share
        correct = torch.zeros((), dtype=torch.float64)
        seen = 0
        was_training = model.training
        model.eval()
        try:
            for batch in self.val_loader:
                if seen >= budget:
                    break
                inputs, targets = self.task.unpack(batch, self.device)
                if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4:
                    return {}  # not an image classifier: nothing to attack
                take = min(budget - seen, targets.shape[0])
                x, y = inputs[:take], targets[:take]
                with autocast_context(self.device, self.cfg.amp):
                    x_adv = attack(model, x, y)
                    with torch.no_grad():
                        pred = model(x_adv).argmax(1)
                correct += (pred == y).sum().double().cpu()
                seen += take
        finally:
            model.train(was_training)
        sums = D.all_reduce_sums({"correct": correct, "n": torch.tensor(float(seen))})
        return {"robust_accuracy": sums["correct"] / sums["n"]} if sums["n"] else {}

    # -- checkpoints ----------------------------------------------------------------------------------
    def state(self, epoch: int) -> dict[str, Any]:
        return {
            "kind": "train",
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "rng": rng_state(),
            "defense": self.defense.state_dict(),
            "config": self.config_snapshot,
            "arch": getattr(self.model, "arch", ""),
            "num_classes": getattr(self.model, "num_classes", None),
        }

    def resume(self) -> None:
        """Continue from ``checkpoints/last.pt`` of the run folder (every rank reads it)."""
        run = self.run or (RunDir(self.run_path) if self.run_path is not None else None)
        if run is None:
            raise RobustlabError("resume needs a run folder")
        path = run.checkpoint("last")
        if not path.exists():
            log.info("no checkpoint in %s yet; starting from epoch 1", run.path)
            if self.run is not None:
                self.run.truncate_metrics(0)
            return
        state = load_checkpoint(path)
        load_model_state(self.model, state["model"], path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.best_value, self.best_epoch = state["best_value"], state["best_epoch"]
        self.bad_epochs = state["bad_epochs"]
        self.defense.load_state_dict(state.get("defense", {}))
        set_rng_state(state["rng"])
        self.start_epoch = int(state["epoch"]) + 1
        if self.run is not None:
            self.run.truncate_metrics(int(state["epoch"]))
        log.info("resumed %s at epoch %d", run.path, self.start_epoch)

    def _improved(self, value: float, monitor: str) -> bool:
        if self.best_value is None:
            return True
        higher = not monitor.endswith("loss")
        return value > self.best_value if higher else value < self.best_value

    # -- the loop -------------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> FitResult:
        """Train for ``cfg.epochs`` (or until early stopping); return the per-epoch history."""
        if resume:
            self.resume()
        result = FitResult(history=self.run.metrics() if self.run and resume else [])
        for epoch in range(self.start_epoch, self.cfg.epochs + 1):
            t0 = time.perf_counter()
            record: dict[str, Any] = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]}
            record.update(self.train_epoch(epoch))
            record.update({f"val_{k}": v for k, v in self.validate().items()})
            record.update({f"val_{k}": v for k, v in self.robust_validate().items()})
            extra = self.defense.on_epoch_end(epoch, self.model, record)
            stop_requested = bool(extra.pop("stop", False))
            record.update(extra)
            record["seconds"] = round(time.perf_counter() - t0, 3)
            monitor = self.cfg.monitor if self.cfg.monitor in record else f"train_{self.task.monitor}"
            if monitor not in record and f"train_{self.cfg.monitor.removeprefix('val_')}" in record:
                monitor = f"train_{self.cfg.monitor.removeprefix('val_')}"  # no validation split
            value = record.get(monitor)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise RobustlabError(
                    f"monitor metric {self.cfg.monitor!r} is not produced; available: {', '.join(record)}"
                )
            self.schedule.step_epoch(value)
            improved = self._improved(value, monitor)
            if improved:
                self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
            else:
                self.bad_epochs += 1
            record["best"] = improved
            result.history.append(record)
            if self.run is not None:
                # metrics first: a kill before last.pt is written makes resume redo this epoch
                self.run.log_metrics(record)
                state = self.state(epoch)
                if improved:
                    save_checkpoint(self.run.checkpoint("best"), state)
                save_checkpoint(self.run.checkpoint("last"), state)
            log.info(
                "epoch %d: %s",
                epoch,
                ", ".join(f"{k}={v:.4f}" for k, v in record.items() if isinstance(v, float) and k != "lr"),
            )
            result.epochs_run += 1
            if stop_requested:
                log.info("defense %s asked to stop after epoch %d", self.defense.name, epoch)
                result.stopped_early = True
                break
            if self.cfg.patience and self.bad_epochs >= self.cfg.patience:
                log.info("early stopping: %s did not improve for %d epochs", monitor, self.cfg.patience)
                result.stopped_early = True
                break
        result.best_epoch, result.best_value = self.best_epoch, self.best_value
        D.barrier()
        return result
