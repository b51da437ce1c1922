"""VAE / CVAE: the KL term, the reconstruction term, shapes, and label following of a trained CVAE."""

from __future__ import annotations

import math

import pytest
import torch

from robustlab.config import parse_config
from robustlab.core.errors import RobustlabError
from robustlab.labs.generative import MLPVAE, VAETask, kl_divergence, reconstruction_loss


def test_kl_matches_closed_form_and_torch_distributions():
    torch.manual_seed(0)
    mu, logvar = torch.randn(5, 3), torch.randn(5, 3)
    by_hand = torch.tensor([
        sum(0.5 * (math.exp(lv) + m * m - 1 - lv) for m, lv in zip(mu[i].tolist(), logvar[i].tolist(), strict=True))
        for i in range(5)
    ])
    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(3), torch.ones(3))
    reference = torch.distributions.kl_divergence(q, p).sum(-1)
    assert torch.allclose(kl_divergence(mu, logvar), by_hand, atol=1e-5)
    assert torch.allclose(kl_divergence(mu, logvar), reference, atol=1e-5)
    assert torch.allclose(kl_divergence(torch.zeros(2, 4), torch.zeros(2, 4)), torch.zeros(2))


def test_kl_matches_monte_carlo_estimate():
    g = torch.Generator().manual_seed(1)
    mu = torch.tensor([[0.7, -1.2]])
    logvar = torch.tensor([[-0.5, 0.4]])
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(200_000, 2, generator=g)
    q = torch.distributions.Normal(mu, std)
    p = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    terms = (q.log_prob(z) - p.log_prob(z)).sum(-1)
    estimate, stderr = terms.mean(), terms.std() / math.sqrt(terms.numel())
    assert abs(float(kl_divergence(mu, logvar)[0] - estimate)) < 4 * float(stderr) + 1e-3


def test_reconstruction_losses_sum_over_pixels():
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 3.0]]]])
    x = torch.tensor([[[[0.5, 1.0], [0.0, 0.25]]]])
    p = torch.sigmoid(logits)
    bce = -(x * p.log() + (1 - x) * (1 - p).log()).sum()
    assert torch.allclose(reconstruction_loss(logits, x, "bce"), bce.reshape(1), atol=1e-5)
    assert torch.allclose(reconstruction_loss(logits, x, "mse"), ((p - x) ** 2).sum().reshape(1), atol=1e-6)


def test_vae_and_cvae_shapes_loss_and_eval_mean():
    torch.manual_seed(0)
    x, y = torch.rand(6, 1, 8, 8), torch.arange(6) % 3
    for k in (0, 3):
        model = MLPVAE((1, 8, 8), hidden=[16, 8], latent_dim=2, num_classes=k)
        task = VAETask(conditional=k > 0, num_classes=3)
        out = task.forward(model, x, y)
        assert out.outputs.logits.shape == (6, 1, 8, 8) and out.outputs.mu.shape == (6, 2)
        assert out.loss.ndim == 0 and torch.isfinite(out.loss)
        sums = task.batch_metrics(out)
        res = task.summarize({k: float(v) for k, v in sums.items()})
        assert res["loss"] == pytest.approx(res["recon"] + res["kl"], rel=1e-5)
        assert res["nelbo"] == pytest.approx(res["loss"], rel=1e-5)
        model.eval()
        o = model(x, y if k else None)
        assert torch.equal(o.z, o.mu)
        assert model.sample(4, torch.zeros(4, dtype=torch.long) if k else None).shape == (4, 1, 8, 8)


def _cfg(task: str, **options) -> object:
    return parse_config({
        "task": task, "seed": 0, "device": "cpu",
        "data": {"dataset": "digits", "val_fraction": 0.1, "batch_size": 64},
        "model": {"name": "mlp_vae", "options": {"hidden": [64, 32], "latent_dim": 2, **options}},
        "train": {"epochs": 6, "lr": 0.005, "monitor": "val_loss"},
    })


def test_options_are_checked_with_one_line_errors(tmp_path):
    with pytest.raises(RobustlabError, match=r"unknown key 'model.options.latent_dims'"):
        _cfg("vae", latent_dims=3)
    with pytest.raises(RobustlabError, match="model.options.recon"):
        _cfg("vae", recon="l1")
    with pytest.raises(RobustlabError, match="mlp_vae"):
        parse_config({"task": "vae", "model": {"name": "resnet18"}})
    from robustlab.experiment import train_experiment

    cfg = _cfg("vae")
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"monitor": "val_accuracy", "epochs": 1})})
    with pytest.raises(RobustlabError, match="val_accuracy.*monitor_mode"):  # a VAE has no accuracy
        train_experiment(cfg, tmp_path / "run")


@pytest.mark.slow
def test_trained_cvae_samples_follow_the_requested_label(tmp_path):
    from robustlab.experiment import train_experiment
    from robustlab.pipeline import evaluate_run

    train_experiment(_cfg("cvae", samples_per_class=50), tmp_path / "cvae")
    doc = evaluate_run(tmp_path / "cvae", device="cpu")
    gen = doc["generative"]
    follow = gen["label_following"]
    assert follow["chance"] == pytest.approx(0.1)
    assert follow["accuracy"] > 0.4, follow  # chance is 0.1
    assert gen["elbo_nats"] < 0 and gen["kl_per_image"] > 0
    assert gen["elbo_nats"] == pytest.approx(-(gen["recon_per_image"] + gen["kl_per_image"]))


def test_judges_classify_separable_classes():
    from robustlab.labs.generative.judge import mlp_judge, nearest_class_mean

    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    templates = torch.rand(3, 1, 4, 4, generator=g)
    x = (templates[y] + 0.05 * torch.randn(60, 1, 4, 4, generator=g)).clamp(0, 1)
    state = torch.random.get_rng_state()
    for judge in (nearest_class_mean(x, y, 4), mlp_judge(x, y, 4, epochs=30)):
        assert torch.equal(judge(templates), torch.arange(3))  # class 3 is absent: never predicted
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is left alone
