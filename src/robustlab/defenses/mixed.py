"""Mixed clean/adversarial training: only part of the training data is made adversarial.

``mode="batch"`` makes a whole batch adversarial with probability ``p`` (e.g. 0.5 with FGSM at
eps 0.1), else trains on it clean. ``mode="fraction"`` instead replaces a fraction ``p`` of every
batch (chosen at random) by adversarial examples, the mix of Goodfellow et al. 2015's
``α·L(x) + (1−α)·L(x_adv)`` with α = 1 − p. The attack is any registry attack (FGSM by default),
run in eval mode; the choices come from a generator seeded with ``seed`` and checkpointed.

Reference: Goodfellow, Shlens & Szegedy, "Explaining and Harnessing Adversarial Examples", ICLR 2015.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustlab.core.checks import check_int, check_number
from robustlab.core.errors import RobustlabError
from robustlab.defenses._common import AdversarialDefense, check_norm, make_attack, resolve_eps
from robustlab.defenses.base import StepFn
from robustlab.defenses.registry import register_defense
from robustlab.training.task import StepOutput, Task

MODES = ("batch", "fraction")


@register_defense
class MixedAdversarialTraining(AdversarialDefense):
    """Mixed training: each batch adversarial with probability p, or a fraction p of every batch.

    Args:
        eps: budget in pixel units (None: 8/255 for linf, 0.5 for l2).
        p: probability that a batch is adversarial (``batch``) or fraction of each batch (``fraction``).
        mode: ``batch`` or ``fraction``.
        attack: registry attack (``fgsm``, ``pgd``, ...).
        alpha: step size for iterative attacks (None: the attack's own default, or 2.5·eps/steps).
        steps: iterations for iterative attacks (None: the attack's default).
        norm: ``linf`` or ``l2``.
        attack_params: further keyword arguments for the attack.
        seed: seed of the generator that decides which batches/examples are adversarial.

    Logged: ``train_adv_fraction`` (the share of adversarial examples actually trained on).
    """

    name = "mixed"

    def __init__(self, eps: float | None = None, p: float = 0.5, mode: str = "batch", attack: str = "fgsm",
                 alpha: float | None = None, steps: int | None = None, norm: str = "linf",
                 attack_params: dict[str, Any] | None = None, seed: int = 0) -> None:
        self.norm = check_norm(norm)
        self.eps = resolve_eps(eps, self.norm)
        self.p = check_number("p", p, min=0.0, max=1.0)
        if mode not in MODES:
            raise RobustlabError(f"unknown mode {mode!r} for defense mixed; choose one of: batch, fraction")
        self.mode = mode
        self.steps = None if steps is None else check_int("steps", steps)
        self.alpha = None if alpha is None else check_number("alpha", alpha, min=0.0)
        if self.alpha is None and self.steps is not None:
            self.alpha = 2.5 * self.eps / self.steps
        if attack_params is not None and not isinstance(attack_params, dict):
            raise RobustlabError(f"attack_params must be a mapping of attack options, got {attack_params!r}")
        self.seed = check_int("seed", seed, min=0)
        self.reseed = "seed" not in (attack_params or {})
        self.attack = make_attack(
            attack,
            {"eps": self.eps, "alpha": self.alpha, "steps": self.steps, "norm": self.norm,
             "random_start": True},
            attack_params,
        )
        self.generator = torch.Generator().manual_seed(self.seed)
        self._record(eps=self.eps, p=self.p, mode=mode, attack=attack, alpha=self.alpha, steps=self.steps,
                     norm=self.norm, attack_params=dict(attack_params or {}), seed=self.seed)

    def choose(self, n: int) -> torch.Tensor:
        """Indices (CPU, int64) of the ``n`` examples of a batch to make adversarial."""
        if self.mode == "batch":
            hit = bool(torch.rand((), generator=self.generator) < self.p)
            return torch.arange(n) if hit else torch.empty(0, dtype=torch.long)
        k = round(self.p * n)
        return torch.randperm(n, generator=self.generator)[:k].sort().values

    def train_batch(
        self, model: nn.Module, inputs: Any, targets: Any, task: Task, step: StepFn
    ) -> StepOutput:
        n = inputs.shape[0]
        idx = self.choose(n)
        x = inputs
        if idx.numel() == n:
            x = self._attack(model, inputs, targets)
        elif idx.numel():
            idx = idx.to(inputs.device)
            x = inputs.clone()
            x[idx] = self._attack(model, inputs[idx], targets[idx]).to(x.dtype)
        out = task.forward(model, x, targets)
        step(out.loss)
        frac = torch.tensor(idx.numel() / max(n, 1), device=out.loss.device)
        out.extras["adv_fraction"] = frac
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])
