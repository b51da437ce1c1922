"""Reading real aerial tiles and their solar-panel masks from folders: shapes, dtypes, order, labels,
areas from masks (with the gsd scaled by the resize) and from areas.csv, mask modes, and one-line
errors for every malformed layout."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustlab.core.errors import RobustlabError
from robustlab.labs.frozen.folders import read_tile_folder
from robustlab.labs.frozen.tiles import Tiles

SIDE = 56
# stem -> (image extension, mask extension, panel rectangle (x0, y0, x1, y1) exclusive, or None)
LAYOUT = {
    "t0": (".png", ".png", (10, 10, 30, 20)),  # 20 x 10 = 200 pixels
    "t1": (".jpg", ".png", None),
    "t2": (".png", ".bmp", (0, 0, 56, 56)),  # whole tile
    "t3": (".jpeg", ".png", None),
    "t4": (".tif", ".tiff", (40, 40, 44, 44)),  # 4 x 4 = 16 pixels
    "t5": (".webp", ".png", (2, 30, 12, 36)),  # 10 x 6 = 60 pixels
}


def _rgb(seed: int, side: int = SIDE) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8))


def _mask(rect: tuple[int, int, int, int] | None, side: int = SIDE) -> np.ndarray:
    m = np.zeros((side, side), dtype=np.uint8)
    if rect is not None:
        x0, y0, x1, y1 = rect
        m[y0:y1, x0:x1] = 255
    return m


def _write(tmp_path: Path, layout: dict = LAYOUT) -> tuple[Path, Path]:
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i, (stem, (ext, mext, rect)) in enumerate(layout.items()):
        _rgb(i).save(images / f"{stem}{ext}")
        Image.fromarray(_mask(rect)).save(masks / f"{stem}{mext}")
    return images, masks


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def folders(tmp_path):
    return _write(tmp_path)


def test_shapes_dtypes_order_and_labels(folders):
    images, masks = folders
    (images / "notes.txt").write_text("not an image")
    (images / ".DS_Store").write_bytes(b"\0\1")
    tiles = read_tile_folder(images, masks, size=28, gsd=0.2)
    assert isinstance(tiles, Tiles)
    assert tiles.images.shape == (6, 3, 28, 28) and tiles.images.dtype == torch.uint8
    assert tiles.masks.shape == (6, 28, 28) and tiles.masks.dtype == torch.bool
    assert tiles.labels.dtype == torch.int64 and tiles.areas.dtype == torch.float32
    assert tiles.labels.tolist() == [1, 0, 1, 0, 1, 1]  # sorted by stem t0..t5
    assert not tiles.masks[1].any() and tiles.masks[2].all()


def test_native_size_keeps_pixels_and_areas_are_count_times_gsd_squared(folders):
    images, masks = folders
    tiles = read_tile_folder(images, masks, size=SIDE, gsd=0.5)
    assert tiles.gsd == 0.5
    assert torch.equal(tiles.images[0], torch.from_numpy(np.array(_rgb(0))).permute(2, 0, 1))  # png: lossless
    for i, (_, _, rect) in enumerate(LAYOUT.values()):
        assert torch.equal(tiles.masks[i], torch.from_numpy(_mask(rect) > 0))
    assert tiles.areas.tolist() == pytest.approx([200 * 0.25, 0, 56 * 56 * 0.25, 0, 16 * 0.25, 60 * 0.25])


def test_resize_scales_the_gsd(folders):
    images, masks = folders
    tiles = read_tile_folder(images, masks, size=28, gsd=0.5)
    # 56 original pixels of 0.5 m become 28 pixels of 1 m; the even-aligned rectangles halve exactly
    assert tiles.gsd == pytest.approx(1.0)
    assert tiles.masks.flatten(1).sum(1).tolist() == [50, 0, 784, 0, 4, 15]
    assert tiles.areas.tolist() == pytest.approx([50.0, 0.0, 784.0, 0.0, 4.0, 15.0])
    # the same ground area as at native size: 200 px * 0.25 m² = 50 m²
    native = read_tile_folder(images, masks, size=SIDE, gsd=0.5)
    assert tiles.areas.tolist() == pytest.approx(native.areas.tolist())


def test_upscale_is_bilinear_for_images(tmp_path):
    images, masks = tmp_path / "i", tmp_path / "m"
    images.mkdir()
    masks.mkdir()
    Image.new("RGB", (14, 14), (10, 200, 30)).save(images / "a.png")
    Image.fromarray(_mask((0, 0, 7, 14), side=14)).save(masks / "a.png")
    tiles = read_tile_folder(images, masks, size=28, gsd=1.0)
    assert tiles.gsd == pytest.approx(0.5)
    assert (tiles.images[0, :, 5, 5] == torch.tensor([10, 200, 30], dtype=torch.uint8)).all()
    assert int(tiles.masks[0].sum()) == 14 * 28 and tiles.areas.item() == pytest.approx(14 * 28 * 0.25)


def test_areas_from_csv_by_stem_or_file_name(folders, tmp_path):
    images, masks = folders
    csv = _csv(tmp_path / "areas.csv", "name,area_m2\nt5.webp,7.5\nt0,12\nt1,0\nt2.png,300\nt3,0\nt4,1.25\n")
    tiles = read_tile_folder(images, masks, size=28, areas_csv=csv, gsd=0.3)
    assert tiles.areas.tolist() == pytest.approx([12.0, 0.0, 300.0, 0.0, 1.25, 7.5])
    assert tiles.labels.tolist() == [1, 0, 1, 0, 1, 1]  # labels still come from the masks
    assert tiles.gsd == pytest.approx(0.3 * 56 / 28)


def test_gsd_from_csv_column(folders, tmp_path):
    images, masks = folders
    rows = "".join(f"{stem},1,0.25\n" for stem in LAYOUT)
    csv = _csv(tmp_path / "areas.csv", "name,area_m2,gsd_m\n" + rows)
    tiles = read_tile_folder(images, masks, size=28, areas_csv=csv)
    assert tiles.gsd == pytest.approx(0.5) and tiles.areas.tolist() == [1.0] * 6
    # the argument wins over the column
    assert read_tile_folder(images, masks, size=28, areas_csv=csv, gsd=1.0).gsd == pytest.approx(2.0)


def test_csv_without_any_gsd_gives_nan_gsd(folders, tmp_path):
    images, masks = folders
    csv = _csv(tmp_path / "areas.csv", "name,area_m2\n" + "".join(f"{s},2\n" for s in LAYOUT))
    tiles = read_tile_folder(images, masks, size=28, areas_csv=csv)
    assert math.isnan(tiles.gsd) and tiles.areas.tolist() == [2.0] * 6


@pytest.mark.parametrize("mode", ["P", "RGB", "1", "I;16", "RGBA"])
def test_mask_modes(tmp_path, mode):
    images, masks = tmp_path / "i", tmp_path / "m"
    images.mkdir()
    masks.mkdir()
    _rgb(0).save(images / "a.png")
    grey = Image.fromarray(_mask((10, 10, 30, 20)))
    if mode == "P":
        mask = Image.new("P", grey.size)
        mask.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)  # index 1 is red
        mask.putdata([1 if v else 0 for v in grey.getdata()])
    elif mode == "RGB":
        mask = Image.merge("RGB", [grey.point(lambda v: 0), grey.point(lambda v: 0), grey])  # blue panels
    elif mode == "I;16":
        mask = Image.fromarray((np.asarray(grey) > 0).astype(np.uint16))  # value 1, not 255
    else:
        mask = grey.convert(mode)
    assert mask.mode == mode
    mask.save(masks / "a.png")
    tiles = read_tile_folder(images, masks, size=SIDE, gsd=1.0)
    assert int(tiles.masks.sum()) == 200 and tiles.labels.tolist() == [1]


def _raises(match: str, *args, **kwargs) -> str:
    with pytest.raises(RobustlabError, match=match) as info:
        read_tile_folder(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("size", [100, 0, -14, 28.0])
def test_size_must_be_a_positive_multiple_of_the_patch(folders, size):
    images, masks = folders
    message = _raises("not a multiple of the patch size 14", images, masks, size=size, gsd=1.0)
    assert repr(size) in message


def test_missing_and_empty_folders(tmp_path, folders):
    images, masks = folders
    _raises("image folder .* does not exist", tmp_path / "nope", masks, size=28, gsd=1.0)
    _raises("image folder .* is not a folder", images / "t0.png", masks, size=28, gsd=1.0)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("x")
    _raises("image folder .* has no images", empty, masks, size=28, gsd=1.0)
    _raises("mask folder .* does not exist", images, tmp_path / "nomasks", size=28, gsd=1.0)


def test_masks_not_matching_images(tmp_path, folders):
    images, masks = folders
    for stem in ("t1", "t3", "t4", "t5"):
        next(masks.glob(f"{stem}.*")).unlink()
    Image.fromarray(_mask(None)).save(masks / "stray.png")
    message = _raises("does not match image folder", images, masks, size=28, gsd=1.0)
    assert "4 image(s) without a mask (t1, t3, t4, ...)" in message
    assert "1 mask(s) without an image (stray)" in message


def test_two_files_with_one_stem(folders):
    images, masks = folders
    _rgb(9).save(images / "t0.jpg")
    message = _raises("two files with stem 't0'", images, masks, size=28, gsd=1.0)
    assert "t0.jpg" in message and "t0.png" in message


def test_mask_of_another_size(folders):
    images, masks = folders
    Image.fromarray(_mask(None, side=50)).save(masks / "t3.png")
    message = _raises("mask t3.png is 50x50 pixels but its image t3.jpeg is 56x56", images, masks, size=28, gsd=1.0)
    assert "must have its image's size" in message


def test_unreadable_image_and_mask(folders):
    images, masks = folders
    (images / "t2.png").write_bytes(b"definitely not a png")
    _raises("cannot read image file t2.png", images, masks, size=28, gsd=1.0)
    (images / "t2.png").unlink()
    _rgb(2).save(images / "t2.png")
    (masks / "t4.tiff").write_bytes(b"garbage")
    _raises("cannot read mask file t4.tiff", images, masks, size=28, gsd=1.0)


def test_tiles_of_different_sizes_or_not_square_need_no_gsd(tmp_path):
    images, masks = tmp_path / "i", tmp_path / "m"
    images.mkdir()
    masks.mkdir()
    _rgb(0, side=56).save(images / "a.png")
    Image.fromarray(_mask(None, side=56)).save(masks / "a.png")
    _rgb(1, side=42).save(images / "b.png")
    Image.fromarray(_mask(None, side=42)).save(masks / "b.png")
    message = _raises("tiles differ in size", images, masks, size=28, gsd=1.0)
    assert "a.png is 56x56" in message and "b.png is 42x42" in message
    # areas from a csv need no gsd, so sizes may differ
    csv = _csv(tmp_path / "areas.csv", "name,area_m2\na,1\nb,2\n")
    tiles = read_tile_folder(images, masks, size=28, areas_csv=csv)
    assert tiles.images.shape == (2, 3, 28, 28) and math.isnan(tiles.gsd)
    Image.new("RGB", (56, 42)).save(images / "b.png")
    Image.new("L", (56, 42)).save(masks / "b.png")
    _raises("b.png is 56x42 pixels; with a gsd, tiles must be square", images, masks, size=28, gsd=1.0)


def test_no_gsd_and_no_csv(folders):
    images, masks = folders
    _raises(r"give gsd \(metres per pixel\) or an areas.csv", images, masks, size=28)


@pytest.mark.parametrize("gsd", [0.0, -1.0, math.nan, math.inf])
def test_bad_gsd_argument(folders, gsd):
    images, masks = folders
    _raises("must be a positive finite number", images, masks, size=28, gsd=gsd)


ALL = "".join(f"{stem},1\n" for stem in LAYOUT)


@pytest.mark.parametrize("text, match", [
    (None, "areas csv .* does not exist"),
    ("name,area\n" + ALL, "lacks column.s. area_m2 .has name, area.; it needs name, area_m2"),
    ("stem,area_m2\n" + ALL, "lacks column.s. name"),
    ("", "lacks column.s. name, area_m2 .has none."),
    ("name,area_m2\n" + ALL + "t9,3\n", "line 8 .t9. names no image"),
    ("name,area_m2\n" + ALL + "t0.png,3\n", "line 8 .t0.png. repeats image 't0'"),
    ("name,area_m2\nt0,1\nt2,1\n", "no row for 4 image.s. .t1, t3, t4, ...."),
    ("name,area_m2\n" + ALL.replace("t3,1", "t3,lots"), "area_m2 'lots' in areas.csv line 5 .t3. is not allowed"),
    ("name,area_m2\n" + ALL.replace("t4,1", "t4,-2"), "area_m2 '-2' in areas.csv line 6 .t4."),
    ("name,area_m2\n" + ALL.replace("t4,1", "t4,nan"), "area_m2 'nan' in areas.csv line 6 .t4."),
    ("name,area_m2\n" + ALL.replace("t4,1", "t4,"), "area_m2 '' in areas.csv line 6 .t4."),
    ("name,area_m2,gsd_m\n" + ALL.replace(",1\n", ",1,0.3\n").replace("t2,1,0.3", "t2,1,0.4"),
     r"gsd_m differs between tiles in areas.csv \(0.3, 0.4\)"),
    ("name,area_m2,gsd_m\n" + ALL.replace(",1\n", ",1,0.3\n").replace("t2,1,0.3", "t2,1,x"),
     "gsd_m 'x' in areas.csv line 4 .t2. is not allowed"),
])
def test_bad_csv(folders, tmp_path, text, match):
    images, masks = folders
    path = tmp_path / "areas.csv"
    if text is not None:
        path.write_text(text)
    _raises(match, images, masks, size=28, areas_csv=path)


def test_csv_with_bom_and_padded_header(folders, tmp_path):
    images, masks = folders
    csv = tmp_path / "areas.csv"
    csv.write_text("\ufeffname , area_m2\n" + ALL, encoding="utf-8")
    assert read_tile_folder(images, masks, size=28, areas_csv=csv, gsd=1.0).areas.tolist() == [1.0] * 6
