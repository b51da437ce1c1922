"""From a config to a trained, evaluated run folder. The CLI and recipes call these functions.

``train_experiment`` builds data, model, task and defense from an :class:`ExperimentConfig`, trains
into a run folder and records the test accuracy; ``load_run_model`` rebuilds a trained model from
a run folder; ``evaluate_run`` and ``report_run`` add the robustness audit and the HTML report.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data.distributed import DistributedSampler

from robustlab import data as rdata
from robustlab.config import ExperimentConfig, parse_config
from robustlab.core import distributed as D
from robustlab.core.checkpoint import load_checkpoint, load_model_state
from robustlab.core.errors import RobustlabError
from robustlab.core.io import read_json
from robustlab.core.precision import autocast_context
from robustlab.core.progress import log
from robustlab.core.runs import RunDir
from robustlab.core.seeding import resolve_device, seed_everything
from robustlab.data.spec import DatasetInfo
from robustlab.data.validation import check_labels, check_pixels
from robustlab.defenses import build_defense
from robustlab.labs.classification.task import ClassificationTask
from robustlab.models import ImageClassifier, build_model, load_pretrained
from robustlab.tasks.registry import TaskFamily, get_task_family, register_task_family
from robustlab.training import Trainer

SMOKE_SIZES = {"train": 96, "test": 64}


@dataclass
class DataBundle:
    """The splits of one experiment; ``val`` is ``None`` when ``val_fraction`` is 0."""

    info: DatasetInfo
    train: rdata.ImageDataset
    val: rdata.ImageDataset | None
    test: rdata.ImageDataset


def fabricated_dataset(info: DatasetInfo, n: int, seed: int, split: str) -> rdata.ImageDataset:
    """``n`` learnable fake images of ``info``'s shape and classes (for ``--smoke``); train and test
    differ by seed but share the class templates' generator seed, so a model can learn something."""
    return rdata.fabricate(info, n=n, seed=seed + (0 if split == "train" else 1))


def prepare_data(cfg: ExperimentConfig, smoke: bool = False) -> DataBundle:
    """Load, adapt (channels/size), subset and split the data that ``cfg`` names.

    ``smoke`` replaces the real images with fabricated ones of the same shape and classes, so a
    recipe's whole pipeline runs in seconds without the dataset on disk.
    """
    d = cfg.data
    info = rdata.dataset_info(d.dataset)
    if smoke:
        if max(info.image_size) > 64:
            info = dataclasses.replace(info, image_size=(64, 64))  # keep smoke runs tiny
        train = fabricated_dataset(info, SMOKE_SIZES["train"], cfg.seed, "train")
        test = fabricated_dataset(info, SMOKE_SIZES["test"], cfg.seed, "test")
    else:
        root = Path(d.root) if d.root else None
        train = rdata.load_dataset(d.dataset, "train", root=root, download=d.download)
        test = rdata.load_dataset(d.dataset, "test", root=root, download=d.download)
    size = min(d.image_size, 64) if (smoke and d.image_size) else d.image_size
    if d.channels or size:
        train, test = rdata.adapt(train, d.channels, size), rdata.adapt(test, d.channels, size)
    if d.train_subset and not smoke:
        train = rdata.subset(train, d.train_subset, seed=cfg.seed)
    if d.test_subset and not smoke:
        test = rdata.subset(test, d.test_subset, seed=cfg.seed)
    val = None
    if d.val_fraction > 0:
        train, val = rdata.train_val_split(train, d.val_fraction, seed=cfg.seed)
    aug = rdata.augmentation(d.augmentation)
    if aug is not None:
        train = train.with_transform(aug)
    c, h, w = train[0][0].shape
    info = dataclasses.replace(info, channels=c, image_size=(h, w))
    for split, ds in (("train", train), ("validation", val), ("test", test)):
        if ds is not None:
            check_labels(ds.targets, info.num_classes, f"{info.name} {split} split")
            raw = getattr(ds, "data", None)
            if isinstance(raw, torch.Tensor):
                check_pixels(raw, f"{info.name} {split} images")
    return DataBundle(info, train, val, test)


