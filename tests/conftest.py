"""Shared test setup: quiet output, one thread per worker, a small trained-run factory."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("ROBUSTLAB_QUIET", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """Every test runs in its own folder, so default run folders never collide."""
    monkeypatch.chdir(tmp_path)
