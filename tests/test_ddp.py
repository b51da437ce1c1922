"""torchrun with 2 CPU processes (gloo) trains exactly like one process on the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from robustlab.core.checkpoint import load_checkpoint
from robustlab.core.io import read_json, read_jsonl

pytestmark = pytest.mark.ddp
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "ROBUSTLAB_QUIET": "1"}
# 640 training images, no validation split, BN off (per-rank batch statistics would differ by design)
COMMON = ["train", "--dataset", "digits", "--model", "small_cnn", "--epochs", "2", "--seed", "5",
          "--train-subset", "640", "--val-fraction", "0", "--set", "model.batchnorm=false",
          "--set", "model.options.width=8", "--set", "train.monitor=train_accuracy", "--quiet"]
ONE_EPOCH = [("1" if prev == "--epochs" else a) for prev, a in zip([None, *COMMON[:-1]], COMMON, strict=True)]
"""COMMON for one epoch: the first half of an interrupted run, and enough for a model worth attacking."""


def _run(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "robustlab", *args], capture_output=True, text=True, env=ENV,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_two_process_training_matches_one(tmp_path):
    """Same weights and metrics as one process on the same global batch; a one-process run resumes on two."""
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

    # a run stopped after epoch 1 on one process resumes on two and ends where the one-process run did
    _run([*ONE_EPOCH, "--batch-size", "64", "--out", str(tmp_path / "moved")])
    _run([*COMMON, "--batch-size", "32", "--nproc", "2", "--resume", "--out", str(tmp_path / "moved")])
    c = load_checkpoint(tmp_path / "moved" / "checkpoints" / "last.pt")
    assert c["epoch"] == 2
    for k in a:
        assert torch.allclose(a[k], c["model"][k], atol=1e-5, rtol=1e-4), k
    mc = read_jsonl(tmp_path / "moved" / "metrics.jsonl")
    assert [r["epoch"] for r in mc] == [1, 2]
    assert mc[1]["train_accuracy"] == pytest.approx(ma[1]["train_accuracy"], abs=1e-9)


def test_two_process_adversarial_training_matches_one(tmp_path):
    """PGD adversarial training under DDP: each rank attacks its half-batch on the unwrapped model, and
    the weights equal one process's (PGD without a random start, so both runs see the same examples)."""
    pgd = ["--defense", "pgd-at", "--eps", "0.1", "--set", "defense.params.steps=2",
           "--set", "defense.params.attack_params.random_start=false"]
    _run([*ONE_EPOCH, *pgd, "--batch-size", "64", "--out", str(tmp_path / "single")])
    _run([*ONE_EPOCH, *pgd, "--batch-size", "32", "--nproc", "2", "--out", str(tmp_path / "ddp")])
    a = load_checkpoint(tmp_path / "single" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")["model"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k
    ma, mb = read_jsonl(tmp_path / "single" / "metrics.jsonl"), read_jsonl(tmp_path / "ddp" / "metrics.jsonl")
    assert ma[0]["train_loss"] == pytest.approx(mb[0]["train_loss"], rel=1e-5)  # the loss on adversarial examples
    assert ma[0]["train_accuracy"] == pytest.approx(mb[0]["train_accuracy"], abs=1e-9)


EVAL = ["--attacks", "fgsm,pgd,deepfool", "--eps", "0.05,0.1", "--noise", "0.1", "--n-samples", "300",
        "--steps", "5", "--quiet"]


def test_two_process_evaluation_matches_one(tmp_path):
    """`robustlab evaluate --nproc 2` gives the one-process numbers and per-sample outcomes exactly:
    300 images in 5 batches of 64 (the last one short), split 3/2 between the ranks; PGD's random
    starts, DeepFool's minimal norms, noise and the sanity pass included."""
    import shutil

    from robustlab.evaluation.samples import load_per_sample

    _run([*ONE_EPOCH, "--batch-size", "64", "--set", "data.eval_batch_size=64", "--out", str(tmp_path / "run")])
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    _run(["evaluate", str(tmp_path / "run"), *EVAL])
    _run(["evaluate", str(tmp_path / "copy"), *EVAL, "--nproc", "2"])

    one, two = read_json(tmp_path / "run" / "results.json"), read_json(tmp_path / "copy" / "results.json")
    assert (one["eval_processes"], two["eval_processes"]) == (1, 2)
    assert one["n_samples"] == two["n_samples"] == 300
    for key in ("clean_accuracy", "worst_case", "noise", "per_class", "confusion", "min_perturbation", "flags",
                "sanity"):
        assert one[key] == two[key], key
    drop = {"seconds"}  # wall time differs; counts of attacked points and norms must not
    rows1 = [{k: v for k, v in r.items() if k not in drop} for r in one["robust"]]
    rows2 = [{k: v for k, v in r.items() if k not in drop} for r in two["robust"]]
    assert rows1 == rows2
    assert 0.0 < one["worst_case"][0]["accuracy"] < one["clean_accuracy"]  # the attacks did something

    a, meta_a = load_per_sample(tmp_path / "run" / "per_sample.safetensors")
    b, meta_b = load_per_sample(tmp_path / "copy" / "per_sample.safetensors")
    assert meta_a == meta_b and meta_a["attacks"] == ["fgsm", "pgd", "deepfool"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, equal_nan=True, msg=key)
    assert a["robust"].shape == (3, 2, 300) and a["labels"].shape == (300,)
    # each rank kept its own resumable progress
    states = sorted(p.name for p in (tmp_path / "copy" / "checkpoints").glob("eval_state*.pt"))
    assert states == ["eval_state.rank0-of-2.pt", "eval_state.rank1-of-2.pt"]
