"""Diffusion training losses: condition dropping for guidance, the forward-process batch, and DreamBooth."""

from __future__ import annotations

import pytest
import torch

from robustlab.core.errors import RobustlabError
from robustlab.labs.diffusion.dreambooth import denoising_loss, dreambooth_loss, drop_conditions, noisy_batch

UNCOND = torch.tensor([7, 0, 0, 0, 0])


def _prompts(rows: int, seed: int = 0) -> torch.Tensor:
    """Token ids in [10, 100): no row can equal :data:`UNCOND` by chance."""
    return torch.randint(10, 100, (rows, 5), generator=torch.Generator().manual_seed(seed))


# -- drop_conditions ------------------------------------------------------------------------------------
def test_drop_conditions_replaces_about_p_of_the_rows_by_the_unconditional_prompt():
    ids = _prompts(20_000)
    before = ids.clone()
    new, dropped = drop_conditions(ids, UNCOND, 0.1, torch.Generator().manual_seed(1))
    assert new.shape == ids.shape and new.dtype == ids.dtype
    assert dropped.shape == (20_000,) and dropped.dtype == torch.bool
    assert abs(dropped.float().mean().item() - 0.1) < 0.01
    assert torch.equal(new[dropped], UNCOND.expand(int(dropped.sum()), -1))
    assert torch.equal(new[~dropped], ids[~dropped])
    assert torch.equal(ids, before)  # the input is not modified in place
    # the mask tells the truth: exactly the rows that now read as the unconditional prompt
    assert torch.equal((new == UNCOND).all(dim=1), dropped)


def test_drop_conditions_extremes():
    ids = _prompts(50)
    new, dropped = drop_conditions(ids, UNCOND, 0.0, torch.Generator().manual_seed(0))
    assert not dropped.any() and torch.equal(new, ids)
    new, dropped = drop_conditions(ids, UNCOND, 1.0, torch.Generator().manual_seed(0))
    assert dropped.all() and torch.equal(new, UNCOND.expand(50, -1))


def test_drop_conditions_is_fixed_by_the_generator_seed():
    ids = _prompts(500)
    a = drop_conditions(ids, UNCOND, 0.3, torch.Generator().manual_seed(5))
    torch.manual_seed(123)  # the global generator plays no part
    b = drop_conditions(ids, UNCOND, 0.3, torch.Generator().manual_seed(5))
    c = drop_conditions(ids, UNCOND, 0.3, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


@pytest.mark.parametrize("p, uncond", [(-0.1, UNCOND), (1.5, UNCOND), (0.1, torch.zeros(4, dtype=torch.long))])
def test_drop_conditions_rejects_bad_arguments(p, uncond):
    with pytest.raises(RobustlabError):
        drop_conditions(_prompts(3), uncond, p, torch.Generator().manual_seed(0))


# -- dreambooth_loss ------------------------------------------------------------------------------------
def _by_hand_batch() -> tuple[torch.Tensor, torch.Tensor]:
    pred = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 2.0],  # instance half
                         [1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 0.0]])  # prior half
    target = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0],
                           [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    return pred.reshape(4, 1, 2, 2), target.reshape(4, 1, 2, 2)


def test_dreambooth_loss_matches_a_hand_computation():
    pred, target = _by_hand_batch()
    # instance errors 0,1,2,3 | 0,0,0,2 -> squares 0+1+4+9+0+0+0+4 = 18 over 8 elements
    instance_by_hand = 18 / 8
    # prior errors 1,1,1,1 | 2,0,0,0 -> squares 4 + 4 = 8 over 8 elements
    prior_by_hand = 8 / 8
    loss, instance, prior = dreambooth_loss(pred, target, prior_weight=0.5)
    assert instance.item() == pytest.approx(instance_by_hand)
    assert prior.item() == pytest.approx(prior_by_hand)
    assert loss.item() == pytest.approx(instance_by_hand + 0.5 * prior_by_hand)
    assert loss.ndim == 0


def test_dreambooth_loss_without_prior_is_the_mse_of_the_whole_batch():
    pred, target = _by_hand_batch()
    loss, instance, prior = dreambooth_loss(pred, target, prior_weight=0.5, with_prior=False)
    assert loss.item() == pytest.approx((18 + 8) / 16)
    assert instance.item() == pytest.approx(loss.item()) and prior.item() == 0.0
    assert loss.item() == pytest.approx(denoising_loss(pred, target).item())
    # an odd batch is fine when all of it is instance examples
    loss3, _, _ = dreambooth_loss(pred[:3], target[:3], prior_weight=1.0, with_prior=False)
    assert loss3.item() == pytest.approx((18 + 4) / 12)


def test_dreambooth_loss_with_zero_prior_weight_is_the_instance_loss():
    pred, target = _by_hand_batch()
    pred.requires_grad_(True)
    loss, instance, _ = dreambooth_loss(pred, target, prior_weight=0.0)
    assert loss.item() == pytest.approx(18 / 8)
    loss.backward()
    assert torch.all(pred.grad[2:] == 0) and pred.grad[:2].abs().sum() > 0


def test_dreambooth_gradient_weights_the_prior_half_by_prior_weight():
    target = torch.randn(4, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    pred = (target + 1.0).requires_grad_(True)  # every error is 1
    loss, _, _ = dreambooth_loss(pred, target, prior_weight=0.5)
    loss.backward()
    half = 2 * 1 * 2 * 2  # elements per half
    instance_grad = torch.full((2, 1, 2, 2), 2.0 * 1.0 / half)  # d/dp mean((p - t)^2) = 2 (p - t) / n
    torch.testing.assert_close(pred.grad[:2], instance_grad)
    torch.testing.assert_close(pred.grad[2:], 0.5 * instance_grad)


def test_dreambooth_loss_rejects_bad_batches():
    pred, target = _by_hand_batch()
    with pytest.raises(RobustlabError) as odd:
        dreambooth_loss(pred[:3], target[:3], prior_weight=1.0)
    assert "odd" in str(odd.value) and "\n" not in str(odd.value)
    with pytest.raises(RobustlabError):
        dreambooth_loss(pred, target[:2], prior_weight=1.0)
    with pytest.raises(RobustlabError):
        dreambooth_loss(pred, target, prior_weight=-1.0)


# -- noisy_batch / denoising_loss -----------------------------------------------------------------------
def test_noisy_batch_follows_the_forward_process():
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=1000)
    x0 = torch.randn(400, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    noisy, noise, t = noisy_batch(scheduler, x0, torch.Generator().manual_seed(1))
    assert noisy.shape == noise.shape == x0.shape and t.shape == (400,)
    assert t.dtype == torch.long
    assert int(t.min()) >= 0 and int(t.max()) < 1000
    assert int(t.min()) < 100 and int(t.max()) > 900  # spread over the whole range, not a constant
    assert abs(noise.mean().item()) < 0.15 and abs(noise.std().item() - 1.0) < 0.1
    abar = scheduler.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    torch.testing.assert_close(noisy, abar.sqrt() * x0 + (1 - abar).sqrt() * noise)
    again = noisy_batch(scheduler, x0, torch.Generator().manual_seed(1))
    assert torch.equal(again[0], noisy) and torch.equal(again[2], t)


def test_denoising_loss_is_the_mean_squared_error():
    pred = torch.tensor([[1.0, -1.0], [3.0, 0.0]])
    noise = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    assert denoising_loss(pred, noise).item() == pytest.approx((1 + 1 + 4 + 0) / 4)
    with pytest.raises(RobustlabError):
        denoising_loss(pred, noise[:1])
