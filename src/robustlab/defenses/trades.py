"""TRADES (Zhang et al. 2019): trade natural accuracy against robustness with a KL regulariser.

``L = CE(f(x), y) + β · KL(f(x) ‖ f(x'))`` (softmax outputs; in PyTorch's ``kl_div`` argument order
``kl_div(log_softmax(f(x')), softmax(f(x)))`` as in the reference code), with
``x' ≈ argmax_{x' ∈ ball(x, eps)} KL(f(x) ‖ f(x'))`` found by PGD on the KL objective: start at
``x + 0.001 · N(0, I)``, ``steps`` signed-gradient steps of size ``alpha`` (L2: normalised
gradient), each followed by projection onto the ball and the pixel box. That inner loop is written
here (its objective is not a classification loss, so it is not a registry attack) but reuses the
attack package's norm geometry. It runs with the model in eval mode (batch-norm statistics
untouched) and with input gradients only; the outer loss is computed in train mode with two
forward passes (clean and adversarial), as in the reference implementation.

Reference: Zhang, Yu, Jiao, Xing, El Ghaoui & Jordan, "Theoretically Principled Trade-off between
Robustness and Accuracy", ICML 2019.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.core.checks import check_int, check_number
from robustlab.defenses._common import (
    AdversarialDefense,
    accuracy_of,
    check_norm,
    classification_loss,
    resolve_eps,
    unwrap,
)
from robustlab.defenses.base import StepFn
from robustlab.defenses.registry import register_defense
from robustlab.training.task import StepOutput, Task

#: standard deviation of the random start, in pixel units (the reference code's 0.001)
START_STD = 0.001


def kl_divergence(logits_adv: torch.Tensor, logits_nat: torch.Tensor,
                  reduction: str = "batchmean") -> torch.Tensor:
    """``KL(softmax(logits_nat) ‖ softmax(logits_adv))`` in float32 (``batchmean``, ``sum`` or ``none``)."""
    kl = F.kl_div(F.log_softmax(logits_adv.float(), dim=1), F.softmax(logits_nat.float(), dim=1),
                  reduction="none").sum(dim=1)
    if reduction == "none":
        return kl
    return kl.sum() if reduction == "sum" else kl.mean()


@register_defense
class TRADES(AdversarialDefense):
    """TRADES (Zhang 2019): CE on clean inputs + β · KL between clean and adversarial predictions.

    Args:
        eps: budget in pixel units (None: 8/255 for linf, 0.5 for l2).
        beta: weight of the KL term (6.0 in the paper; larger = more robust, less accurate).
        alpha: inner step size (None: ``2.5 · eps / steps``; eps/4 with 10 steps, ~ the paper's 0.007).
        steps: inner PGD steps on the KL objective (10 in the paper's CIFAR-10 setting).
        norm: ``linf`` or ``l2``.

    Logged: ``train_ce`` and ``train_kl`` (the two parts of the loss) and ``train_adv_accuracy``;
    ``train_accuracy`` is on the clean inputs.
    """

    name = "trades"

    def __init__(self, eps: float | None = None, beta: float = 6.0, alpha: float | None = None,
                 steps: int = 10, norm: str = "linf") -> None:
        from robustlab.attacks.norms import geometry

        self.norm = check_norm(norm)
        self.geometry = geometry(self.norm)
        self.eps = resolve_eps(eps, self.norm)
        self.beta = check_number("beta", beta, min=0.0)
        self.steps = check_int("steps", steps)
        self.alpha = 2.5 * self.eps / self.steps if alpha is None else check_number("alpha", alpha, min=0.0)
        self._record(eps=self.eps, beta=self.beta, alpha=self.alpha, steps=self.steps, norm=self.norm)

    def perturb(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The inner maximisation: ``x'`` in the ball and in [0, 1] with a large KL to ``f(x)``.

        Runs ``model`` in eval mode (every submodule's flag restored afterwards) and never creates
        parameter gradients; the random start uses torch's global (checkpointed) generator.
        """
        from robustlab.core.modes import eval_mode

        x = x.detach().float()
        lo, hi = self.geometry.bounds(x, self.eps)
        with eval_mode(model), torch.enable_grad():
            with torch.no_grad():
                p_nat_logits = model(x).detach()
            delta = START_STD * torch.randn_like(x)
            delta = self.geometry.feasible(delta, self.eps, lo, hi)
            for _ in range(self.steps):
                delta.requires_grad_(True)
                loss = kl_divergence(model(x + delta), p_nat_logits, reduction="sum")
                (g,) = torch.autograd.grad(loss, delta)
                with torch.no_grad():
                    delta = delta.detach() + self.alpha * self.geometry.direction(g.float())
                    delta = self.geometry.feasible(delta, self.eps, lo, hi)
        return (x + delta.detach()).clamp_(0.0, 1.0)

    def train_batch(
        self, model: nn.Module, inputs: Any, targets: Any, task: Task, step: StepFn
    ) -> StepOutput:
        x_adv = self.perturb(unwrap(model), inputs).to(inputs.dtype)
        logits_nat = model(inputs)
        logits_adv = model(x_adv)
        ce = classification_loss(task, logits_nat, targets)
        kl = kl_divergence(logits_adv, logits_nat)
        loss = ce + self.beta * kl
        step(loss)
        return StepOutput(loss, logits_nat, targets, extras={
            "ce": ce.detach(), "kl": kl.detach(), "adv_accuracy": accuracy_of(logits_adv, targets),
        })
