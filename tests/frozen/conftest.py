"""Shared setup of the frozen-features tests: no hub access, and tiny saved DINOv2 weights."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from functools import partial  # noqa: E402

import pytest  # noqa: E402
from frozen_helpers import save_tiny_weights  # noqa: E402


@pytest.fixture
def tiny_weights(tmp_path):
    """``make(arch, fmt, size=56, seed=1, **widths) -> (path, model)``: see :func:`save_tiny_weights`."""
    return partial(save_tiny_weights, tmp_path)
