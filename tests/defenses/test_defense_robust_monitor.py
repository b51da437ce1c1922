"""Adversarial defenses keep the checkpoint with the best PGD accuracy on validation images."""

from __future__ import annotations

import pytest
import torch
from defense_helpers import tiny_model

from robustlab.attacks import build_attack
from robustlab.config import ClassificationConfig, TrainConfig, parse_config
from robustlab.core.io import read_jsonl
from robustlab.data import make_loader, subset
from robustlab.defenses import build_defense
from robustlab.defenses.robust_validation import RobustValidation
from robustlab.experiment import train_experiment
from robustlab.labs import get_lab
from robustlab.labs.classification.task import ClassificationTask
from robustlab.training import Trainer


def _trainer(defense, digits, robust_val_samples: int = 512) -> Trainer:
    """A trainer with the callbacks the classification lab gives this defense."""
    train, test = digits
    val = subset(test, indices=torch.arange(100))
    cfg = ClassificationConfig.model_validate({"train": {"robust_val_samples": robust_val_samples}})
    return Trainer(tiny_model(), ClassificationTask(10), TrainConfig(epochs=1, lr=3e-3, optimizer="adam"),
                   make_loader(subset(train, 256, seed=0), 64, shuffle=True), make_loader(val, 40),
                   strategy=defense, device=torch.device("cpu"),
                   callbacks=get_lab("classification").callbacks(cfg, defense))


def _robust(tr: Trainer) -> dict:
    cbs = [c for c in tr.callbacks if isinstance(c, RobustValidation)]
    return cbs[0].measure(tr) if cbs else {}


def test_robust_validation_is_pgd10_on_the_first_validation_images(digits):
    tr = _trainer(build_defense("pgd-at", eps=0.1, steps=2), digits, robust_val_samples=70)
    fit = tr.fit()
    assert all("val_robust_accuracy" in r for r in fit.history)
    tr.model.train()
    rng = torch.random.get_rng_state()
    got = _robust(tr)["robust_accuracy"]
    assert torch.equal(rng, torch.random.get_rng_state()) and tr.model.training  # RNG and mode untouched
    # the same attack by hand: PGD-10, alpha eps/4, seed 0, on 40 + 30 images (batches of the val loader)
    model = tr.model.eval()
    atk = build_attack("pgd", eps=0.1, alpha=0.025, steps=10, random_start=True, seed=0)
    correct = 0
    for lo, hi in ((0, 40), (40, 70)):
        xb, yb = next(iter(make_loader(subset(digits[1], indices=torch.arange(lo, hi)), hi - lo)))
        correct += int((model(atk(model, xb, yb)).argmax(1) == yb).sum())
    assert got == pytest.approx(correct / 70, abs=1e-12)


@pytest.mark.parametrize(("defense", "kw"), [("none", {}), ("noise", {"std": 0.1}), ("pgd-at", {"eps": 0.1})])
def test_robust_validation_only_for_budgeted_defenses(defense, kw, digits):
    assert bool(_robust(_trainer(build_defense(defense, **kw), digits))) == (defense == "pgd-at")
    assert _robust(_trainer(build_defense(defense, **kw), digits, robust_val_samples=0)) == {}


def test_pgd_at_run_keeps_its_most_robust_epoch(tmp_path):
    cfg = parse_config({
        "name": "at", "seed": 0, "device": "cpu",
        "data": {"dataset": "digits", "batch_size": 64, "val_fraction": 0.2, "train_subset": 600},
        "model": {"name": "small_cnn", "options": {"width": 8}},
        "train": {"epochs": 3, "lr": 3e-3, "optimizer": "adam", "robust_val_samples": 200},
        "defense": {"name": "pgd-at", "params": {"eps": 0.1, "steps": 2}},
    })
    run = train_experiment(cfg, tmp_path / "at")
    rows = read_jsonl(run.path / "metrics.jsonl")
    robust = [r["val_robust_accuracy"] for r in rows]
    assert all(0.0 <= v <= 1.0 for v in robust)
    training = run.results()["training"]
    assert training["best_epoch"] == 1 + robust.index(max(robust))
    assert training["best_val_robust_accuracy"] == pytest.approx(max(robust))
