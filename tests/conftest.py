"""Shared test setup: quiet output, one thread per worker, a small trained-run factory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("ROBUSTLAB_QUIET", "1")
# UMAP's numba functions compile once per machine instead of once per test process
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".numba_cache"))
os.environ.setdefault("MPLBACKEND", "Agg")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """Every test runs in its own folder, so default run folders never collide."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli(capsys):
    """``cli(args) -> (exit code, stderr)``: the CLI run in process (``robustlab.cli.main``)."""
    from robustlab.cli import main

    def run(args: list[str]) -> tuple[int, str]:
        code = 0
        try:
            main(args)
        except SystemExit as e:
            code = e.code or 0
        return code, capsys.readouterr().err

    return run
