"""Robust validation: PGD accuracy on held-out images at every validation point.

Adversarial training usually trades clean accuracy for robustness as it goes, so keeping the epoch
with the best clean validation accuracy keeps the least robust one; Rice et al. (2020) select by
robust validation accuracy instead. This callback adds ``val_robust_accuracy`` to the record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from robustlab.attacks import build_attack
from robustlab.core import distributed as D
from robustlab.core.modes import eval_mode
from robustlab.core.precision import autocast_context
from robustlab.defenses._common import unwrap
from robustlab.training.callbacks import Callback

if TYPE_CHECKING:
    from robustlab.training.trainer import Trainer


class RobustValidation(Callback):
    """``val_robust_accuracy``: accuracy under PGD-10 (alpha eps/4, one random start with a fixed
    seed, so epochs are compared on the same starts) on the first ``samples`` validation images
    (split over DDP ranks) at ``eps`` and ``norm``. Adds nothing without a validation split or for
    inputs that are not image batches. The model's flags, weights and the global RNG are left as
    they were."""

    name = "robust_validation"
    directions: ClassVar[dict[str, bool]] = {"robust_accuracy": True}

    def __init__(self, eps: float, norm: str = "linf", samples: int = 512) -> None:
        self.eps = float(eps)
        self.norm = norm
        self.samples = int(samples)

    def measure(self, trainer: Trainer) -> dict[str, float]:
        """``{"robust_accuracy": a}`` on the trainer's validation loader (empty when not applicable)."""
        if trainer.val_loader is None or not self.samples or not self.eps:
            return {}
        attack = build_attack("pgd", eps=self.eps, alpha=self.eps / 4, steps=10, norm=self.norm,
                              random_start=True, seed=0)
        model = unwrap(trainer.model)
        budget = -(-self.samples // D.world_size())  # this rank's share
        correct = torch.zeros((), dtype=torch.float64)
        seen = 0
        with eval_mode(model):
            for batch in trainer.val_loader:
                if seen >= budget:
                    break
                inputs, targets = trainer.task.unpack(batch, trainer.device)
                if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4:
                    return {}  # not an image classifier: nothing to attack
                take = min(budget - seen, targets.shape[0])
                x, y = inputs[:take], targets[:take]
                with autocast_context(trainer.device, trainer.cfg.amp):
                    x_adv = attack(model, x, y)
                    with torch.no_grad():
                        pred = model(x_adv).argmax(1)
                correct += (pred == y).sum().double().cpu()
                seen += take
        sums = D.all_reduce_sums({"correct": correct, "n": torch.tensor(float(seen))})
        return {"robust_accuracy": sums["correct"] / sums["n"]} if sums["n"] else {}

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> dict[str, Any]:
        for cb in trainer.callbacks:
            cb.on_validation_start(trainer)
        try:
            return {f"val_{k}": v for k, v in self.measure(trainer).items()}
        finally:
            for cb in trainer.callbacks:
                cb.on_validation_end(trainer)
