import pytest
import torch

from robustlab.config import TrainConfig, parse_config
from robustlab.core.checkpoint import load_checkpoint
from robustlab.core.errors import RobustlabError
from robustlab.core.runs import RunDir
from robustlab.data import load_dataset, make_loader, subset
from robustlab.defenses import Defense
from robustlab.experiment import train_experiment
from robustlab.labs.classification.task import ClassificationTask
from robustlab.models import build_model
from robustlab.training import NonFiniteLossError, Trainer
from robustlab.training.optim import Schedule, build_optimizer


def _digits_cfg(**over):
    raw = {
        "name": "t", "seed": 3,
        "data": {"dataset": "digits", "batch_size": 64, "val_fraction": 0.1},
        "model": {"name": "small_cnn", "options": {"width": 8}},
        "train": {"epochs": 3, "lr": 0.003},
    }
    for k, v in over.items():
        raw[k] = {**raw.get(k, {}), **v} if isinstance(v, dict) else v
    return parse_config(raw)


def test_loss_goes_down_and_files_written(tmp_path):
    run = train_experiment(_digits_cfg(), tmp_path / "run")
    hist = run.metrics()
    assert len(hist) == 3
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert {"epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"} <= set(hist[0])
    res = run.results()
    assert res["clean_accuracy"] > 0.8
    assert run.checkpoint("best").exists() and run.checkpoint("last").exists()
    assert load_checkpoint(run.checkpoint("last"))["epoch"] == 3
    assert not (run.path / ".lock").exists()


def test_resume_equals_uninterrupted(tmp_path):
    """Stop after epoch 1 (as a kill would), resume to 3: identical metrics and weights."""
    full = train_experiment(_digits_cfg(), tmp_path / "full")
    part = train_experiment(_digits_cfg(train={"epochs": 1}), tmp_path / "part")
    # resuming with the full epoch count continues the same stream
    resumed = train_experiment(_digits_cfg(), tmp_path / "part", resume=True)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed.metrics()) == strip(full.metrics())
    a = load_checkpoint(full.checkpoint("last"))["model"]
    b = load_checkpoint(part.checkpoint("last"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping(tmp_path):
    cfg = _digits_cfg(train={"epochs": 8, "patience": 1, "lr": 1e-9, "monitor": "val_loss"})
    run = train_experiment(cfg, tmp_path / "r")
    assert run.results()["training"]["stopped_early"] is True
    assert len(run.metrics()) < 8


class _Exploding(Defense):
    name = "exploding"

    def train_batch(self, model, inputs, targets, task, step):
        out = task.forward(model, inputs, targets)
        out.loss = out.loss * float("nan")
        step(out.loss)
        return out


def test_nan_loss_stops_with_message():
    ds = subset(load_dataset("digits", "train"), 128)
    model = build_model("small_cnn", 10, in_channels=1, image_size=8, width=8)
    tr = Trainer(model, ClassificationTask(10), TrainConfig(epochs=1), make_loader(ds, 32), strategy=_Exploding())
    with pytest.raises(NonFiniteLossError, match="non-finite"):
        tr.fit()


@pytest.mark.parametrize("schedule", ["step", "cosine", "plateau", "warmup_cosine", "warmup_linear", "onecycle"])
def test_schedules_change_lr(schedule):
    cfg = TrainConfig(epochs=4, schedule=schedule, step_size=1, gamma=0.5, warmup_epochs=1)
    p = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([p], cfg)
    sched = Schedule(opt, cfg, steps_per_epoch=5)
    lrs = []
    for _ in range(4):
        for _ in range(5):
            opt.step()
            sched.step_batch()
        sched.step_epoch(0.5)
        lrs.append(opt.param_groups[0]["lr"])
    assert len(set(lrs)) > 1, lrs


def test_freeze_backbone_trains_only_head(tmp_path):
    first = train_experiment(_digits_cfg(train={"epochs": 1}), tmp_path / "a")
    cfg = _digits_cfg(train={"epochs": 1, "init_from": str(first.checkpoint("best")), "freeze_backbone": True},
                      data={"train_subset": 200})
    second = train_experiment(cfg, tmp_path / "b")
    a = load_checkpoint(first.checkpoint("best"))["model"]
    b = load_checkpoint(second.checkpoint("last"))["model"]
    assert all(torch.equal(a[k], b[k]) for k in a if k.startswith("backbone."))
    assert not torch.equal(a["head.weight"], b["head.weight"])


def test_existing_folder_refused(tmp_path):
    train_experiment(_digits_cfg(train={"epochs": 1}), tmp_path / "r")
    with pytest.raises(RobustlabError, match="already exists"):
        train_experiment(_digits_cfg(train={"epochs": 1}), tmp_path / "r")
    RunDir.open(tmp_path / "r")
