"""Pieces shared by the defenses: argument checks, model unwrapping, attack construction, seeding.

Every adversarial defense builds its inner maximiser from the attack registry
(:func:`robustlab.attacks.build_attack`) and runs it on the *unwrapped* model (the module inside a
DDP or ``torch.compile`` wrapper: the attack only needs input gradients, and going through DDP's
forward without a parameter backward would leave its reducer waiting). Attacks run in eval mode and
give every submodule its own ``training`` flag back, so a frozen backbone stays in eval mode and
batch-norm statistics are never updated by an attack's forward passes.

Random starts are drawn from a fresh seed per call taken from torch's global generator: the stream
is fixed by the experiment's seed and is restored on ``--resume`` (the trainer checkpoints the
global RNG state), while consecutive batches still get different starts.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from robustlab.attacks.torchattacks_adapter import torchattacks_keywords
from robustlab.core.checks import check_number
from robustlab.core.registry import callable_params
from robustlab.defenses.base import Defense


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def check_norm(norm: Any) -> str:
    """``norm`` ∈ {linf, l2} (the attack package's geometries)."""
    from robustlab.attacks.norms import geometry

    return geometry(norm).name


def resolve_eps(eps: Any, norm: str) -> float:
    """``eps`` checked (>= 0); ``None`` gives the conventional budget (8/255 for L∞, 0.5 for L2)."""
    if eps is None:
        from robustlab.attacks.norms import default_eps

        return default_eps(norm)
    return check_number("eps", eps, min=0.0)


def next_seed() -> int:
    """A seed for one attack call, drawn from torch's global (checkpointed) generator."""
    return int(torch.randint(0, 2**31 - 1, (1,)).item())


def make_attack(name: str, defaults: dict[str, Any], overrides: dict[str, Any] | None = None) -> Any:
    """Build registry attack ``name``.

    ``defaults`` (eps, norm, alpha, steps, random_start, ...) are passed only where the attack's
    constructor accepts them (FGSM has no ``steps``; for ``torchattacks:<Class>`` the wrapped class's
    keywords count, so ``torchattacks:PGD`` gets the defense's eps, alpha and steps); ``overrides`` (the
    user's ``attack_params``) are passed as given, so a misspelt key is the attack registry's one-line error.
    """
    from robustlab.attacks import attack_class, build_attack

    accepted = set(callable_params(attack_class(name)))
    accepted |= torchattacks_keywords(name)  # the adapter passes the wrapped class's keywords on
    params = {k: v for k, v in defaults.items() if k in accepted and v is not None}
    params.update(overrides or {})
    return build_attack(name, **params)


class ParamsMixin:
    """Records the constructor arguments so :meth:`describe` can list them for config and report."""

    name: str
    _params: dict[str, Any]

    def _record(self, **params: Any) -> None:
        self._params = dict(params)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, **self._params}


class AdversarialDefense(ParamsMixin, Defense):
    """Base of the defenses whose inner maximiser is a registry attack (see the module docstring)."""

    attack: Any = None
    #: draw a fresh attack seed per batch (False when the user fixed ``attack_params.seed``)
    reseed: bool = True
    #: keep the checkpoint with the best PGD accuracy on held-out validation images (the trainer
    #: measures it, see ``train.robust_val_samples``): clean validation accuracy usually falls while
    #: robustness rises, so it would keep the least robust epoch (Rice et al. 2020 select by robust
    #: validation accuracy). Without a validation split the trainer falls back to train accuracy.
    preferred_monitor: str | None = "val_robust_accuracy"
    robust_validation: ClassVar[bool] = True

    def _attack(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: Any = None) -> torch.Tensor:
        """Adversarial examples for ``(x, y)`` made on the unwrapped model in eval mode (fresh seed)."""
        atk = attack if attack is not None else self.attack
        if self.reseed and hasattr(atk, "seed"):
            atk.seed = next_seed()
        with torch.enable_grad():
            return atk(unwrap(model), x, y).detach()


def classification_loss(task: Any, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The task's classification loss (cross-entropy with its label smoothing), or plain mean CE."""
    if task is not None and hasattr(task, "loss"):
        return task.loss(logits, y)
    return torch.nn.functional.cross_entropy(logits.float(), y)


def accuracy_of(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of rows of ``logits`` whose argmax equals ``y`` (a detached float scalar)."""
    return (logits.detach().argmax(1) == y).float().mean()
