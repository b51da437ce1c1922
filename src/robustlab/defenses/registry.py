"""Defense registry: names → :class:`~robustlab.defenses.base.Defense` classes."""

from __future__ import annotations

import inspect
from typing import Any

from robustlab.core.errors import RobustlabError, choice_error
from robustlab.defenses.base import Defense

DEFENSES: dict[str, type[Defense]] = {"none": Defense}


def register_defense(cls: type[Defense]) -> type[Defense]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    DEFENSES[cls.name] = cls
    return cls


def defense_params(name: str) -> dict[str, Any]:
    """The constructor parameters of defense ``name`` and their defaults."""
    sig = inspect.signature(DEFENSES[name].__init__)
    return {p: (v.default if v.default is not inspect.Parameter.empty else None)
            for p, v in sig.parameters.items() if p != "self" and v.kind is v.KEYWORD_ONLY or
            (p != "self" and v.kind is v.POSITIONAL_OR_KEYWORD)}


def build_defense(name: str, **params: Any) -> Defense:
    """Instantiate defense ``name`` with ``params``; unknown names or parameters are one-line errors."""
    if name not in DEFENSES:
        raise choice_error("defense", name, DEFENSES)
    allowed = defense_params(name)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise RobustlabError(
            f"unknown parameter {unknown[0]!r} for defense {name}; allowed: {', '.join(allowed) or '(none)'}"
        )
    try:
        return DEFENSES[name](**params)
    except (TypeError, ValueError) as e:
        raise RobustlabError(f"defense {name}: {e}") from None
