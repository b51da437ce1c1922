"""Text for matplotlib: labels drawn literally."""

from __future__ import annotations

from collections.abc import Sequence


def plain(text: object) -> str:
    """``text`` with ``$`` escaped, so matplotlib draws it literally instead of parsing math."""
    return str(text).replace("$", r"\$")


def label_name(class_names: Sequence[str] | None, index: int) -> str:
    """``class_names[index]`` (escaped by :func:`plain`) when there is one, else ``index`` as text."""
    if class_names is not None and 0 <= index < len(class_names):
        return plain(class_names[index])
    return str(index)
