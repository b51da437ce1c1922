"""Argument checks shared by every component: each raises a one-line :class:`RobustlabError` naming
the value and what is allowed."""

from __future__ import annotations

import math
from typing import Any

from robustlab.core.errors import RobustlabError


def check_number(
    name: str, value: Any, *, min: float | None = None, min_open: bool = False, max: float | None = None,
    max_open: bool = False,
) -> float:
    """``value`` as a finite float within the given bounds (``*_open``: the bound itself excluded)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and min is not None:
        ok = value > min if min_open else value >= min
    if ok and max is not None:
        ok = value < max if max_open else value <= max
    if not ok:
        parts = []
        if min is not None:
            parts.append(f"{'>' if min_open else '>='} {min:g}")
        if max is not None:
            parts.append(f"{'<' if max_open else '<='} {max:g}")
        bound = " and ".join(parts)
        raise RobustlabError(f"{name} must be a finite number{' ' + bound if bound else ''}, got {value!r}")
    return float(value)


def check_int(name: str, value: Any, *, min: int = 1) -> int:
    """``value`` as an int ``>= min``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < min:
        raise RobustlabError(f"{name} must be an integer >= {min}, got {value!r}")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` as a bool (only True/False accepted)."""
    if not isinstance(value, bool):
        raise RobustlabError(f"{name} must be true or false, got {value!r}")
    return value


def check_seed(value: Any) -> int | None:
    """A seed: an integer >= 0, or None for fresh entropy on every call."""
    if value is None:
        return None
    return check_int("seed", value, min=0)


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` as one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise RobustlabError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")
    return value
