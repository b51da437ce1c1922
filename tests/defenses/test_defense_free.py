"""Free adversarial training: m optimizer steps per batch, a persistent perturbation that resumes."""

from __future__ import annotations

import pytest
import torch
from defense_helpers import counting_step, first_batch, tiny_model

from robustlab.config import TrainConfig
from robustlab.core.checkpoint import load_checkpoint, save_checkpoint
from robustlab.data import make_loader, subset
from robustlab.defenses import build_defense
from robustlab.labs.classification.task import ClassificationTask
from robustlab.training import Trainer


def test_m_optimizer_steps_per_batch_and_delta_in_ball(digits_small):
    data = subset(digits_small, 100)  # batches of 32: 32, 32, 32, 4 (a smaller last batch)
    defense = build_defense("free", eps=0.1, replays=3)
    model = tiny_model()
    trainer = Trainer(model, ClassificationTask(10), TrainConfig(epochs=1, lr=3e-3), make_loader(data, 32),
                      strategy=defense)
    steps, _ = counting_step(trainer, model)
    trainer.fit()
    assert len(steps) == 3 * 4
    delta = defense.state_dict()["delta"]
    assert delta.shape == (32, 1, 8, 8)  # sized by the largest batch; the last batch used 4 rows
    assert delta.abs().max() <= 0.1 + 1e-6
    assert delta.abs().max() > 0.05  # it did accumulate


def test_delta_survives_a_checkpoint_round_trip(tmp_path, digits_small):
    x, y = first_batch(digits_small, 16)
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(loss):
        opt.zero_grad()
        loss.backward()
        opt.step()

    d1 = build_defense("free", eps=0.1, replays=2)
    d1.train_batch(model, x, y, ClassificationTask(10), step)
    save_checkpoint(tmp_path / "c.pt", {"defense": d1.state_dict()})  # weights_only=True on read
    d2 = build_defense("free", eps=0.1, replays=2)
    d2.load_state_dict(load_checkpoint(tmp_path / "c.pt")["defense"])
    assert torch.equal(d1.delta, d2.delta)
    # both continue identically from the restored perturbation
    model2 = tiny_model()
    model2.load_state_dict(model.state_dict())
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.01)

    def step2(loss):
        opt2.zero_grad()
        loss.backward()
        opt2.step()

    d1.train_batch(model, x, y, ClassificationTask(10), step)
    d2.train_batch(model2, x, y, ClassificationTask(10), step2)
    assert torch.allclose(d1.delta, d2.delta)


@pytest.mark.parametrize("n", [8, 24])
def test_batch_size_change_after_resume(n, digits_small):
    """A restored delta of another batch size is cut (smaller batch) or padded with zeros (larger)."""
    d = build_defense("free", eps=0.1, replays=1)
    d.load_state_dict({"delta": torch.full((16, 1, 8, 8), 0.05)})
    x, y = first_batch(digits_small, n)
    model = tiny_model()
    d.train_batch(model, x, y, ClassificationTask(10), lambda loss: loss.backward())
    assert d.delta.shape[0] == max(n, 16)
    if n > 16:
        assert d.delta[16:].abs().max() <= 0.1 + 1e-6
