"""make_loader: batch shapes and dtypes, reproducible shuffling, the in-memory fast path."""

from __future__ import annotations

import pytest
import torch

from robustlab.core.errors import RobustlabError
from robustlab.data import adapt, make_loader, subset


def test_batches_shapes_and_dtypes(toy):
    loader = make_loader(toy(n=10, channels=3, size=8), batch_size=4)
    batches = list(loader)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.dtype == torch.float32 and x.shape == (4, 3, 8, 8) and y.dtype == torch.int64
    assert len(list(make_loader(toy(n=10), batch_size=4, drop_last=True))) == 2


def test_shuffle_same_seed_same_order(toy):
    ds = toy(n=64, num_classes=64)

    def order(seed):
        return torch.cat([y for _, y in make_loader(ds, 8, shuffle=True, seed=seed)]).tolist()

    assert order(3) == order(3)
    assert order(3) != order(4)
    assert sorted(order(3)) == list(range(64))
    assert order(3) != list(range(64))


def test_in_memory_batches_skip_per_item_access(toy, monkeypatch):
    ds = toy(n=300)

    def boom(*args, **kwargs):
        raise AssertionError("per-item path used")

    monkeypatch.setattr(type(ds), "_load", boom)
    view = adapt(subset(ds, 256, seed=0), channels=3)
    x, y = next(iter(make_loader(view, batch_size=256)))
    assert x.shape == (256, 3, 8, 8)


def test_sampler_and_bad_arguments(toy):
    ds = toy(n=10)
    sampler = torch.utils.data.SequentialSampler(range(5))
    assert [len(y) for _, y in make_loader(ds, 2, sampler=sampler)] == [2, 2, 1]
    with pytest.raises(RobustlabError):
        make_loader(ds, 2, shuffle=True, sampler=sampler)
    with pytest.raises(RobustlabError):
        make_loader(ds, 0)


def test_worker_processes_give_the_same_batches(toy):
    ds = toy(n=20, num_classes=20)
    serial = [y.tolist() for _, y in make_loader(ds, 5, shuffle=True, seed=1)]
    parallel = [y.tolist() for _, y in make_loader(ds, 5, shuffle=True, seed=1, num_workers=1)]
    assert serial == parallel
