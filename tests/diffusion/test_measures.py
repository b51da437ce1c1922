"""Sample-quality measures on judge features: FD, improved precision / recall, diversity, copying, labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robustlab.core.errors import RobustlabError
from robustlab.labs.diffusion import measures as M


def _exact_gaussian(n: int, mean: np.ndarray, var: np.ndarray, seed: int) -> np.ndarray:
    """``n`` samples whose empirical mean is ``mean`` and unbiased covariance is ``diag(var)``, exactly."""
    z = np.random.default_rng(seed).normal(size=(n, mean.size))
    z -= z.mean(axis=0)
    chol = np.linalg.cholesky(np.cov(z, rowvar=False))
    z = z @ np.linalg.inv(chol).T  # whitened: covariance I
    return mean + z * np.sqrt(var)


# -- frechet_distance -----------------------------------------------------------------------------------
def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(0).normal(size=(200, 6)) * np.arange(1, 7)
    scale = np.trace(np.cov(x, rowvar=False))
    assert M.frechet_distance(x, x) < 1e-6 * scale
    assert M.frechet_distance(torch.from_numpy(x).float(), torch.from_numpy(x.copy())) < 1e-5 * scale


def test_frechet_distance_of_diagonal_gaussians_has_the_closed_form():
    mean_a, var_a = np.array([0.0, 1.0, -2.0]), np.array([1.0, 4.0, 0.25])
    mean_b, var_b = np.array([1.0, 1.0, 0.0]), np.array([9.0, 1.0, 0.25])
    a = _exact_gaussian(500, mean_a, var_a, seed=1)
    b = _exact_gaussian(700, mean_b, var_b, seed=2)
    closed = np.sum((mean_a - mean_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert closed == pytest.approx(5.0 + 5.0)  # (1 + 0 + 4) + ((1-3)^2 + (2-1)^2 + 0)
    assert M.frechet_distance(a, b) == pytest.approx(closed, rel=1e-8)
    assert M.frechet_distance(b, a) == pytest.approx(M.frechet_distance(a, b), rel=1e-10)


def test_frechet_distance_of_a_shift_is_the_squared_shift():
    x = np.random.default_rng(3).normal(size=(100, 4))
    shift = np.array([3.0, 0.0, -4.0, 0.0])
    assert M.frechet_distance(x, x + shift) == pytest.approx(25.0, rel=1e-8)


def test_frechet_distance_survives_singular_covariances(monkeypatch):
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(50, 3)), 2.0 * rng.normal(size=(60, 3))
    a = np.c_[x, np.zeros(50)]  # a constant feature: both covariances, and their product, are singular
    b = np.c_[y, np.ones(60)]
    calls = []
    original = M._sqrtm_or_none
    monkeypatch.setattr(M, "_sqrtm_or_none", lambda m: calls.append(1) or original(m))
    value = M.frechet_distance(a, b)
    assert len(calls) == 2  # the plain root failed; the eps-regularised one was taken
    # the constant feature adds its squared mean gap (1) and nothing else, up to the O(eps) bias
    assert value == pytest.approx(M.frechet_distance(x, y) + 1.0, abs=1e-4)
    few = M.frechet_distance(rng.normal(size=(5, 10)), rng.normal(size=(6, 10)))  # rank-deficient covariances
    assert np.isfinite(few) and few > 0


def test_frechet_distance_rejects_mismatched_features():
    with pytest.raises(RobustlabError):
        M.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(RobustlabError):
        M.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


# -- precision_recall -----------------------------------------------------------------------------------
def _real() -> torch.Tensor:
    return torch.randn(300, 4, generator=torch.Generator().manual_seed(0))


def test_precision_recall_of_the_real_set_itself_is_one():
    real = _real()
    assert M.precision_recall(real, real.clone()) == {"precision": 1.0, "recall": 1.0}


def test_precision_recall_of_a_far_away_set_is_zero():
    real = _real()
    assert M.precision_recall(real, real + 100.0) == {"precision": 0.0, "recall": 0.0}


def test_precision_recall_flags_mode_collapse():
    real = _real()
    collapsed = 0.01 * torch.randn(300, 4, generator=torch.Generator().manual_seed(1))  # a dot at the centre
    pr = M.precision_recall(real, collapsed, k=3)
    assert pr["precision"] > 0.95
    assert pr["recall"] < 0.05


def test_precision_recall_by_hand_in_one_dimension():
    real = np.array([[0.0], [1.0], [2.0], [10.0]])  # k=1 radii: 1, 1, 1, 8
    fake = np.array([[0.5], [5.0], [30.0]])  # k=1 radii: 4.5, 4.5, 25
    # precision: 0.5 in [0, 1]'s balls; 5.0 within 8 of 10; 30 in none -> 2/3
    # recall: 0, 1, 2 within 4.5 of 0.5; 10 within 25 of 30 -> 4/4
    assert M.precision_recall(real, fake, k=1) == {"precision": pytest.approx(2 / 3), "recall": 1.0}


def test_chunking_does_not_change_the_results(monkeypatch):
    real = _real()
    fake = 0.5 * torch.randn(130, 4, generator=torch.Generator().manual_seed(2))
    whole = (M.precision_recall(real, fake), M.diversity(fake), M.nearest_distance(fake, real))
    monkeypatch.setattr(M, "CHUNK", 7)
    chunked = (M.precision_recall(real, fake), M.diversity(fake), M.nearest_distance(fake, real))
    assert chunked[0] == whole[0]
    assert chunked[1] == pytest.approx(whole[1], rel=1e-6)
    torch.testing.assert_close(chunked[2], whole[2])


def test_precision_recall_needs_more_than_k_samples():
    with pytest.raises(RobustlabError):
        M.precision_recall(np.zeros((3, 2)), np.ones((10, 2)), k=3)
    with pytest.raises(RobustlabError):
        M.precision_recall(np.zeros((10, 2)), np.ones((10, 2)), k=0)


# -- diversity, nearest_distance, label_accuracy -------------------------------------------------------
def test_diversity_by_hand_on_three_points():
    x = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])  # pairwise distances 3, 4, 5
    assert M.diversity(x) == pytest.approx(4.0)
    assert M.diversity(torch.tensor(x)) == pytest.approx(4.0)
    assert M.relative_diversity(0.5 * x, x) == pytest.approx(0.5)
    assert M.diversity(np.ones((4, 2))) == 0.0
    with pytest.raises(RobustlabError):
        M.relative_diversity(x, np.ones((4, 2)))


def test_nearest_distance_by_hand():
    samples = torch.tensor([[0.0, 0.0], [10.0, 0.0]])
    references = torch.tensor([[1.0, 0.0], [0.0, 3.0], [7.0, 4.0]])
    # sample 0: 1, 3, sqrt(65) -> 1; sample 1: 9, sqrt(109), 5 -> 5
    d = M.nearest_distance(samples, references)
    assert d.shape == (2,)
    torch.testing.assert_close(d, torch.tensor([1.0, 5.0]))


def test_nearest_distance_in_pixel_space_flags_a_copy():
    refs = torch.rand(3, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    samples = torch.stack([refs[1], refs[1] + 0.5])
    d = M.nearest_distance(samples, refs)
    assert d[0].item() == pytest.approx(0.0, abs=1e-6)
    assert d[1].item() <= 1.0 + 1e-6  # 0.5 in each of 4 pixels: ||.|| = 1 from refs[1], maybe closer to another
    assert d[1].item() > 0.0
    with pytest.raises(RobustlabError):
        M.nearest_distance(samples, refs.reshape(3, 4))


def test_label_accuracy_by_hand():
    logits = torch.tensor([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    labels = torch.tensor([0, 1, 2, 2])  # the last row is classified as 0
    assert M.label_accuracy(logits, labels) == pytest.approx(0.75)
    assert M.label_accuracy(logits.numpy(), labels.numpy()) == pytest.approx(0.75)
    with pytest.raises(RobustlabError):
        M.label_accuracy(logits, labels[:3])
    with pytest.raises(RobustlabError):
        M.label_accuracy(logits, torch.tensor([0, 1, 2, 3]))
