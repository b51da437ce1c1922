"""The toy lab as an installed plug-in: a ``*.dist-info`` folder whose entry point names ``toy_lab:LAB``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from robustlab.data.registry import DATASETS
from robustlab.labs import LABS

HERE = Path(__file__).resolve().parent


def write_plugin(site: Path) -> Path:
    """A minimal installed distribution in ``site`` declaring the toy lab in group ``robustlab.labs``."""
    dist = site / "robustlab_toy_lab-0.1.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: robustlab-toy-lab\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[robustlab.labs]\ntoy-parity = toy_lab:LAB\n")
    return site


@pytest.fixture
def toy_plugin(tmp_path, monkeypatch):
    """The toy lab discoverable in this process (and in subprocesses, through PYTHONPATH)."""
    site = write_plugin(tmp_path / "site")
    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.syspath_prepend(str(site))
    path = os.pathsep.join([str(site), str(HERE), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path.rstrip(os.pathsep))
    LABS.reload_entry_points()
    import toy_lab

    toy_lab.register_dataset()  # also when an earlier test imported the module already
    yield site
    LABS.unregister("toy-parity")
    DATASETS.unregister(toy_lab.INFO.name)  # other tests see only robustlab's own datasets
