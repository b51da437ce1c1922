"""How numbers read in reports: accuracies as percentages with two decimals, eps as a float and,
for L∞ on 8-bit images, as k/255."""

from __future__ import annotations

import math
from typing import Any

MISSING = "—"


def is_number(v: Any) -> bool:
    """True for a finite int or float (bools excluded)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def pct(v: Any) -> str:
    """A fraction in [0, 1] as a percentage with two decimals (``0.9123`` → ``"91.23%"``); ``—`` if absent."""
    return f"{100.0 * v:.2f}%" if is_number(v) else MISSING


def num(v: Any, digits: int = 4) -> str:
    """A plain number with ``digits`` significant digits (``—`` if absent)."""
    if not is_number(v):
        return MISSING
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:.{digits}g}"


def seconds(v: Any) -> str:
    """Seconds as ``"12.3 s"``, ``"4 min 05 s"`` or ``"1 h 02 min"``."""
    if not is_number(v):
        return MISSING
    v = float(v)
    if v < 60:
        return f"{v:.1f} s"
    if v < 3600:
        return f"{int(v // 60)} min {int(v % 60):02d} s"
    return f"{int(v // 3600)} h {int(v % 3600 // 60):02d} min"


def eps_255(eps: float, eps255: Any = None) -> str:
    """``eps`` in units of 1/255: ``"8/255"`` when it is (nearly) a whole number, else ``"8.2/255"``."""
    k = float(eps255) if is_number(eps255) else float(eps) * 255.0
    if abs(k - round(k)) < 0.02:
        return f"{round(k)}/255"
    return f"{k:.1f}/255"


def eps_label(eps: Any, norm: str | None = "linf", eps255: Any = None) -> str:
    """eps as a float, plus ``(k/255)`` for L∞: ``"0.03137 (8/255)"``; L2 budgets are plain floats."""
    if not is_number(eps):
        return MISSING if eps is None else str(eps)
    text = f"{float(eps):.4g}"
    if (norm or "linf") == "linf" and eps > 0:
        text += f" ({eps_255(eps, eps255)})"
    return text


def norm_label(norm: str | None) -> str:
    """``linf`` → ``L∞``, ``l2`` → ``L2``; anything else as is."""
    return {"linf": "L∞", "l2": "L2", "l1": "L1", "l0": "L0"}.get(str(norm), str(norm or ""))
