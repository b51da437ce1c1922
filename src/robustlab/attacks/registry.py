"""The attack registry: names → attack classes, with their parameters and defaults.

:data:`ATTACKS` is a :class:`~robustlab.core.registry.Registry` keyed by each class's ``name``;
names are matched by :func:`robustlab.core.names.normalize` (case-insensitive, ``_`` = ``-``).
``torchattacks:<Class>`` names the torchattacks adapter wrapping ``<Class>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robustlab.attacks.apgd import APGDCE, APGDDLR
from robustlab.attacks.base import Attack
from robustlab.attacks.cw import CWL2
from robustlab.attacks.deepfool import DeepFool
from robustlab.attacks.fgsm import FGSM
from robustlab.attacks.noise import GaussianNoise
from robustlab.attacks.pgd import PGD
from robustlab.attacks.square import Square
from robustlab.attacks.torchattacks_adapter import TorchattacksAttack
from robustlab.attacks.uap import UAP
from robustlab.core.errors import RobustlabError, choice_error
from robustlab.core.names import normalize
from robustlab.core.registry import Registry, callable_params

ATTACKS: Registry[type[Attack]] = Registry("attack")
for _cls in (FGSM, PGD, APGDCE, APGDDLR, CWL2, DeepFool, Square, UAP, GaussianNoise, TorchattacksAttack):
    ATTACKS.register(_cls.name, _cls)
del _cls

TORCHATTACKS_PREFIX = "torchattacks:"


@dataclass(frozen=True)
class AttackInfo:
    """What ``robustlab attacks`` prints for one attack: its parameters and their defaults."""

    name: str
    cls: type[Attack]
    params: dict[str, Any]
    description: str
    reference: str


def list_attacks() -> list[AttackInfo]:
    """Every registered attack, sorted by name, with its parameters (name → default, ``"(required)"``
    for a parameter without one), description and reference."""
    return [
        AttackInfo(name, cls, callable_params(cls, required="(required)"), cls.description, cls.reference)
        for name, cls in ATTACKS.items()
    ]


def attack_class(name: str) -> type[Attack]:
    """The class :func:`build_attack` instantiates for ``name`` (matched like the registry does;
    ``torchattacks:<Class>`` gives the adapter). An unknown name raises the one-line
    :class:`RobustlabError` listing the choices."""
    if not isinstance(name, str):
        raise choice_error("attack", name, ATTACKS)
    if normalize(name).startswith(TORCHATTACKS_PREFIX):
        return TorchattacksAttack
    return ATTACKS.get(name)


def build_attack(name: str, **params: Any) -> Attack:
    """The attack ``name`` configured with ``params``.

    ``name`` is a registry key (case-insensitive, ``_`` or ``-``), or ``torchattacks:<Class>`` for
    the adapter. An unknown name or parameter raises :class:`RobustlabError` naming it and the
    allowed ones; bad values raise it from the attack's own checks.
    """
    cls = attack_class(name)
    key = normalize(name)
    if key.startswith(TORCHATTACKS_PREFIX):
        return TorchattacksAttack(key[len(TORCHATTACKS_PREFIX):], **params)
    if cls is TorchattacksAttack:
        if "attack" not in params:
            raise RobustlabError("attack torchattacks needs attack=<torchattacks class name>, e.g. attack=PGD")
        return TorchattacksAttack(**params)
    allowed = callable_params(cls)
    for p in params:
        if p not in allowed:
            raise RobustlabError(f"unknown parameter {p!r} for attack {key}; allowed: {', '.join(allowed)}")
    return cls(**params)
