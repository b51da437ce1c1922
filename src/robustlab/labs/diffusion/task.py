"""The training task of a text-conditional diffusion model: ε-prediction MSE with condition dropout
(base stage), or DreamBooth's instance + prior-preservation loss (dreambooth stage). Noise, timesteps
and dropped prompts are drawn from the global RNG (seeded and checkpointed by the trainer); a
validation pass draws them from a fixed seed, so successive validations compare like with like."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from robustlab.labs.diffusion.dreambooth import denoising_loss, dreambooth_loss, drop_conditions, noisy_batch
from robustlab.training.task import StepOutput

VALIDATION_SEED = 20_231_113


def _generator(model: nn.Module, device: torch.device) -> torch.Generator:
    seed = int(torch.randint(0, 2**62, (1,))) if model.training else VALIDATION_SEED
    return torch.Generator(device=device).manual_seed(seed)


class DiffusionTask:
    """Batches ``(images (B, C, H, W) in [−1, 1], ids (B, L))`` (base) or ``(instance images, ids, class
    images, class ids)`` (dreambooth, concatenated instance first); ``p_uncond`` of the base prompts are
    replaced by ``uncond_ids``; DreamBooth's loss weighs the class half by ``prior_weight``."""

    name = "diffusion"
    monitor = "loss"
    higher_is_better = False
    directions: ClassVar[dict[str, bool]] = {"instance_loss": False, "prior_loss": False}

    def __init__(self, uncond_ids: torch.Tensor, p_uncond: float, dreambooth: bool = False,
                 prior_weight: float = 1.0) -> None:
        self.uncond_ids, self.p_uncond = uncond_ids, p_uncond
        self.dreambooth, self.prior_weight = dreambooth, prior_weight

    def unpack(self, batch: Any, device: torch.device) -> tuple[tuple[torch.Tensor, torch.Tensor, bool], None]:
        if self.dreambooth:
            xi, ids_i, xp, ids_p = batch
            with_prior = len(xp) > 0
            x, ids = (torch.cat([xi, xp]), torch.cat([ids_i, ids_p])) if with_prior else (xi, ids_i)
            return (x.to(device), ids.to(device), with_prior), None
        x, ids = batch
        return (x.to(device), ids.to(device), False), None

    def forward(self, model: nn.Module, inputs: tuple[torch.Tensor, torch.Tensor, bool], targets: None) -> StepOutput:
        x, ids, with_prior = inputs
        g = _generator(model, x.device)
        if not self.dreambooth and model.training and self.p_uncond > 0:
            ids, _ = drop_conditions(ids, self.uncond_ids.to(ids.device), self.p_uncond, g)
        noisy, noise, t = noisy_batch(model.noise_scheduler, model.to_latents(x), g)
        pred = model(noisy, t, ids)
        if not self.dreambooth:
            return StepOutput(denoising_loss(pred, noise), None, noise)
        loss, instance, prior = dreambooth_loss(pred, noise, self.prior_weight, with_prior=with_prior)
        return StepOutput(loss, None, noise, extras={"instance_loss": instance.detach(), "prior_loss": prior.detach()})

    def batch_metrics(self, out: StepOutput) -> dict[str, torch.Tensor]:
        n = out.targets.shape[0]
        sums = {"loss": out.loss.detach().float() * n, "count": torch.tensor(float(n))}
        for k, v in out.extras.items():
            sums[k] = v.float() * n
        return sums

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums.get("count", 0.0), 1.0)
        return {k: v / n for k, v in sums.items() if k != "count"}
