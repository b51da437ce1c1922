"""Module-mode hygiene: eval mode for a while, then every submodule's own flag back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from torch import nn


@contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Put ``model`` in eval mode and restore every submodule's own ``training`` flag afterwards.

    A plain ``was = model.training; model.eval(); ...; model.train(was)`` flattens a frozen
    backbone's eval flag back to train; this does not. Objects that are not modules pass through."""
    if not isinstance(model, nn.Module):
        yield
        return
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
