"""The training loop: any task, any step strategy, callbacks, checkpoints, resume, AMP, DDP.

Modelled on torchvision's reference scripts: a training pass, then a validation pass; one line per
validation point in ``metrics.jsonl`` (every epoch, or every ``val_every`` optimizer steps);
``checkpoints/last.pt`` at every validation point (model, optimizer, schedule, AMP scaler, RNG, step
strategy and callback state, and the position in the epoch, so ``--resume`` continues exactly), and
``checkpoints/best.pt`` whenever the monitored metric improves in the direction the task declares.
The loop knows no modality: batches go through the task, the strategy and the callbacks.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from robustlab.core import distributed as D
from robustlab.core.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from robustlab.core.config import TrainConfig
from robustlab.core.errors import RobustlabError
from robustlab.core.modes import eval_mode
from robustlab.core.precision import autocast_context
from robustlab.core.progress import bar, bars_enabled, log
from robustlab.core.runs import RunDir
from robustlab.core.seeding import rng_state, set_rng_state
from robustlab.training.callbacks import EMA, Callback
from robustlab.training.metrics import Metric
from robustlab.training.monitor import metric_direction
from robustlab.training.optim import Schedule, build_optimizer
from robustlab.training.step import StepStrategy
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
    monitor: str | None = None


class Trainer:
    """Train ``model`` on ``train_loader`` for a ``task``, validating on ``val_loader``.

    The loader's sampler must have ``set_epoch(epoch)`` (see :mod:`robustlab.data`) so that each
    epoch's order depends only on the seed and the epoch number — that is what makes a resumed
    run identical to an uninterrupted one. ``metrics`` are split-level metrics computed on every
    validation and test pass besides the task's per-batch sums; ``meta`` is stored in every
    checkpoint (e.g. the shapes a lab needs to rebuild the model without its data).
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task,
        cfg: TrainConfig,
        train_loader: DataLoader,
        val_loader: DataLoader | None = None,
        run: RunDir | None = None,
        strategy: StepStrategy | None = None,
        device: torch.device | None = None,
        config_snapshot: dict[str, Any] | None = None,
        callbacks: list[Callback] | None = None,
        metrics: list[Metric] | None = None,
        meta: dict[str, Any] | None = None,
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
        self.strategy = strategy or StepStrategy()
        self.metrics = list(metrics or [])
        self.meta = dict(meta or {})
        self.config_snapshot = config_snapshot or {}
        if cfg.freeze_backbone:
            backbone = getattr(self.model, "backbone", None)
            if backbone is None:
                raise RobustlabError("freeze_backbone needs a model with a .backbone (robustlab models have one)")
            for p in backbone.parameters():
                p.requires_grad_(False)
        own = list(callbacks or [])
        if cfg.ema is not None and not any(isinstance(c, EMA) for c in own):
            own.insert(0, EMA(cfg.ema.decay, cfg.ema.evaluate_with_ema))
        self.callbacks: list[Callback] = [*own, *self.strategy.callbacks(), self.strategy]
        names = [c.name for c in self.callbacks]
        if len(set(names)) != len(names):
            raise RobustlabError(f"callback names must be unique (their state is saved by name), got {names}")
        self.train_model: nn.Module = self.model
        if D.is_distributed():
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_model = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if cfg.compile:
            self.train_model = torch.compile(self.train_model)
        self.optimizer = build_optimizer(self.model, cfg)
        self.steps_per_epoch = max(1, math.ceil(len(train_loader) / cfg.accumulate))
        self.monitor_name = cfg.monitor or f"val_{task.monitor}"
        self.schedule = Schedule(
            self.optimizer, cfg, self.steps_per_epoch, total_steps=cfg.max_steps,
            higher_is_better=self._higher_is_better(self.monitor_name),
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.amp == "fp16")
        self.strategy.setup(
            num_classes=getattr(task, "num_classes", 0), device=self.device, epochs=cfg.epochs,
            steps_per_epoch=len(train_loader),
        )
        self.start_epoch = 1
        self.start_batch = 0  # batches of start_epoch already trained (a mid-epoch resume)
        self.global_step = 0
        self._micro = 0  # micro-batches accumulated since the last optimizer step
        self._resume_rng: dict[str, Any] | None = None  # the RNG state of a mid-epoch checkpoint
        self.best_value: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0

    # -- directions ---------------------------------------------------------------------------------
    def _higher_is_better(self, metric: str) -> bool:
        return metric_direction(metric, self.task, [*self.callbacks, *self.metrics], self.cfg.monitor_mode)

    # -- one optimizer step -----------------------------------------------------------------------
    def _step(self, loss: torch.Tensor) -> None:
        """Backward of ``loss``; an optimizer step once ``cfg.accumulate`` micro-batches are in."""
        if not torch.isfinite(loss.detach()):
            raise NonFiniteLossError(
                f"training loss became {loss.item()} (non-finite); lower the learning rate or use --amp none; "
                "the last good checkpoint is kept"
            )
        k = self.cfg.accumulate
        if self._micro == 0:
            self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss if k == 1 else loss / k).backward()
        self._micro += 1
        if self._micro == k:
            self._optimizer_step()

    def _optimizer_step(self) -> None:
        if self.cfg.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self._micro = 0
        self.global_step += 1
        self.schedule.step_batch()
        for cb in self.callbacks:
            cb.after_step(self)

    def _train_mode(self) -> None:
        self.train_model.train()
        if self.cfg.freeze_backbone:
            self.model.backbone.eval()  # frozen features keep their batch-norm statistics

    # -- passes -------------------------------------------------------------------------------------
    def _set_epoch(self, epoch: int) -> None:
        for obj in (getattr(self.train_loader, "sampler", None), getattr(self.train_loader, "batch_sampler", None)):
            if hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)

    def _summary(self, sums: dict[str, torch.Tensor], prefix: str) -> dict[str, float]:
        return {f"{prefix}{k}": v for k, v in self.task.summarize(D.all_reduce_sums(sums)).items()}

    @torch.no_grad()
    def validate(self, loader: DataLoader | None = None) -> dict[str, float]:
        """Task metrics and split-level metrics on ``loader`` (default: the validation loader), in
        eval mode (every submodule's flag restored afterwards; EMA weights when configured)."""
        loader = loader or self.val_loader
        if loader is None:
            return {}
        for cb in self.callbacks:
            cb.on_validation_start(self)
        sums: dict[str, torch.Tensor] = {}
        for m in self.metrics:
            m.reset()
        try:
            with eval_mode(self.model):
                for batch in loader:
                    inputs, targets = self.task.unpack(batch, self.device)
                    with autocast_context(self.device, self.cfg.amp):
                        out = self.task.forward(self.model, inputs, targets)
                    for k, v in self.task.batch_metrics(out).items():
                        sums[k] = sums[k] + v if k in sums else v
                    for m in self.metrics:
                        m.update(out)
        finally:
            for cb in self.callbacks:
                cb.on_validation_end(self)
        res = self.task.summarize(D.all_reduce_sums(sums))
        for m in self.metrics:
            res.update(m.compute())
        return res

    # -- checkpoints ----------------------------------------------------------------------------------
    def state(self, epoch: int, batch: int) -> dict[str, Any]:
        """Everything a resume needs, after ``batch`` batches of epoch ``epoch``."""
        return {
            "kind": "train",
            "epoch": epoch,
            "batch": batch,
            "global_step": self.global_step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "rng": rng_state(),
            "strategy": self.strategy.state_dict(),
            "callbacks": {c.name: c.state_dict() for c in self.callbacks if c is not self.strategy},
            "config": self.config_snapshot,
            "meta": self.meta,
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
        self.strategy.load_state_dict(state.get("strategy", {}))
        saved = state.get("callbacks", {})
        for cb in self.callbacks:
            if cb is not self.strategy and cb.name in saved:
                cb.load_state_dict(saved[cb.name])
        set_rng_state(state["rng"])
        self._resume_rng = state["rng"]
        epoch, batch = int(state["epoch"]), int(state.get("batch", len(self.train_loader)))
        self.global_step = int(state.get("global_step", 0))
        if batch >= len(self.train_loader):
            self.start_epoch, self.start_batch = epoch + 1, 0
        else:
            self.start_epoch, self.start_batch = epoch, batch
        if self.run is not None:
            self.run.truncate_metrics(epoch, self.global_step)
        log.info("resumed %s at epoch %d%s", run.path, self.start_epoch,
                 f", batch {self.start_batch}" if self.start_batch else "")

    def _improved(self, value: float, monitor: str) -> bool:
        if self.best_value is None:
            return True
        return value > self.best_value if self._higher_is_better(monitor) else value < self.best_value

    def _resolve_monitor(self, record: dict[str, Any]) -> str:
        """The monitored metric's key in ``record``: the configured one, else (no validation split)
        its training counterpart."""
        monitor = self.monitor_name if self.monitor_name in record else f"train_{self.task.monitor}"
        fallback = f"train_{self.monitor_name.removeprefix('val_')}"
        if monitor not in record and fallback in record:
            monitor = fallback
        value = record.get(monitor)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            raise RobustlabError(
                f"monitor metric {self.monitor_name!r} is not produced; available: {', '.join(record)}"
            )
        return monitor

    # -- the loop -------------------------------------------------------------------------------------
    @property
    def step_based(self) -> bool:
        """True when validation points are counted in optimizer steps (``max_steps`` or ``val_every``)."""
        return self.cfg.max_steps is not None or self.cfg.val_every is not None

    def _done(self) -> bool:
        return self.cfg.max_steps is not None and self.global_step >= self.cfg.max_steps

    def fit(self, resume: bool = False) -> FitResult:
        """Train until ``cfg.epochs`` (or ``cfg.max_steps``) or early stopping; return the history."""
        if resume:
            self.resume()
        result = FitResult(history=self.run.metrics() if self.run and resume else [])
        for cb in self.callbacks:
            cb.on_fit_start(self)
        epoch = self.start_epoch
        stop = self._done()
        while not stop and (self.cfg.max_steps is not None or epoch <= self.cfg.epochs):
            stop = self._train_epoch(epoch, result)
            epoch += 1
        result.best_epoch, result.best_value = self.best_epoch, self.best_value
        result.monitor = self.monitor_name
        D.barrier()
        return result

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training data without validation, checkpoints or logging (benchmarks,
        tests); returns the epoch's ``train_*`` metrics (all ranks reduced)."""
        summary: dict[str, float] = {}
        self._train_epoch(epoch, None, summary)
        return summary

    def _train_epoch(self, epoch: int, result: FitResult | None, summary: dict[str, float] | None = None) -> bool:
        """One pass over the training data with its validation point(s) (none when ``result`` is None:
        the pass's metrics go into ``summary``); True when training ends."""
        self._set_epoch(epoch)
        skip, self.start_batch = self.start_batch, 0
        for cb in self.callbacks:
            cb.on_epoch_start(self, epoch)
        sums: dict[str, torch.Tensor] = {}
        show = bars_enabled()
        total = len(self.train_loader)
        pbar = bar(self.train_loader, desc=f"epoch {epoch}/{self.cfg.epochs if not self.cfg.max_steps else '-'}",
                   total=total)
        t0, lr = time.perf_counter(), self.optimizer.param_groups[0]["lr"]
        for i, batch in enumerate(pbar):
            if i < skip:  # a mid-epoch resume: these batches were trained before the checkpoint
                if i == skip - 1 and self._resume_rng is not None:
                    set_rng_state(self._resume_rng)  # loading them consumed randomness; take it back
                continue
            self._train_mode()
            inputs, targets = self.task.unpack(batch, self.device)
            if self.cfg.channels_last and isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            stepped = self.global_step
            with autocast_context(self.device, self.cfg.amp):
                out = self.strategy.train_batch(self.train_model, inputs, targets, self.task, self._step)
            last = i == total - 1
            if last and self._micro:  # an epoch's leftover micro-batches still make one step
                self._optimizer_step()
            for k, v in self.task.batch_metrics(out).items():
                sums[k] = sums[k] + v if k in sums else v
            if i % 10 == 0 and show:  # .item() syncs the GPU: only when a bar is drawn
                shown = self.task.summarize({k: v.item() for k, v in sums.items()})
                pbar.set_postfix({k: f"{v:.3f}" for k, v in list(shown.items())[:3]})
            if result is None:
                continue
            point = last and not self.cfg.val_every
            if self.step_based and self.global_step != stepped:
                point = point or self._done() or bool(self.cfg.val_every and self.global_step % self.cfg.val_every == 0)
            if point:
                stop = self._validation_point(epoch, i + 1, self._summary(sums, "train_"), lr, t0, result)
                sums, t0, lr = {}, time.perf_counter(), self.optimizer.param_groups[0]["lr"]
                if stop or self._done():
                    pbar.close()
                    return True
        pbar.close()
        if result is None and summary is not None:
            summary.update(self._summary(sums, "train_"))
        return False

    def _validation_point(
        self, epoch: int, batch: int, train: dict[str, float], lr: float, t0: float, result: FitResult
    ) -> bool:
        """Validate, log, checkpoint; True when a callback or early stopping ends training."""
        record: dict[str, Any] = {"epoch": epoch, "lr": lr}
        if self.step_based:
            record["step"] = self.global_step
        record.update(train)
        record.update({f"val_{k}": v for k, v in self.validate().items()})
        stop_requested = False
        for cb in self.callbacks:
            extra = dict(cb.on_epoch_end(self, record))
            if extra.pop("stop", False):
                stop_requested = True
                log.info("%s asked to stop after epoch %d", cb.name, epoch)
            record.update(extra)
        record["seconds"] = round(time.perf_counter() - t0, 3)
        monitor = self._resolve_monitor(record)
        value = record[monitor]
        self.schedule.step_epoch(value)
        improved = self._improved(value, monitor)
        if improved:
            self.best_value, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        record["best"] = improved
        result.history.append(record)
        if self.run is not None:
            # metrics first: a kill before last.pt is written makes resume redo this period
            self.run.log_metrics(record)
            state = self.state(epoch, batch)
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
            result.stopped_early = True
            return True
        if self.cfg.patience and self.bad_epochs >= self.cfg.patience:
            log.info("early stopping: %s did not improve for %d validations", monitor, self.cfg.patience)
            result.stopped_early = True
            return True
        return False
