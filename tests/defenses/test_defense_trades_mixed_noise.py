"""TRADES' inner maximisation and loss, mixed training's choices, and noise training's inputs."""

from __future__ import annotations

import math

import pytest
import torch
from defense_helpers import first_batch, tiny_model, train

from robustlab.defenses import build_defense
from robustlab.defenses.trades import kl_divergence
from robustlab.labs.classification.task import ClassificationTask


# -- TRADES ------------------------------------------------------------------------------------------
def test_kl_divergence():
    z = torch.randn(5, 10)
    assert kl_divergence(z, z).item() == pytest.approx(0.0, abs=1e-6)
    p = torch.softmax(z, 1)
    q_logits = torch.randn(5, 10)
    q = torch.softmax(q_logits, 1)
    ref = (p * (p.log() - q.log())).sum(1)
    assert torch.allclose(kl_divergence(q_logits, z, reduction="none"), ref, atol=1e-5)
    assert kl_divergence(q_logits, z).item() == pytest.approx(ref.mean().item(), rel=1e-5)


@pytest.mark.parametrize(("norm", "eps"), [("linf", 0.1), ("l2", 0.5)])
def test_trades_perturbation_in_ball_and_model_untouched(norm, eps, digits_small):
    d = build_defense("trades", eps=eps, norm=norm, steps=3)
    model = tiny_model()
    model.train()
    stats = model.backbone.features[1].running_mean.clone()
    x, _ = first_batch(digits_small, 32)
    x_adv = d.perturb(model, x)
    delta = (x_adv - x).flatten(1)
    norms = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    assert norms.max() <= eps + 1e-5 and norms.max() > 0.5 * eps
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(stats, model.backbone.features[1].running_mean)


def test_trades_loss_is_ce_plus_beta_kl(digits_small):
    x, y = first_batch(digits_small, 32)
    model = tiny_model()
    losses = []
    out = build_defense("trades", eps=0.1, beta=3.0, steps=2).train_batch(
        model, x, y, ClassificationTask(10), losses.append)
    assert out.loss.item() == pytest.approx(out.extras["ce"].item() + 3.0 * out.extras["kl"].item(), rel=1e-5)
    assert losses[0] is out.loss and out.extras["kl"] >= 0


# -- mixed -----------------------------------------------------------------------------------------
def test_mixed_choices_are_seeded_and_resumable():
    a = build_defense("mixed", eps=0.1, p=0.5, seed=7)
    b = build_defense("mixed", eps=0.1, p=0.5, seed=7)
    picks = [a.choose(10).numel() for _ in range(200)]
    assert picks == [b.choose(10).numel() for _ in range(200)]
    assert set(picks) == {0, 10} and 70 < picks.count(10) < 130  # each batch adversarial with p = 0.5
    state = a.state_dict()
    nxt = [a.choose(10).numel() for _ in range(20)]
    c = build_defense("mixed", eps=0.1, p=0.5, seed=7)
    c.load_state_dict(state)
    assert [c.choose(10).numel() for _ in range(20)] == nxt
    f = build_defense("mixed", eps=0.1, p=0.25, mode="fraction")
    idx = f.choose(64)
    assert idx.numel() == 16 and idx.unique().numel() == 16


def test_mixed_fraction_only_perturbs_the_chosen_examples(digits_small):
    d = build_defense("mixed", eps=0.1, p=0.5, mode="fraction", seed=3)
    x, y = first_batch(digits_small, 20)
    seen = []
    model = tiny_model()
    handle = model.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone())
                                             if m.training else None)
    chosen = build_defense("mixed", eps=0.1, p=0.5, mode="fraction", seed=3).choose(20)
    d.train_batch(model, x, y, ClassificationTask(10), lambda loss: loss.backward())
    handle.remove()
    changed = ((seen[-1] - x).flatten(1).abs().amax(1) > 0).nonzero().squeeze(1)
    assert set(changed.tolist()) <= set(chosen.tolist()) and changed.numel() >= 8
    assert (seen[-1] - x).abs().max() <= 0.1 + 1e-6


# -- noise -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("params", "std"), [({"std": 0.1, "clip": False}, 0.1),
                                             ({"variance": 0.05, "clip": False}, math.sqrt(0.05))])
def test_noise_model_sees_noisy_inputs(params, std, digits):
    """Hook the model's input during training: input − clean image has the configured std."""
    data = digits[0]
    defense = build_defense("noise", **params)
    assert defense.std == pytest.approx(std)
    seen: list[torch.Tensor] = []
    model = tiny_model()
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()) if m.training else None)
    x, y = first_batch(data, 512)
    defense.train_batch(model, x, y, ClassificationTask(10), lambda loss: None)
    diff = seen[0] - x
    assert diff.mean().abs() < 0.01
    assert diff.std().item() == pytest.approx(std, rel=0.05)


def test_noise_default_is_variance_0_05_and_clipped(digits_small):
    d = build_defense("noise")
    assert d.std == pytest.approx(math.sqrt(0.05)) and d.clip
    seen: list[torch.Tensor] = []
    model = tiny_model()
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()) if m.training else None)
    _, _, fit = train(d, digits_small, epochs=1, model=model)
    assert seen and all(s.min() >= 0 and s.max() <= 1 for s in seen)
    assert fit.history[0]["train_loss"] > 0
