"""FGSM with random start: the perturbation, the guard metrics and the catastrophic-overfitting stop."""

from __future__ import annotations

import pytest
import torch
from defense_helpers import first_batch, tiny_model, train

from robustlab.core.checkpoint import load_checkpoint, save_checkpoint
from robustlab.defenses import FGSMRandomStart, build_defense, detect_collapse
from robustlab.defenses.fgsm_rs import COLLAPSE_FLOOR


@pytest.mark.parametrize(
    ("pgd", "best", "clean", "ratio", "collapsed"),
    [
        (0.40, 0.45, 0.9, 0.5, False),  # normal fluctuation
        (0.20, 0.45, 0.9, 0.5, True),  # below half the best
        (0.00, None, 0.95, 0.5, True),  # ~0 robust accuracy while clean is high (first epoch)
        (0.00, None, 0.20, 0.5, False),  # ~0 but the model is not trained yet
        (0.02, 0.03, 0.30, 0.5, False),  # noise around zero early on does not trigger the ratio rule
        (0.30, 0.45, 0.9, 0.8, True),  # a stricter ratio
        (COLLAPSE_FLOOR, 0.5, 0.9, 0.0, True),
    ],
)
def test_detect_collapse(pgd, best, clean, ratio, collapsed):
    assert detect_collapse(pgd, best, clean, ratio) is collapsed


def test_perturbation_in_ball_and_model_untouched(digits_small):
    d = build_defense("fgsm-rs", eps=0.1)
    model = tiny_model()
    model.train()
    x, y = first_batch(digits_small, 32)
    stats = model.backbone.features[1].running_mean.clone()
    x_adv = d.perturb(model, x, y)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > 0.09  # the 1.25·eps step reaches the boundary
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(stats, model.backbone.features[1].running_mean)


class _Scripted(FGSMRandomStart):
    """The guard's numbers are scripted: robust accuracy collapses at the third epoch."""

    name = "fgsm-rs"
    script = [(0.90, 0.50), (0.93, 0.55), (0.99, 0.01), (0.99, 0.0), (0.99, 0.0)]

    def guard_accuracy(self, model):
        return self.script.pop(0)


def test_collapse_stops_training_and_best_is_before_it(digits_small):
    defense = _Scripted(eps=0.1, guard_batch=16)
    _, trainer, fit = train(defense, digits_small, epochs=5, monitor="guard_pgd_accuracy")
    assert fit.stopped_early and fit.epochs_run == 3
    assert [r["guard_pgd_accuracy"] for r in fit.history] == [0.50, 0.55, 0.01]
    assert [r["guard_collapsed"] for r in fit.history] == [0.0, 0.0, 1.0]
    assert fit.best_epoch == 2  # best.pt (monitor guard_pgd_accuracy) is the model before the collapse


def test_guard_batch_collected_and_checkpointed(tmp_path, digits_small):
    defense = build_defense("fgsm-rs", eps=0.1, guard_batch=100)
    _, _, fit = train(defense, digits_small, epochs=1, batch_size=64)
    state = defense.state_dict()
    assert state["guard_x"].shape == (100, 1, 8, 8) and state["guard_y"].shape == (100,)
    assert state["best_guard"] == pytest.approx(fit.history[-1]["guard_pgd_accuracy"])
    save_checkpoint(tmp_path / "c.pt", {"defense": state})  # read back with weights_only=True
    again = build_defense("fgsm-rs", eps=0.1, guard_batch=100)
    again.load_state_dict(load_checkpoint(tmp_path / "c.pt")["defense"])
    assert torch.equal(again.state_dict()["guard_x"], state["guard_x"])
    assert again.best_guard == state["best_guard"]
