"""Fault tests: full disk during a checkpoint write, corrupt or mismatched checkpoints, bad data."""

from __future__ import annotations

import errno
import os

import pytest
import torch

import robustlab.core.checkpoint as ckpt
from robustlab.config import parse_config
from robustlab.core.checkpoint import load_checkpoint, save_checkpoint
from robustlab.core.errors import RobustlabError
from robustlab.data.validation import check_labels, check_pixels
from robustlab.experiment import train_experiment
from robustlab.pipeline import load_run_model


def _tiny_cfg(**train):
    return parse_config({"data": {"dataset": "digits", "batch_size": 64}, "model": {"options": {"width": 8}},
                         "train": {"epochs": 1, **train}})


def test_disk_full_during_checkpoint_write_keeps_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.ones(1000)})
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        real_save(obj, f, *a, **k)  # write part of the data, then the disk fills up
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt.torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, {"epoch": 2, "w": torch.zeros(1000)})
    monkeypatch.undo()
    back = load_checkpoint(path)
    assert back["epoch"] == 1 and torch.equal(back["w"], torch.ones(1000))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_corrupt_checkpoint_on_resume_is_one_line(tmp_path):
    run = train_experiment(_tiny_cfg(), tmp_path / "r")
    last = run.checkpoint("last")
    last.write_bytes(last.read_bytes()[:1000])
    with pytest.raises(RobustlabError, match="truncated or corrupt") as e:
        train_experiment(_tiny_cfg(epochs=2), tmp_path / "r", resume=True)
    assert "\n" not in str(e.value)


def test_checkpoint_of_another_architecture_names_the_mismatch(tmp_path):
    run = train_experiment(_tiny_cfg(), tmp_path / "r")
    # the run's config now says 16 channels wide: the saved weights no longer fit
    cfg_text = run.config_path.read_text().replace("width: 8", "width: 16")
    run.config_path.write_text(cfg_text)
    with pytest.raises(RobustlabError, match="does not fit model small_cnn") as e:
        load_run_model(tmp_path / "r")
    assert "size mismatch" in str(e.value) or "shape" in str(e.value)


def test_nan_inf_and_out_of_range_pixels_are_counted():
    x = torch.rand(4, 1, 3, 3)
    x[0, 0, 0, 0] = float("nan")
    x[1, 0, 0, 0] = float("inf")
    x[2, 0, 0, 0] = 1.5
    with pytest.raises(RobustlabError, match="2 NaN/inf values and 1 values outside"):
        check_pixels(x, "test images")
    check_pixels(torch.rand(2, 3))


def test_labels_out_of_range_are_counted():
    with pytest.raises(RobustlabError, match="2 labels outside 0..9"):
        check_labels(torch.tensor([0, 3, 10, -1]), 10)
