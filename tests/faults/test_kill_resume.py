"""A real training process killed with SIGKILL at a random moment, then resumed with --resume,
ends with exactly the metrics and weights of a run that was never killed."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from robustlab.core.checkpoint import load_checkpoint
from robustlab.core.io import read_jsonl

EPOCHS = 10
ARGS = ["--dataset", "digits", "--model", "small_cnn", "--epochs", str(EPOCHS), "--seed", "7", "--batch-size", "32",
        "--set", "model.options.width=8", "--quiet"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "ROBUSTLAB_QUIET": "1"}


def _train(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robustlab", "train", *ARGS, "--out", str(out), *extra],
                          capture_output=True, text=True, env=ENV, timeout=600)


def _signature(run: Path):
    rows = [{k: v for k, v in r.items() if k != "seconds"} for r in read_jsonl(run / "metrics.jsonl")]
    weights = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    return rows, weights


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    proc = _train(out)
    assert proc.returncode == 0, proc.stderr
    return _signature(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_at_random_point_then_resume(seed, reference, tmp_path):
    rng = random.Random(seed)
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-m", "robustlab", "train", *ARGS, "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    deadline = time.time() + 120
    while not (out / "config.yaml").exists() and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
    time.sleep(rng.uniform(0.2, 3.0))  # somewhere inside the epochs (or during a checkpoint write)
    assert child.poll() is None, "training finished before the kill; the test would prove nothing"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert len(read_jsonl(out / "metrics.jsonl")) < EPOCHS
    proc = _train(out, "--resume")
    assert proc.returncode == 0, proc.stderr
    rows, weights = _signature(out)
    ref_rows, ref_weights = reference
    assert rows == ref_rows
    assert all(torch.equal(weights[k], ref_weights[k]) for k in ref_weights)
