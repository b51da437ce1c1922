"""The trainer's parts for every lab: gradient accumulation, EMA, step-based validation, parameter
groups, and the monitored metric's direction (from the task, never from the metric's name)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from robustlab.core.config import TrainConfig
from robustlab.core.errors import RobustlabError
from robustlab.labs.classification.task import ClassificationTask
from robustlab.training import EMA, Trainer
from robustlab.training.monitor import metric_direction
from robustlab.training.optim import build_optimizer


def _data(n: int = 64, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    return TensorDataset(x, (x[:, 0] > 0).long())


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))


def _fit(batch: int, **cfg) -> tuple[nn.Module, Trainer]:
    model = _model()
    data = _data()
    tr = Trainer(model, ClassificationTask(2), TrainConfig(optimizer="sgd", lr=0.1, momentum=0.0, **cfg),
                 DataLoader(data, batch_size=batch), DataLoader(data, batch_size=32))
    tr.fit()
    return model, tr


def test_accumulating_two_half_batches_equals_one_full_batch():
    full, a = _fit(32, epochs=2)
    halves, b = _fit(16, epochs=2, accumulate=2)
    assert a.global_step == b.global_step == 4
    for p, q in zip(full.parameters(), halves.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


def test_leftover_micro_batches_still_make_a_step():
    _, tr = _fit(16, epochs=1, accumulate=3)  # 4 micro-batches: one full window + one leftover
    assert tr.global_step == 2


def test_step_based_validation_points_and_max_steps():
    model, data = _model(), _data()  # 4 steps an epoch: max_steps 5 runs into epoch 2
    tr = Trainer(model, ClassificationTask(2), TrainConfig(optimizer="sgd", lr=0.1, max_steps=5, val_every=2),
                 DataLoader(data, batch_size=16), DataLoader(data, batch_size=32))
    hist = tr.fit().history
    assert [r["step"] for r in hist] == [2, 4, 5] and [r["epoch"] for r in hist] == [1, 1, 2]
    assert tr.global_step == 5


def test_ema_follows_its_formula_and_validates_with_the_average():
    model, data = _model(), _data()
    tr = Trainer(model, ClassificationTask(2), TrainConfig(optimizer="sgd", lr=0.1, epochs=1, ema={"decay": 0.5}),
                 DataLoader(data, batch_size=16), DataLoader(data, batch_size=32))
    ema = next(c for c in tr.callbacks if isinstance(c, EMA))
    expected = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen = []
    original = ema.after_step

    def spy(trainer):
        seen.append({n: p.detach().clone() for n, p in model.named_parameters()})
        original(trainer)

    ema.after_step = spy
    tr.fit()
    for n_step, params in enumerate(seen, start=1):
        d = min(0.5, (1 + n_step) / (10 + n_step))
        for k in expected:
            expected[k] = d * expected[k] + (1 - d) * params[k]
    for k, v in expected.items():
        assert torch.allclose(ema.shadow[k], v, atol=1e-6)
    trained = {n: p.detach().clone() for n, p in model.named_parameters()}
    with_ema = tr.validate()
    assert all(torch.equal(p, trained[n]) for n, p in model.named_parameters())  # put back afterwards
    ema.evaluate_with_ema = False
    assert tr.validate()["loss"] != with_ema["loss"]  # validation really ran on other weights


def test_parameter_groups_get_their_own_learning_rate():
    model = _model()
    opt = build_optimizer(model, TrainConfig(lr=1e-3, param_groups=[{"prefixes": ["0."], "lr": 1e-5}]))
    assert [g["lr"] for g in opt.param_groups] == [1e-5, 1e-3]
    assert len(opt.param_groups[0]["params"]) == 2 and len(opt.param_groups[1]["params"]) == 2
    with pytest.raises(RobustlabError, match="no trainable parameter starts with backbone"):
        build_optimizer(model, TrainConfig(param_groups=[{"prefixes": ["backbone."], "lr": 1e-5}]))


class _Task:
    monitor, higher_is_better = "perplexity", False
    directions = {"bleu": True}


def test_metric_direction_comes_from_the_task_not_the_name():
    assert metric_direction("val_perplexity", _Task()) is False
    assert metric_direction("val_bleu", _Task()) is True
    assert metric_direction("train_loss", _Task()) is False
    assert metric_direction("val_nelbo", _Task(), mode="min") is False
    with pytest.raises(RobustlabError, match="monitor_mode"):
        metric_direction("val_nelbo", _Task())  # not declared: no guessing from the name
