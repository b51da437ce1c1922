"""The guidance and DreamBooth studies, scored on real images standing in for samples (whose right
answers are known), and the selection rules on hand-made rows."""

from __future__ import annotations

import json

import pytest
import torch

from robustlab.core.errors import RobustlabError
from robustlab.labs.diffusion import studies
from robustlab.labs.diffusion.judges import digits_judge, digits_split, digits_style_detector, mirror


@pytest.fixture(scope="module")
def data() -> dict:
    xt, yt = digits_split("test")
    xtr, ytr = digits_split("train")
    return {"judge": digits_judge(), "style": digits_style_detector(), "xt": xt, "yt": yt, "xtr": xtr, "ytr": ytr}


def test_guidance_row_of_real_test_images(data: dict) -> None:
    xt, yt = data["xt"], data["yt"]
    row = studies.guidance_row(2.0, xt, yt, data["judge"], xt, yt)
    json.dumps(row)
    assert set(row) == {"scale", "judge_accuracy", "fd", "precision", "recall", "diversity", "n"}
    assert row["scale"] == 2.0 and row["n"] == 360
    assert row["judge_accuracy"] >= 0.97
    floor = studies.fd_floor(data["judge"], data["xtr"], xt)
    assert floor > 0
    assert row["fd"] < 1e-6 * max(floor, 1.0)  # the same set: FD 0 up to round-off
    assert row["precision"] == 1.0 and row["recall"] == 1.0
    assert row["diversity"] == pytest.approx(1.0, abs=1e-6)


def test_guidance_row_of_one_image_repeated(data: dict) -> None:
    xt, yt = data["xt"], data["yt"]
    samples, labels = xt[:1].repeat(40, 1, 1, 1), yt[:1].repeat(40)
    row = studies.guidance_row(7.5, samples, labels, data["judge"], xt, yt)
    assert row["recall"] <= 2 / 360  # only the repeated image itself (and exact duplicates) is covered
    assert row["diversity"] == pytest.approx(0.0, abs=1e-6)
    assert row["fd"] > studies.fd_floor(data["judge"], data["xtr"], xt)


def test_dreambooth_row_of_mirrored_real_threes(data: dict) -> None:
    xt, yt = data["xt"], data["yt"]
    threes = xt[yt == 3]
    instance = mirror(threes[:5])
    others = {d: xt[yt == d] for d in range(10) if d != 3}
    row = studies.dreambooth_row("after", mirror(threes), threes, instance, data["style"], data["judge"], others,
                                 xt, yt, step=200)
    json.dumps(row)
    assert row["name"] == "after" and row["step"] == 200
    assert row["concept_fidelity"] >= 0.95 and row["language_drift"] <= 0.05
    assert row["concept_digit"] >= 0.95 and row["class_digit"] >= 0.95
    assert row["diversity"] == pytest.approx(1.0, abs=1e-6)  # un-mirrored, the samples are the real 3s
    assert row["class_diversity"] == pytest.approx(1.0, abs=1e-6)
    assert row["copy_threshold"] == pytest.approx(0.5 * row["real_pair_median"]) and row["copy_threshold"] > 0
    assert row["copy_fraction"] == pytest.approx(5 / len(threes))  # only the 5 instance images themselves
    assert row["other_accuracy"] >= 0.97 and set(row["other_accuracy_by_class"]) == {str(d) for d in others}
    assert row["other_fd"] < 1e-6 * max(studies.fd_floor(data["judge"], data["xtr"], xt), 1.0)
    assert row["n_sks"] == row["n_class"] == len(threes) and row["n_other"] == int((yt != 3).sum())


