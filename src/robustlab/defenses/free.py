"""Free adversarial training (Shafahi et al. 2019): adversarial examples for (almost) free.

Every minibatch is replayed ``replays`` (m) times. Each replay does **one** forward on
``x + δ`` (train mode) and **one** backward, whose gradients serve twice: the parameter gradients
feed the optimizer step, and the input gradient updates the perturbation,
``δ ← Π_ball(δ + alpha · sign(∇_δ L))`` (L2: the normalised gradient). ``δ`` persists across
replays *and* across minibatches, which is what lets it accumulate into a strong attack.

Because each minibatch costs m optimizer steps, divide the number of epochs by m to keep the same
number of gradient computations as natural training (the paper trains CIFAR-10 for 205/8 ≈ 26
epochs with m = 8). The learning-rate schedule still steps once per minibatch.

The perturbation is part of :meth:`FreeAdversarialTraining.state_dict`, so ``--resume`` continues
with it. When a batch is smaller (the last one of an epoch) the first rows of ``δ`` are used and the
others kept; a larger batch (e.g. after resuming with a bigger batch size) gets zero rows appended.

Reference: Shafahi, Najibi, Ghiasi, Xu, Dickerson, Studer, Davis, Taylor & Goldstein,
"Adversarial Training for Free!", NeurIPS 2019.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustlab.core.checks import check_int, check_number
from robustlab.defenses._common import AdversarialDefense, check_norm, resolve_eps
from robustlab.defenses.base import StepFn
from robustlab.defenses.registry import register_defense
from robustlab.training.task import StepOutput, Task


@register_defense
class FreeAdversarialTraining(AdversarialDefense):
    """Free adversarial training (Shafahi 2019): m replays per batch, one backward each, persistent δ.

    Args:
        eps: budget in pixel units (None: 8/255 for linf, 0.5 for l2).
        replays: m, the number of times each minibatch is replayed (= optimizer steps per batch).
        alpha: perturbation step size (None: ``eps``, the paper's choice).
        norm: ``linf`` or ``l2``.

    Divide the epochs by ``replays`` (see the module docstring). ``train_accuracy`` is measured on
    the last replay's adversarial inputs.
    """

    name = "free"

    def __init__(self, eps: float | None = None, replays: int = 4, alpha: float | None = None,
                 norm: str = "linf") -> None:
        from robustlab.attacks.norms import geometry

        self.norm = check_norm(norm)
        self.geometry = geometry(self.norm)
        self.eps = resolve_eps(eps, self.norm)
        self.replays = check_int("replays", replays)
        self.alpha = self.eps if alpha is None else check_number("alpha", alpha, min=0.0)
        self.delta: torch.Tensor | None = None
        self._record(eps=self.eps, replays=self.replays, alpha=self.alpha, norm=self.norm)

    def _delta_for(self, x: torch.Tensor) -> torch.Tensor:
        """The persistent perturbation sized for batch ``x`` (rows kept, or zero rows appended)."""
        n = x.shape[0]
        d = self.delta
        if d is None or d.shape[1:] != x.shape[1:]:
            d = torch.zeros_like(x, dtype=torch.float32)
        d = d.to(device=x.device, dtype=torch.float32)
        if d.shape[0] < n:
            d = torch.cat([d, d.new_zeros((n - d.shape[0], *d.shape[1:]))])
        self.delta = d
        return d[:n]

    def train_batch(
        self, model: nn.Module, inputs: Any, targets: Any, task: Task, step: StepFn
    ) -> StepOutput:
        x = inputs.detach()
        n = x.shape[0]
        lo, hi = self.geometry.bounds(x.float(), self.eps)
        delta = self._delta_for(x).clone()
        out: StepOutput | None = None
        for _ in range(self.replays):
            d = self.geometry.feasible(delta, self.eps, lo, hi).requires_grad_(True)
            out = task.forward(model, (x + d).to(x.dtype), targets)
            step(out.loss)  # one backward: parameter grads for the step, d.grad for the perturbation
            g = d.grad
            with torch.no_grad():
                if g is not None and bool(torch.isfinite(g).all()):
                    delta = d.detach() + self.alpha * self.geometry.direction(g.float())
                else:  # no input gradient (or an AMP overflow): keep the perturbation
                    delta = d.detach()
                delta = self.geometry.feasible(delta, self.eps, lo, hi)
        assert self.delta is not None and out is not None
        self.delta[:n] = delta.detach()
        return out

    def state_dict(self) -> dict[str, Any]:
        return {} if self.delta is None else {"delta": self.delta.detach().cpu()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.delta = state.get("delta")
