"""Defense registry: names → :class:`~robustlab.defenses.base.Defense` classes.

:data:`DEFENSES` is a :class:`~robustlab.core.registry.Registry`; names are matched by
:func:`robustlab.core.names.normalize` (case-insensitive, ``_`` = ``-``).
"""

from __future__ import annotations

from typing import Any

from robustlab.core.errors import RobustlabError
from robustlab.core.registry import Registry, callable_params
from robustlab.defenses.base import Defense

DEFENSES: Registry[type[Defense]] = Registry("defense")
DEFENSES.register(Defense.name, Defense)


def register_defense(cls: type[Defense]) -> type[Defense]:
    """Class decorator: make ``cls`` available under ``cls.name`` (a second class under the same name
    is an error)."""
    DEFENSES.register(cls.name, cls)
    return cls


def defense_params(name: str) -> dict[str, Any]:
    """The constructor parameters of defense ``name`` and their defaults (``None`` where required);
    an unknown name is the one-line error listing the choices."""
    return DEFENSES.params(name)


def build_defense(name: str, **params: Any) -> Defense:
    """Instantiate defense ``name`` with ``params``; unknown names or parameters are one-line errors."""
    cls = DEFENSES.get(name)
    key = DEFENSES.key(name)
    allowed = callable_params(cls)
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise RobustlabError(
            f"unknown parameter {unknown[0]!r} for defense {key}; allowed: {', '.join(allowed) or '(none)'}"
        )
    try:
        return cls(**params)
    except (TypeError, ValueError) as e:
        raise RobustlabError(f"defense {key}: {e}") from None
