"""Fixtures for the defense tests (helpers live in ``defense_helpers``): digits, one CPU thread."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from robustlab.data import load_dataset, subset

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits() -> tuple[Any, Any]:
    """(train, test) splits of digits (1,437 / 360 images)."""
    return load_dataset("digits", "train"), load_dataset("digits", "test")


@pytest.fixture(scope="session")
def digits_small(digits) -> Any:
    """A seeded 256-image subset of the digits training split (for mechanics tests)."""
    return subset(digits[0], 256, seed=0)
