"""Each strategy through the real Trainer: model modes, batch-norm statistics, metrics.

Batch-norm layers count their forward calls by mode: the number of train-mode calls must equal the
number of *update* forwards (1 per batch, 2 for TRADES, m for free), so no attack forward pass ever
ran in train mode (which would update the running statistics).
"""

from __future__ import annotations

import pytest
import torch
from defense_helpers import BNCounter, counting_step, tiny_model
from torch import nn

from robustlab.config import TrainConfig
from robustlab.data import make_loader
from robustlab.defenses import build_defense
from robustlab.labs.classification.task import ClassificationTask
from robustlab.training import Trainer

CASES = [
    # name, params, train-mode forwards per batch, attack runs (eval-mode forwards expected)
    ("none", {}, 1, False),
    ("noise", {"std": 0.1}, 1, False),
    ("pgd-at", {"eps": 0.1, "steps": 3}, 1, True),
    ("fgsm-rs", {"eps": 0.1, "guard_batch": 32}, 1, True),
    ("free", {"eps": 0.1, "replays": 3}, 3, False),
    ("trades", {"eps": 0.1, "steps": 2}, 2, True),
    ("mixed", {"eps": 0.1, "p": 1.0}, 1, True),
    ("mixed", {"eps": 0.1, "p": 0.5, "mode": "fraction"}, 1, True),
    ("circle", {}, 1, False),
]


def _trainer(defense, data, epochs=1, batch_size=64, **cfg):
    model = tiny_model()
    tcfg = TrainConfig(epochs=epochs, lr=3e-3, **cfg)
    loader = make_loader(data, batch_size, shuffle=True, seed=0)
    return model, Trainer(model, ClassificationTask(10), tcfg, loader, strategy=defense)


@pytest.mark.parametrize(("name", "params", "per_batch", "attacks"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_modes_bn_statistics_and_metrics(name, params, per_batch, attacks, digits_small):
    defense = build_defense(name, **params)
    model, trainer = _trainer(defense, digits_small)
    modes, _ = counting_step(trainer, model)
    after_batch: list[bool] = []
    inner = defense.train_batch

    def wrapped(*args, **kwargs):
        out = inner(*args, **kwargs)
        after_batch.append(all(m.training for m in model.modules()))
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
        return out

    defense.train_batch = wrapped  # type: ignore[method-assign]
    bn = BNCounter(model)
    batches = len(trainer.train_loader)
    fit = trainer.fit()
    bn.close()
    assert bn.train_calls == per_batch * batches
    assert len(modes) == batches * (defense.replays if name == "free" else 1)  # optimizer steps
    assert all(modes) and all(after_batch) and len(after_batch) == batches
    if attacks:
        assert bn.eval_calls > 0
    record = fit.history[-1]
    assert 0.0 <= record["train_accuracy"] <= 1.0 and record["train_loss"] == record["train_loss"]
    if name == "fgsm-rs":
        assert 0.0 <= record["guard_pgd_accuracy"] <= record["guard_clean_accuracy"] + 1e-9 <= 1.0 + 1e-9
    if name == "trades":
        assert {"train_ce", "train_kl", "train_adv_accuracy"} <= set(record)
    if name == "mixed":
        expected = 0.5 if params.get("mode") == "fraction" else 1.0
        assert record["train_adv_fraction"] == pytest.approx(expected)
    if name == "circle":
        assert {"train_circle", "train_ce"} <= set(record)


@pytest.mark.parametrize("name", ["pgd-at", "fgsm-rs", "free", "trades"])
def test_frozen_backbone_keeps_its_statistics(name, digits_small):
    """With train.freeze_backbone the backbone stays in eval mode (before and after every attack)."""
    params = {"eps": 0.1, "steps": 2} if name in ("pgd-at", "trades") else {"eps": 0.1}
    defense = build_defense(name, **params)
    model, trainer = _trainer(defense, digits_small, freeze_backbone=True)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    backbone_modes: list[bool] = []
    inner = trainer._step

    def step(loss):
        backbone_modes.append(any(m.training for m in model.backbone.modules()))
        assert model.head.training
        inner(loss)

    trainer._step = step  # type: ignore[method-assign]
    trainer.fit()
    assert backbone_modes and not any(backbone_modes)
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_attack_runs_on_the_unwrapped_model():
    """The inner attack gets the module inside a wrapper (DDP / torch.compile), not the wrapper."""
    from robustlab.defenses._common import unwrap

    inner = tiny_model()

    class Wrapper(nn.Module):
        def __init__(self, m):
            super().__init__()
            self._orig_mod = m

        def forward(self, x):
            return self._orig_mod(x)

    assert unwrap(Wrapper(inner)) is inner
    assert unwrap(inner) is inner
