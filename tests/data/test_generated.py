"""Always-available datasets: scikit-learn digits and font-rendered digits."""

from __future__ import annotations

import torch

from robustlab.data import fonts, load_dataset, render_font_digits


def test_digits_split_is_fixed_and_disjoint():
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    assert (len(train), len(test)) == (1437, 360)
    x, y = train[0]
    assert x.shape == (1, 8, 8) and x.dtype == torch.float32 and 0 <= float(x.min()) <= float(x.max()) <= 1
    # values are k/16 exactly
    assert torch.equal(train.data * 16, (train.data * 16).round())
    again = load_dataset("digits", "train")
    assert torch.equal(train.data, again.data) and torch.equal(train.targets, again.targets)
    rows = {tuple(r.tolist()) for r in train.data.flatten(1)}
    assert sum(tuple(r.tolist()) in rows for r in test.data.flatten(1)) < 10  # near-duplicates exist in sklearn
    assert set(train.targets.tolist()) == set(range(10))


def test_render_font_digits_shape_and_determinism():
    x, y = render_font_digits(60, image_size=32, seed=3)
    assert x.shape == (60, 3, 32, 32) and x.dtype == torch.uint8
    assert y.dtype == torch.int64 and y.bincount(minlength=10).tolist() == [6] * 10
    x2, y2 = render_font_digits(60, image_size=32, seed=3)
    assert torch.equal(x, x2) and torch.equal(y, y2)
    x3, _ = render_font_digits(60, image_size=32, seed=4)
    assert not torch.equal(x, x3)
    x2[0] = 0  # callers get copies, the cache stays intact
    assert torch.equal(render_font_digits(60, image_size=32, seed=3)[0], x)
    assert float(x.float().std()) > 20  # not blank


def test_render_font_digits_other_size():
    x, y = render_font_digits(25, image_size=16, seed=0)
    assert x.shape == (25, 3, 16, 16) and set(y.tolist()) == set(range(10))


def test_font_digits_dataset():
    test = load_dataset("font-digits", "test")
    assert len(test) == 2000 and test.info.shape == (3, 32, 32)
    assert test.targets.bincount().tolist() == [200] * 10
    xb, yb = test._load_batch(list(range(8)))
    assert xb.shape == (8, 3, 32, 32) and float(xb.min()) >= 0 and float(xb.max()) <= 1
    small = load_dataset("font-digits", "test", image_size=16)
    assert small.info.image_size == (16, 16) and tuple(small[0][0].shape) == (3, 16, 16)


def test_font_digits_without_system_fonts(monkeypatch):
    monkeypatch.setattr(fonts, "find_font_files", lambda: [])
    fonts.glyph_bank.cache_clear()
    fonts._render_cached.cache_clear()
    try:
        x, y = render_font_digits(20, image_size=24, seed=1)
        assert x.shape == (20, 3, 24, 24) and len(fonts.glyph_bank(24)) == 1
    finally:
        fonts.glyph_bank.cache_clear()
        fonts._render_cached.cache_clear()


def test_fabricate_is_shaped_like_the_real_dataset():
    from robustlab.data import dataset_info, fabricate

    ds = fabricate("cifar100", n=50, seed=1)
    assert len(ds) == 50 and ds.info.shape == (3, 32, 32) and ds.info.num_classes == 100
    assert ds.classes == list(dataset_info("cifar100").class_names)
    assert torch.equal(ds.data, fabricate("cifar100", n=50, seed=1).data)
    small = fabricate("mnist", n=20, image_size=12)
    assert tuple(small[0][0].shape) == (1, 12, 12) and small.targets.bincount().tolist() == [2] * 10
    assert fabricate("imagefolder", n=4).info.num_classes == 2
