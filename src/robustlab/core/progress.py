"""Progress bars and status logging.

Bars show on a terminal and stay silent in CI logs (no TTY, ``CI`` set, or ``--quiet``).
Status lines go through :mod:`logging` under the ``robustlab`` logger, never ``print``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
log = logging.getLogger("robustlab")

_quiet: bool = False


def set_quiet(quiet: bool) -> None:
    """Silence (or re-enable) progress bars process-wide."""
    global _quiet
    _quiet = quiet


def bars_enabled() -> bool:
    """True when progress bars should be drawn (a terminal, not CI, not quiet)."""
    if _quiet or os.environ.get("CI") or os.environ.get("ROBUSTLAB_QUIET"):
        return False
    return sys.stderr.isatty()


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, leave: bool = False) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar when bars are enabled; otherwise return it unchanged."""
    if not bars_enabled():
        yield from iterable
        return
    yield from tqdm(iterable, desc=desc, total=total, leave=leave, dynamic_ncols=True)


class _CurrentStderr(logging.StreamHandler):
    """A stream handler writing to whatever ``sys.stderr`` is when a line is logged, so that a later
    redirection (``contextlib.redirect_stderr``, pytest's capture) is honoured and a replaced,
    since closed stream is never written to."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging(level: int = logging.INFO) -> None:
    """Send robustlab's status lines to the current stderr as ``robustlab: message``."""
    if log.handlers:
        log.setLevel(level)
        return
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("robustlab: %(message)s"))
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


class _SilentBar:
    """Stands in for a tqdm bar when bars are disabled."""

    def __init__(self, iterable: Iterable[T]) -> None:
        self._it = iterable

    def __iter__(self) -> Iterator[T]:
        return iter(self._it)

    def set_postfix(self, *args: object, **kwargs: object) -> None:
        pass

    def close(self) -> None:
        pass


def bar(iterable: Iterable[T], desc: str = "", total: int | None = None, leave: bool = False):
    """A tqdm bar (with ``set_postfix``) on a terminal, a silent stand-in elsewhere."""
    if not bars_enabled():
        return _SilentBar(iterable)
    return tqdm(iterable, desc=desc, total=total, leave=leave, dynamic_ncols=True)
