"""The attack registry: names → attack classes, with their parameters and defaults."""

from __future__ import annotations

import inspect
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

ATTACKS: dict[str, type[Attack]] = {
    cls.name: cls
    for cls in (FGSM, PGD, APGDCE, APGDDLR, CWL2, DeepFool, Square, UAP, GaussianNoise, TorchattacksAttack)
}


@dataclass(frozen=True)
class AttackInfo:
    """What ``robustlab attacks`` prints for one attack: its parameters and their defaults."""

    name: str
    cls: type[Attack]
    params: dict[str, Any]
    description: str
    reference: str


def _params(cls: type[Attack]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in inspect.signature(cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[p.name] = p.default if p.default is not p.empty else "(required)"
    return out


def list_attacks() -> list[AttackInfo]:
    """Every registered attack, with its parameters (name → default), description and reference."""
    return [AttackInfo(name, cls, _params(cls), cls.description, cls.reference) for name, cls in ATTACKS.items()]


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def build_attack(name: str, **params: Any) -> Attack:
    """The attack ``name`` configured with ``params``.

    ``name`` is a registry key (case-insensitive, ``_`` or ``-``), or ``torchattacks:<Class>`` for
    the adapter. An unknown name or parameter raises :class:`RobustlabError` naming it and the
    allowed ones; bad values raise it from the attack's own checks.
    """
    if not isinstance(name, str):
        raise choice_error("attack", name, ATTACKS)
    key = _key(name)
    if key.startswith("torchattacks:"):
        return TorchattacksAttack(name.split(":", 1)[1].strip(), **params)
    if key not in ATTACKS:
        raise choice_error("attack", name, ATTACKS)
    cls = ATTACKS[key]
    if cls is TorchattacksAttack:
        if "attack" not in params:
            raise RobustlabError("attack torchattacks needs attack=<torchattacks class name>, e.g. attack=PGD")
        return TorchattacksAttack(**params)
    allowed = _params(cls)
    for p in params:
        if p not in allowed:
            raise RobustlabError(f"unknown parameter {p!r} for attack {key}; allowed: {', '.join(allowed)}")
    return cls(**params)
