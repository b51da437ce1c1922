"""A real training process killed with SIGKILL at a random moment, then resumed with --resume,
ends with exactly the metrics and weights of a run that was never killed — also with callbacks that
carry state (EMA of the weights), gradient accumulation and step-based validation, whose checkpoints
fall in the middle of an epoch."""

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
# 41 batches of 32 per epoch, 2 per optimizer step: 21 steps an epoch; validation (and a checkpoint)
# every 15 steps, so most checkpoints are taken mid-epoch; EMA state rides in every checkpoint
VARIANTS = {
    "epochs": ([], EPOCHS),
    "ema-accumulate-steps": (["--set", "train.accumulate=2", "--set", "train.ema={decay: 0.9}",
                              "--set", "train.max_steps=90", "--set", "train.val_every=15"], 6),
}


def _train(out: Path, variant: str, *extra: str) -> subprocess.CompletedProcess:
    args = [*ARGS, *VARIANTS[variant][0]]
    return subprocess.run([sys.executable, "-m", "robustlab", "train", *args, "--out", str(out), *extra],
                          capture_output=True, text=True, env=ENV, timeout=600)


def _rows_written(run: Path) -> int:
    """Complete lines in the run's metrics log so far (0 before the first)."""
    path = run / "metrics.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _signature(run: Path):
    rows = [{k: v for k, v in r.items() if k != "seconds"} for r in read_jsonl(run / "metrics.jsonl")]
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    return rows, state["model"], state["callbacks"]


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    out = {}
    for variant in VARIANTS:
        run = tmp_path_factory.mktemp("ref") / "run"
        proc = _train(run, variant)
        assert proc.returncode == 0, proc.stderr
        out[variant] = _signature(run)
    return out


def test_step_based_reference_validates_mid_epoch(references):
    rows, _, callbacks = references["ema-accumulate-steps"]
    assert [r["step"] for r in rows] == list(range(15, 91, 15))
    assert len({r["epoch"] for r in rows}) < len(rows)  # several validation points in one epoch
    assert callbacks["ema"]["updates"] == 90


@pytest.mark.parametrize(("variant", "seed"), [("epochs", 0), ("epochs", 1),
                                               ("ema-accumulate-steps", 0), ("ema-accumulate-steps", 2)])
def test_sigkill_at_random_point_then_resume(variant, seed, references, tmp_path):
    rng = random.Random(seed)
    out = tmp_path / "run"
    args = [*ARGS, *VARIANTS[variant][0]]
    child = subprocess.Popen([sys.executable, "-m", "robustlab", "train", *args, "--out", str(out)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    total = VARIANTS[variant][1]
    # kill between validation row k and k+1 (k random), at a random point of that interval — paced by
    # the rows this machine actually writes (start-up excluded), so a fast machine cannot finish first
    k = rng.randint(2, total - 2)
    first, deadline = None, time.time() + 300
    while _rows_written(out) < k and time.time() < deadline and child.poll() is None:
        if first is None and _rows_written(out) >= 1:
            first = time.time()
        time.sleep(0.005)
    per_row = (time.time() - (first or time.time())) / (k - 1)
    time.sleep(rng.uniform(0.0, 0.9 * per_row))
    assert child.poll() is None, "training finished before the kill; the test would prove nothing"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert len(read_jsonl(out / "metrics.jsonl")) < total
    proc = _train(out, variant, "--resume")
    assert proc.returncode == 0, proc.stderr
    rows, weights, callbacks = _signature(out)
    ref_rows, ref_weights, ref_callbacks = references[variant]
    assert rows == ref_rows
    assert all(torch.equal(weights[k], ref_weights[k]) for k in ref_weights)
    for name, state in ref_callbacks.items():  # callback state (the EMA's averages) bit-exact too
        for key, value in state.items():
            if isinstance(value, dict):
                assert all(torch.equal(callbacks[name][key][t], value[t]) for t in value)
            else:
                assert callbacks[name][key] == value