def build_model_for(cfg: ExperimentConfig, info: DatasetInfo) -> ImageClassifier:
    """The model ``cfg.model`` names, sized for ``info`` (channels, image size, classes, mean/std)."""
    m = cfg.model
    mean, std = info.mean, info.std
    if len(mean) != info.channels:  # channels were adapted: use the average statistics
        mean = (sum(mean) / len(mean),) * info.channels
        std = (sum(std) / len(std),) * info.channels
    return build_model(
        m.name, info.num_classes, in_channels=info.channels, image_size=info.image_size[0], mean=mean, std=std,
        batchnorm=m.batchnorm, dropout=m.dropout, pretrained=m.pretrained, **m.options,
    )


def make_task(cfg: ExperimentConfig, info: DatasetInfo) -> ClassificationTask:
    """The classification task: cross-entropy with the config's label smoothing, accuracy."""
    return ClassificationTask(info.num_classes, label_smoothing=cfg.train.label_smoothing)


register_task_family(TaskFamily(
    "classification", build_model=build_model_for, build_task=make_task,
    description="image classification (cross-entropy, accuracy); the robustness audit applies",
))


def _loaders(cfg: ExperimentConfig, bundle: DataBundle):
    """Training and validation loaders. The training order is a function of (seed, epoch) only —
    a DistributedSampler (one replica outside torchrun) with ``set_epoch`` — so a resumed run sees
    exactly the batches an uninterrupted one would, and world sizes shard deterministically."""
    d = cfg.data
    world, rank = D.world_size(), D.rank()
    sampler = DistributedSampler(bundle.train, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    train = rdata.make_loader(bundle.train, d.batch_size, sampler=sampler, seed=cfg.seed, num_workers=d.num_workers)
    val = _eval_loader(cfg, bundle.val) if bundle.val is not None else None
    return train, val


def _eval_loader(cfg: ExperimentConfig, dataset: rdata.ImageDataset):
    """Evaluation batches; under DDP each rank takes a disjoint shard (no padding), so metric sums
    reduced over ranks equal a single process's exactly."""
    sampler = D.ShardSampler(len(dataset)) if D.is_distributed() else None
    return rdata.make_loader(dataset, cfg.data.eval_batch_size, sampler=sampler)


@torch.no_grad()
def accuracy(model: torch.nn.Module, dataset: rdata.ImageDataset, batch_size: int, device: torch.device) -> float:
    """Top-1 accuracy of ``model`` on ``dataset`` (eval mode; mode restored afterwards)."""
    was = model.training
    model.eval()
    correct = total = 0
    try:
        for x, y in rdata.make_loader(dataset, batch_size):
            correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
            total += y.numel()
    finally:
        model.train(was)
    return correct / max(total, 1)


def train_experiment(
    cfg: ExperimentConfig, out: str | Path, resume: bool = False, overwrite: bool = False, smoke: bool = False
) -> RunDir:
    """Train ``cfg`` into the run folder ``out`` and record the clean test accuracy in results.json."""
    validate_names(cfg)
    device = resolve_device(cfg.device)
    autocast_context(device, cfg.train.amp)  # an unusable --amp fails before a run folder or data exist
    D.init_from_env(device.type)
    run = RunDir.create(out, resume=resume, overwrite=overwrite) if D.is_main() else RunDir(out)
    try:
        seed_everything(cfg.seed)
        bundle = prepare_data(cfg, smoke=smoke)
        family = get_task_family(cfg.task)
        model = family.build_model(cfg, bundle.info)
        if cfg.train.init_from:
            load_pretrained(model, cfg.train.init_from)
        defense = build_defense(cfg.defense.name, **cfg.defense.params)
        preferred = getattr(defense, "preferred_monitor", None)
        if preferred and "monitor" not in cfg.train.model_fields_set:
            # e.g. fgsm-rs: keep the checkpoint before a catastrophic-overfitting collapse
            cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"monitor": preferred})})
        resolved = cfg.resolved()
        resolved["smoke"] = smoke
        if D.is_main():
            run.write_config(resolved)
        train_loader, val_loader = _loaders(cfg, bundle)
        task = family.build_task(cfg, bundle.info)
        trainer = Trainer(model, task, cfg.train, train_loader, val_loader,
                          run=run, defense=defense, device=device, config_snapshot=resolved)
        t0 = time.perf_counter()
        fit = trainer.fit(resume=resume)
        best = run.checkpoint("best")
        if best.exists():
            load_model_state(model, load_checkpoint(best)["model"], best)
        test_metrics = {f"test_{k}": v for k, v in trainer.validate(_eval_loader(cfg, bundle.test)).items()}
        if "test_accuracy" in test_metrics:
            test_metrics["clean_accuracy"] = test_metrics.pop("test_accuracy")
        if D.is_main():
            run.update_results(
                name=cfg.name,
                task=cfg.task,
                dataset=bundle.info.name,
                model=cfg.model.name,
                defense=defense.describe(),
                **test_metrics,
                test_size=len(bundle.test),
                training={
                    "epochs_run": len(fit.history), "best_epoch": fit.best_epoch,
                    "best_" + cfg.train.monitor: fit.best_value, "stopped_early": fit.stopped_early,
                    "seconds": round(time.perf_counter() - t0, 2),
                },
            )
            log.info("%s: test %s (best epoch %s)", cfg.name,
                     ", ".join(f"{k}={v:.4f}" for k, v in test_metrics.items()), fit.best_epoch)
    finally:
        run.release_lock()
    D.barrier()
    return run


