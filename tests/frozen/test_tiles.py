"""Procedural aerial tiles: exact panel masks and areas, panel look, determinism, sizes and bad input."""

from __future__ import annotations

import pytest
import torch

from robustlab.core.errors import RobustlabError
from robustlab.labs.frozen.tiles import Tiles, generate_tiles

N = 96


@pytest.fixture(scope="module")
def tiles() -> Tiles:
    return generate_tiles(N, seed=3)


def test_shapes_dtypes_and_areas_match_masks(tiles):
    assert len(tiles) == N and tiles.gsd == 0.3
    assert tiles.images.shape == (N, 3, 112, 112) and tiles.images.dtype == torch.uint8
    assert tiles.masks.shape == (N, 112, 112) and tiles.masks.dtype == torch.bool
    assert tiles.labels.dtype == torch.int64 and tiles.areas.dtype == torch.float32
    pixels = tiles.masks.sum((1, 2))
    torch.testing.assert_close(tiles.areas, pixels.to(torch.float32) * 0.3**2)
    assert torch.equal(tiles.labels, (tiles.areas > 0).long())
    assert int(tiles.labels.sum()) == N // 2
    # every positive tile shows a real array, not a sliver
    assert int(pixels[tiles.labels == 1].min()) >= 20
    # areas vary widely (single small arrays up to several large ones)
    positive = tiles.areas[tiles.labels == 1]
    assert float(positive.max()) > 4 * float(positive.min())


@pytest.mark.parametrize(("n", "fraction"), [(5, 0.5), (7, 0.5), (10, 0.3), (9, 1.0), (4, 0.0)])
def test_positive_count_is_rounded_fraction(n, fraction):
    t = generate_tiles(n, seed=1, positive_fraction=fraction)
    assert int(t.labels.sum()) == round(n * fraction)
    assert torch.equal(t.labels, (t.masks.flatten(1).any(1)).long())


def test_positive_positions_are_shuffled():
    labels = generate_tiles(40, seed=0).labels
    assert int(labels.sum()) == 20 and not bool(labels[:20].all())


def test_panel_pixels_are_blue_and_gridded(tiles):
    img = tiles.images.to(torch.float32)
    inside = tiles.masks[:, None].expand_as(img)
    r, g, b = (img[:, c][tiles.masks] for c in range(3))
    assert float(b.mean()) > float(r.mean()) + 40 and float(b.mean()) > float(g.mean()) + 30
    # the cell grid: neighbouring pixels along a row differ far more inside arrays than elsewhere
    step = (img[..., 1:] - img[..., :-1]).abs().mean(1)
    both_in = inside[:, 0, :, 1:] & inside[:, 0, :, :-1]
    both_out = ~inside[:, 0, :, 1:] & ~inside[:, 0, :, :-1]
    assert float(step[both_in].mean()) > 3 * float(step[both_out].mean())
    # and the masked region looks unlike the rest of the tile: far bluer than its surroundings
    blueness = img[:, 2] - img[:, 0]
    assert float(blueness[tiles.masks].mean()) > float(blueness[~tiles.masks].mean()) + 50


def test_mask_marks_exactly_where_panels_were_drawn(tiles):
    """The scenes do not depend on the positive fraction: without panels only the mask's pixels change."""
    plain = generate_tiles(N, seed=3, positive_fraction=0.0)
    assert not plain.masks.any() and not plain.labels.any() and not plain.areas.any()
    changed = (plain.images != tiles.images).any(1)
    assert not changed[~tiles.masks].any()
    assert float(changed[tiles.masks].float().mean()) > 0.95


def test_same_seed_same_bytes_other_seed_differs(tiles):
    again = generate_tiles(N, seed=3)
    for name in ("images", "masks", "labels", "areas"):
        assert torch.equal(getattr(again, name), getattr(tiles, name))
    other = generate_tiles(N, seed=4)
    assert not torch.equal(other.images, tiles.images)
    assert not torch.equal(other.masks, tiles.masks)


def test_more_arrays_cover_more_area():
    one = generate_tiles(120, seed=5, positive_fraction=1.0, max_arrays=1)
    three = generate_tiles(120, seed=5, positive_fraction=1.0, max_arrays=3)
    assert float(three.areas.mean()) > 1.3 * float(one.areas.mean())


def test_larger_tiles_render_the_same_scene_finer():
    small = generate_tiles(48, size=112, seed=2, gsd=0.3)
    large = generate_tiles(48, size=224, seed=2, gsd=0.15)
    assert large.images.shape == (48, 3, 224, 224) and torch.equal(large.labels, small.labels)
    positive = small.labels == 1
    ratio = large.areas[positive] / small.areas[positive]  # the same ground area at half the gsd
    assert 0.97 < float(ratio.mean()) < 1.03 and float(ratio.min()) > 0.85 and float(ratio.max()) < 1.15
    pooled = large.masks.view(48, 112, 2, 112, 2).float().mean((2, 4)) > 0.5
    assert float((pooled == small.masks).float().mean()) > 0.99
    same_gsd = generate_tiles(48, size=224, seed=2, gsd=0.3)
    torch.testing.assert_close(same_gsd.areas, 4 * large.areas)


def test_smallest_tile_still_shows_every_positive():
    t = generate_tiles(30, size=14, seed=0)
    assert t.images.shape == (30, 3, 14, 14)
    assert torch.equal(t.labels, t.masks.flatten(1).any(1).long())


def test_subset_keeps_tiles_together(tiles):
    index = torch.tensor([5, 0, 17])
    part = tiles.subset(index)
    assert len(part) == 3 and part.gsd == tiles.gsd
    assert torch.equal(part.images[1], tiles.images[0]) and torch.equal(part.masks[2], tiles.masks[17])
    positives = tiles.subset(tiles.labels == 1)
    assert len(positives) == N // 2 and bool(positives.labels.all())


@pytest.mark.parametrize("size", [100, 0, -14, 13])
def test_size_must_be_a_positive_multiple_of_14(size):
    with pytest.raises(RobustlabError, match="14"):
        generate_tiles(2, size=size)


@pytest.mark.parametrize(
    "kwargs", [{"n": 0}, {"positive_fraction": 1.5}, {"positive_fraction": -0.1}, {"gsd": 0.0}, {"max_arrays": 0}]
)
def test_bad_arguments_raise(kwargs):
    args = {"n": 2, **kwargs}
    with pytest.raises(RobustlabError):
        generate_tiles(**args)