def test_dreambooth_row_of_copies_and_drift(data: dict) -> None:
    xt, yt = data["xt"], data["yt"]
    instance = mirror(xt[yt == 3][:5])
    copies = instance.repeat(4, 1, 1, 1)
    row = studies.dreambooth_row("copied", copies, copies, instance, data["style"], data["judge"], None, xt, yt)
    assert row["copy_fraction"] == 1.0 and row["copy_distance"] == 0.0
    assert row["language_drift"] >= 0.95  # the class prompt draws the subject too
    assert "other_accuracy" not in row and "step" not in row
    assert row["diversity"] < 0.7  # 5 distinct images among 20 samples
    with pytest.raises(RobustlabError):
        studies.dreambooth_row("one", copies[:1], copies, instance, data["style"], data["judge"], None, xt, yt)


def test_copy_threshold_by_hand() -> None:
    a = torch.zeros(3, 1, 8, 8)
    a[1, 0, 0, 0] = 3.0  # distances 0-1: 3, 0-2: 4, 1-2: 5
    a[2, 0, 0, 1] = 4.0
    threshold, reference = studies.copy_threshold(a)
    assert reference == pytest.approx(4.0) and threshold == pytest.approx(2.0)


def test_balanced_and_best_accuracy_scale_by_hand() -> None:
    rows = [{"scale": 1.0, "judge_accuracy": 0.80, "fd": 10.0}, {"scale": 2.0, "judge_accuracy": 0.96, "fd": 5.0},
            {"scale": 3.0, "judge_accuracy": 0.99, "fd": 3.0}, {"scale": 5.0, "judge_accuracy": 1.0, "fd": 8.0},
            {"scale": 7.5, "judge_accuracy": 1.0, "fd": 12.0}]
    assert studies.balanced_scale(rows) == 3.0
    assert studies.balanced_scale(rows, min_accuracy=1.0) == 5.0
    assert studies.best_accuracy_scale(rows) == 5.0  # the tie with 7.5 goes to the smaller scale
    weak = [{"scale": 1.0, "judge_accuracy": 0.5, "fd": 10.0}, {"scale": 2.0, "judge_accuracy": 0.9, "fd": 20.0},
            {"scale": 3.0, "judge_accuracy": 0.9, "fd": 15.0}]
    assert studies.balanced_scale(weak) == 3.0  # none reaches 0.95: best accuracy, then lowest FD
    with pytest.raises(RobustlabError):
        studies.balanced_scale([])
    with pytest.raises(RobustlabError):
        studies.best_accuracy_scale([{"scale": 1.0}])


def _step(step: int, fidelity: float, drift: float, copying: float) -> dict:
    return {"step": step, "concept_fidelity": fidelity, "language_drift": drift, "copy_fraction": copying}


def test_overfitting_choice_by_hand() -> None:
    rows = [_step(300, 1.0, 0.2, 0.6), _step(100, 0.3, 0.0, 0.0), _step(400, 0.95, 0.02, 0.2),
            _step(200, 0.92, 0.05, 0.1)]
    assert studies.overfitting_choice(rows) == 200  # the first step with fidelity >= 0.9 · 1.0, low drift/copying
    assert studies.overfitting_choice(rows, max_copying=0.05) == 400  # nothing passes: max fidelity - drift
    copying = [_step(100, 0.3, 0.0, 0.0), _step(200, 0.95, 0.0, 0.8), _step(300, 1.0, 0.0, 0.3)]
    assert studies.overfitting_choice(copying) == 300  # step 200 copies too much
    drifting = [_step(100, 0.5, 0.3, 0.0), _step(200, 0.9, 0.5, 0.0), _step(300, 0.8, 0.2, 0.0)]
    assert studies.overfitting_choice(drifting) == 300  # nothing passes: max fidelity - drift (0.6)
    tie = [_step(200, 0.75, 0.25, 0.0), _step(100, 0.625, 0.125, 0.0)]
    assert studies.overfitting_choice(tie) == 100  # nothing passes, equal margins: the earliest step
    with pytest.raises(RobustlabError):
        studies.overfitting_choice([{"step": 1, "concept_fidelity": 1.0}])
