"""From a config to a trained run folder, through the config's lab; and back from a folder to its config.

``train_experiment`` asks the lab for data, model, task, step strategy, callbacks and metrics, trains
into a run folder with the shared trainer and records the test split's metrics; ``load_run_config``
reads a folder's resolved config back (validated by its lab's schema).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from torch.utils.data.distributed import DistributedSampler

from robustlab import data as rdata
from robustlab.config import lab_of, parse_config
from robustlab.core import distributed as D
from robustlab.core.checkpoint import load_checkpoint, load_model_state
from robustlab.core.config import ExperimentConfig
from robustlab.core.errors import RobustlabError
from robustlab.core.io import read_json
from robustlab.core.precision import autocast_context
from robustlab.core.progress import log
from robustlab.core.runs import RunDir
from robustlab.core.seeding import resolve_device, seed_everything
from robustlab.data.bundle import DataBundle
from robustlab.training import Trainer


def train_loaders(cfg: ExperimentConfig, bundle: DataBundle):
    """Training and validation loaders. The training order is a function of (seed, epoch) only —
    a DistributedSampler (one replica outside torchrun), or the lab's own batch sampler, with
    ``set_epoch`` — so a resumed run sees
    exactly the batches an uninterrupted one would, and world sizes shard deterministically."""
    d = cfg.data
    world, rank = D.world_size(), D.rank()
    if bundle.train_batches is not None:
        train = rdata.make_loader(bundle.train, d.batch_size, num_workers=d.num_workers, collate=bundle.collate,
                                  batch_sampler=bundle.train_batches(d.batch_size, cfg.seed, world, rank))
    else:
        sampler = DistributedSampler(bundle.train, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
        train = rdata.make_loader(bundle.train, d.batch_size, sampler=sampler, seed=cfg.seed,
                                  num_workers=d.num_workers, collate=bundle.collate)
    val = eval_loader(cfg, bundle, bundle.val) if bundle.val is not None else None
    return train, val


def eval_loader(cfg: ExperimentConfig, bundle: DataBundle, dataset: Any):
    """Evaluation batches; under DDP each rank takes a disjoint shard (no padding), so metric sums
    reduced over ranks equal a single process's exactly."""
    sampler = D.ShardSampler(len(dataset)) if D.is_distributed() else None
    return rdata.make_loader(dataset, cfg.data.eval_batch_size, sampler=sampler, collate=bundle.collate)


def train_experiment(
    cfg: ExperimentConfig, out: str | Path, resume: bool = False, overwrite: bool = False, smoke: bool = False
) -> RunDir:
    """Train ``cfg`` into the run folder ``out`` and record the test split's metrics in results.json."""
    lab = lab_of(cfg)
    lab.check(cfg)
    device = resolve_device(cfg.device)
    autocast_context(device, cfg.train.amp)  # an unusable --amp fails before a run folder or data exist
    D.init_from_env(device.type)
    run = RunDir.create(out, resume=resume, overwrite=overwrite) if D.is_main() else RunDir(out)
    try:
        seed_everything(cfg.seed)
        bundle = lab.build_data(cfg, smoke=smoke)
        meta = lab.model_meta(cfg, bundle)
        model = lab.build_model(cfg, meta)
        if cfg.train.init_from:
            lab.load_initial_weights(model, cfg.train.init_from)
        strategy = lab.build_strategy(cfg)
        preferred = lab.monitor(cfg, strategy)
        task = lab.build_task(cfg, meta)
        monitor = cfg.train.monitor or preferred or f"val_{task.monitor}"
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"monitor": monitor})})
        resolved = cfg.resolved()
        resolved["smoke"] = smoke
        if D.is_main():
            run.write_config(resolved)
        train_loader, val_loader = train_loaders(cfg, bundle)
        trainer = Trainer(model, task, cfg.train, train_loader, val_loader, run=run, strategy=strategy,
                          device=device, config_snapshot=resolved, callbacks=lab.callbacks(cfg, strategy),
                          metrics=lab.metrics(cfg, meta), meta=meta)
        t0 = time.perf_counter()
        fit = trainer.fit(resume=resume)
        best = run.checkpoint("best")
        if best.exists():
            state = load_checkpoint(best)
            load_model_state(model, state["model"], best)
            for cb in trainer.callbacks:  # the best point's averaged weights too
                if cb.name in state.get("callbacks", {}):
                    cb.load_state_dict(state["callbacks"][cb.name])
        test = {f"test_{k}": v for k, v in trainer.validate(eval_loader(cfg, bundle, bundle.test)).items()}
        if D.is_main():
            run.update_results(
                name=cfg.name,
                task=cfg.task,
                **lab.training_results(cfg, bundle, test, strategy),
                training={
                    "epochs_run": len(fit.history), "best_epoch": fit.best_epoch,
                    "best_" + monitor: fit.best_value, "stopped_early": fit.stopped_early,
                    "seconds": round(time.perf_counter() - t0, 2),
                },
            )
            log.info("%s: test %s (best epoch %s)", cfg.name,
                     ", ".join(f"{k}={v:.4f}" for k, v in test.items() if isinstance(v, float)), fit.best_epoch)
    finally:
        run.release_lock()
    D.barrier()
    return run


def load_run_config(run: RunDir) -> tuple[ExperimentConfig, bool]:
    """The resolved config of a run folder (validated by its lab) and whether it was a smoke run."""
    import yaml

    raw = yaml.safe_load(run.config_path.read_text(encoding="utf-8")) if run.config_path.exists() else None
    if not isinstance(raw, dict):
        raise RobustlabError(f"{run.path} has no readable config.yaml")
    smoke = bool(raw.pop("smoke", False))
    return parse_config(raw, where=str(run.config_path)), smoke


def read_results(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's results.json (empty when there is none yet)."""
    path = Path(run_dir) / "results.json"
    return read_json(path) if path.exists() else {}

