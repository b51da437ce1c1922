"""The judges of the diffusion lab: a digit CNN and a normal-vs-mirrored 3 detector, trained on the
real digits split in a few seconds (each trained once per test session, through the memoised helpers)."""

from __future__ import annotations

import pytest
import torch

from robustlab.core.errors import RobustlabError
from robustlab.labs.diffusion.judges import (
    FEATURE_DIM,
    JudgeCNN,
    digits_judge,
    digits_split,
    digits_style_detector,
    embed,
    mirror,
    style_pairs,
    train_judge,
)


def test_digits_split_shapes_and_range() -> None:
    x, y = digits_split("train")
    xt, yt = digits_split("test")
    assert x.shape == (1437, 1, 8, 8) and xt.shape == (360, 1, 8, 8)
    assert y.shape == (1437,) and yt.dtype == torch.int64
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    with pytest.raises(RobustlabError):
        digits_split("validation")


def test_judge_accuracy_and_feature_shape() -> None:
    judge = digits_judge()
    xt, yt = digits_split("test")
    feats, logits = embed(judge, xt)
    assert feats.shape == (360, FEATURE_DIM) and logits.shape == (360, 10)
    assert not judge.training
    accuracy = float((logits.argmax(1) == yt).double().mean())
    assert accuracy >= 0.97, accuracy
    with torch.no_grad():
        assert torch.allclose(judge.features(xt[:5]), feats[:5], atol=1e-6)
        assert torch.allclose(judge(xt[:5]), logits[:5], atol=1e-5)


def test_training_is_deterministic_and_leaves_global_rng_alone() -> None:
    x, y = digits_split("train")
    x, y = x[:256], y[:256]
    threads = torch.get_num_threads()
    state = torch.random.get_rng_state()
    a = train_judge(x, y, 10, seed=3, epochs=1)
    b = train_judge(x, y, 10, seed=3, epochs=1)
    c = train_judge(x, y, 10, seed=4, epochs=1)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.get_num_threads() == threads
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.head.weight, c.head.weight)


def test_train_judge_rejects_bad_inputs() -> None:
    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(RobustlabError):
        train_judge(x, torch.tensor([0, 1, 2, 3]), 3)  # label 3 outside [0, 3)
    with pytest.raises(RobustlabError):
        train_judge(torch.rand(4, 1, 16, 16), torch.zeros(4, dtype=torch.long), 2)
    with pytest.raises(RobustlabError):
        JudgeCNN(1)


def test_mirror_flips_left_right() -> None:
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    assert torch.equal(mirror(x)[0, 0, 0], torch.arange(7.0, -1.0, -1.0))
    assert torch.equal(mirror(mirror(x)), x)
    pairs, labels = style_pairs(x.repeat(3, 1, 1, 1))
    assert pairs.shape == (6, 1, 8, 8) and labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_style_detector_on_held_out_threes() -> None:
    detector = digits_style_detector()
    xt, yt = digits_split("test")
    images, labels = style_pairs(xt[yt == 3])
    logits = embed(detector, images)[1]
    assert logits.shape == (images.shape[0], 2)
    accuracy = float((logits.argmax(1) == labels).double().mean())
    assert accuracy >= 0.98, accuracy
