"""torchrun with 2 CPU processes (gloo) trains exactly like one process on the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from robustlab.checkpoint import load_checkpoint
from robustlab.io import read_json, read_jsonl

pytestmark = pytest.mark.ddp
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "ROBUSTLAB_QUIET": "1"}
# 640 training images, no validation split, BN off (per-rank batch statistics would differ by design)
COMMON = ["train", "--dataset", "digits", "--model", "small_cnn", "--epochs", "2", "--seed", "5",
          "--train-subset", "640", "--val-fraction", "0", "--set", "model.batchnorm=false",
          "--set", "model.options.width=8", "--set", "train.monitor=train_accuracy", "--quiet"]


def _run(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "robustlab", *args], capture_output=True, text=True, env=ENV,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_process_training_matches_one(tmp_path):
    _run([*COMMON, "--batch-size", "64", "--out", str(tmp_path / "single")])
    _run([*COMMON, "--batch-size", "32", "--nproc", "2", "--out", str(tmp_path / "ddp")])
    a = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")["model"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    ma, mb = read_jsonl(tmp_path / "single" / "metrics.jsonl"), read_jsonl(tmp_path / "ddp" / "metrics.jsonl")
    assert len(ma) == len(mb) == 2
    for ra, rb in zip(ma, mb, strict=True):
        assert ra["train_accuracy"] == pytest.approx(rb["train_accuracy"], abs=1e-9)
        assert ra["train_loss"] == pytest.approx(rb["train_loss"], rel=1e-4)
    # rank 0 alone wrote the folder, and test accuracy over disjoint shards equals one process's
    ra, rb = read_json(tmp_path / "single" / "results.json"), read_json(tmp_path / "ddp" / "results.json")
    assert ra["clean_accuracy"] == pytest.approx(rb["clean_accuracy"], abs=1e-9)
