"""User-facing errors.

A :class:`RobustlabError` carries one line that names the bad value and what is allowed. The CLI
prints it without a traceback and exits with code 2. It subclasses :class:`ValueError` so library
callers can catch bad arguments the usual way.
"""

from __future__ import annotations

from collections.abc import Iterable


class RobustlabError(ValueError):
    """A problem with the user's input or environment, explained in one line."""


def choice_error(kind: str, value: object, choices: Iterable[str]) -> RobustlabError:
    """Build the standard 'unknown X' error: ``unknown model 'nope'; choose one of: a, b, c``."""
    return RobustlabError(f"unknown {kind} {value!r}; choose one of: {', '.join(sorted(choices))}")
