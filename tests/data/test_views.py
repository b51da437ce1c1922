"""Subsets, train/validation splits and cross-domain adaptation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustlab.core.errors import RobustlabError
from robustlab.data import adapt, subset, train_val_split
from robustlab.data.views import LUMA


def _ids(ds):
    """Image i of the toy dataset has every pixel = i/255: recover the ids of a view."""
    xb, _ = ds._load_batch(list(range(len(ds))))
    return (xb[:, 0, 0, 0] * 255).round().long().tolist()


def test_train_val_split_deterministic_disjoint_complete(toy):
    ds = toy(n=50)
    train, val = train_val_split(ds, 0.2, seed=7)
    assert (len(train), len(val)) == (40, 10)
    t_ids, v_ids = _ids(train), _ids(val)
    assert not set(t_ids) & set(v_ids) and sorted(t_ids + v_ids) == list(range(50))
    train2, val2 = train_val_split(ds, 0.2, seed=7)
    assert _ids(train2) == t_ids and _ids(val2) == v_ids
    _, val3 = train_val_split(ds, 0.2, seed=8)
    assert _ids(val3) != v_ids
    assert torch.equal(val.targets, torch.tensor(v_ids) % 4)


def test_train_val_split_zero_fraction(toy):
    train, val = train_val_split(toy(n=10), 0.0, seed=0)
    assert (len(train), len(val)) == (10, 0)


@pytest.mark.parametrize("fraction", [1.0, -0.1, 1.5, math.nan])
def test_bad_val_fraction(toy, fraction):
    with pytest.raises(RobustlabError, match=r"validation fraction must be in \[0, 1\)"):
        train_val_split(toy(), fraction, seed=0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(2, 60), fraction=st.floats(0.01, 0.99), seed=st.integers(0, 2**31))
def test_split_partitions_any_dataset(toy, n, fraction, seed):
    train, val = train_val_split(toy(n=n), fraction, seed)
    ids = _ids(train) + _ids(val)
    assert sorted(ids) == list(range(n)) and len(train) >= 1 and len(val) >= 1


def test_subset_first_n_of_seeded_permutation(toy):
    ds = toy(n=30)
    a, b = subset(ds, 10, seed=1), subset(ds, 10, seed=1)
    assert len(a) == 10 and _ids(a) == _ids(b) and len(set(_ids(a))) == 10
    assert _ids(subset(ds, 5, seed=1)) == _ids(a)[:5]
    assert len(subset(ds, 100)) == 30
    assert _ids(subset(ds, indices=[3, 1, 2])) == [3, 1, 2]
    with pytest.raises(RobustlabError):
        subset(ds, indices=[30])
    with pytest.raises(RobustlabError):
        subset(ds, -1)


def test_subset_keeps_coarse_targets(cifar100_root):
    from robustlab.data import load_dataset

    ds = load_dataset("cifar100", "test", root=cifar100_root)
    sub = subset(ds, indices=[5, 25, 99])
    assert sub.coarse_targets.tolist() == [5, 5, 19] and sub.coarse_classes == ds.coarse_classes


def test_adapt_gray_to_rgb_and_resize(toy):
    ds = toy(n=6, channels=1, size=8)
    out = adapt(ds, channels=3, size=16)
    assert out.info.shape == (3, 16, 16) and len(out.info.mean) == 3 and len(out) == 6
    x, y = out[5]
    assert x.shape == (3, 16, 16) and y == 1
    assert torch.allclose(x, torch.full_like(x, 5 / 255), atol=1e-6)  # constant image stays constant
    xb, yb = out._load_batch([0, 5])
    assert xb.shape == (2, 3, 16, 16) and torch.equal(xb[:, 0], xb[:, 2])
    assert torch.equal(out.targets, ds.targets)


def test_adapt_rgb_to_gray_uses_luminance(toy):
    data = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    data[:, 0] = 255  # pure red
    ds = toy(n=2, channels=3, size=4)
    ds.data = data
    gray = adapt(ds, channels=1)
    x, _ = gray[0]
    assert x.shape == (1, 4, 4) and torch.allclose(x, torch.full_like(x, LUMA[0]))
    assert gray.info.channels == 1 and len(gray.info.std) == 1


def test_adapt_downscale_antialias_stays_in_range(toy):
    ds = toy(n=3, channels=3, size=32)
    small = adapt(ds, size=(8, 12))
    xb, _ = small._load_batch([0, 1, 2])
    assert xb.shape == (3, 3, 8, 12) and float(xb.min()) >= 0 and float(xb.max()) <= 1


def test_adapt_noop_and_errors(toy):
    ds = toy()
    assert adapt(ds) is ds and adapt(ds, channels=1, size=8) is ds
    with pytest.raises(RobustlabError):
        adapt(ds, channels=2)
    with pytest.raises(RobustlabError):
        adapt(ds, size=0)


def test_views_apply_transform_once(toy):
    calls = []

    def tag(x):
        calls.append(1)
        return x + 0

    ds = toy(n=10).with_transform(tag)
    view = adapt(subset(ds, 6, seed=0), channels=3, size=4)
    view.__getitems__([0, 1, 2])
    assert len(calls) == 3
    view[0]
    assert len(calls) == 4
    assert view.with_transform(None).transform is None and ds.transform is tag