def load_run_config(run: RunDir) -> tuple[ExperimentConfig, bool]:
    """The resolved config of a run folder and whether it was a smoke run."""
    import yaml

    raw = yaml.safe_load(run.config_path.read_text(encoding="utf-8")) if run.config_path.exists() else None
    if not isinstance(raw, dict):
        raise RobustlabError(f"{run.path} has no readable config.yaml")
    smoke = bool(raw.pop("smoke", False))
    return parse_config(raw, where=str(run.config_path)), smoke


def load_run_model(run: RunDir, which: str = "best", device: torch.device | None = None):
    """Rebuild the trained model of a run folder: ``(model in eval mode, config, data bundle)``."""
    cfg, smoke = load_run_config(run)
    bundle = prepare_data(cfg, smoke=smoke)
    cfg_model = cfg.model.model_copy(update={"pretrained": None})
    model = get_task_family(cfg.task).build_model(cfg.model_copy(update={"model": cfg_model}), bundle.info)
    path = run.checkpoint(which)
    if not path.exists():
        path = run.checkpoint("last")
    load_model_state(model, load_checkpoint(path)["model"], path)
    model.to(device or torch.device("cpu")).eval()
    return model, cfg, bundle


def read_results(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "results.json"
    return read_json(path) if path.exists() else {}


def validate_names(cfg: ExperimentConfig) -> None:
    """Check every registry name in ``cfg`` (dataset, model, defense, augmentation, attacks) before
    any folder is created, so a typo fails fast with the list of valid choices."""
    from robustlab.core.errors import choice_error
    from robustlab.defenses import DEFENSES
    from robustlab.models.registry import _BUILDERS

    rdata.dataset_info(cfg.data.dataset)
    get_task_family(cfg.task)
    if cfg.task != "classification":
        return
    if cfg.model.name not in _BUILDERS:
        raise choice_error("model", cfg.model.name, _BUILDERS)
    if cfg.defense.name not in DEFENSES:
        raise choice_error("defense", cfg.defense.name, DEFENSES)
    rdata.augmentation(cfg.data.augmentation)
    try:
        from robustlab.attacks import ATTACKS
    except ImportError:  # attack engine not installed in this build
        return
    for name in cfg.evaluate.attacks:
        key = name.strip().lower().replace("_", "-")
        if key not in ATTACKS and not key.startswith("torchattacks:"):
            raise choice_error("attack", name, ATTACKS)
    for name in cfg.evaluate.cross_domain:
        rdata.dataset_info(name)
