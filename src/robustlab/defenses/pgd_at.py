"""PGD adversarial training (Madry et al. 2018).

``min_θ E[max_{‖δ‖≤eps} L(f_θ(x + δ), y)]``: for every batch the inner maximisation is solved
approximately by an attack from the registry (PGD by default, any registry attack works), run with
the model in eval mode (batch-norm statistics untouched); the weights are then updated, in train
mode, on the adversarial examples only.

Adversarial fine-tuning of an existing model (e.g. 10 epochs, Adam lr 1e-4, PGD with 4 steps) is
this defense plus ``train.init_from``::

    robustlab train --init-from runs/clean/checkpoints/best.pt --defense pgd-at --eps 8/255 \\
        --set defense.params.steps=4 --epochs 10 --lr 1e-4 --optimizer adam

Reference: Madry, Makelov, Schmidt, Tsipras & Vladu, "Towards Deep Learning Models Resistant to
Adversarial Attacks", ICLR 2018.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from robustlab.core.checks import check_int, check_number
from robustlab.core.errors import RobustlabError
from robustlab.defenses._common import AdversarialDefense, check_norm, make_attack, resolve_eps
from robustlab.defenses.base import StepFn
from robustlab.defenses.registry import register_defense
from robustlab.training.task import StepOutput, Task


@register_defense
class PGDAdversarialTraining(AdversarialDefense):
    """PGD adversarial training (Madry 2018): train on the attack's adversarial examples only.

    Args:
        eps: budget in pixel units (None: 8/255 for linf, 0.5 for l2).
        alpha: step size (None: ``2.5 · eps / steps``, Madry's choice for eps 8/255 and 7 steps ≈ eps/4).
        steps: attack iterations (7 as in Madry's CIFAR-10 model; fewer is cheaper and weaker).
        norm: ``linf`` or ``l2``.
        attack: the registry attack used as inner maximiser (``pgd``, ``fgsm``, ``apgd-ce``, ...);
            ``eps``, ``alpha``, ``steps``, ``norm`` and ``random_start=True`` are passed where the
            attack accepts them.
        attack_params: further keyword arguments for the attack (override the above). The attack's
            random-start seed is redrawn for every batch from torch's global generator (seeded by
            the experiment and checkpointed), unless ``attack_params`` fixes ``seed``.

    The returned :class:`StepOutput` holds the logits on the adversarial batch, so ``train_accuracy``
    in ``metrics.jsonl`` is the accuracy on the adversarial training examples.
    """

    name = "pgd-at"

    def __init__(self, eps: float | None = None, alpha: float | None = None, steps: int = 7,
                 norm: str = "linf", attack: str = "pgd",
                 attack_params: dict[str, Any] | None = None) -> None:
        self.norm = check_norm(norm)
        self.eps = resolve_eps(eps, self.norm)
        self.steps = check_int("steps", steps)
        self.alpha = 2.5 * self.eps / self.steps if alpha is None else check_number("alpha", alpha, min=0.0)
        if attack_params is not None and not isinstance(attack_params, dict):
            raise RobustlabError(f"attack_params must be a mapping of attack options, got {attack_params!r}")
        self.attack_name = attack
        self.attack_params = dict(attack_params or {})
        self.reseed = "seed" not in (attack_params or {})
        self.attack = make_attack(
            attack,
            {"eps": self.eps, "alpha": self.alpha, "steps": self.steps, "norm": self.norm,
             "random_start": True},
            self.attack_params,
        )
        self._record(eps=self.eps, alpha=self.alpha, steps=self.steps, norm=self.norm, attack=attack,
                     attack_params=self.attack_params)

    def train_batch(
        self, model: nn.Module, inputs: Any, targets: Any, task: Task, step: StepFn
    ) -> StepOutput:
        x_adv = self._attack(model, inputs, targets)
        out = task.forward(model, x_adv, targets)
        step(out.loss)
        return out
