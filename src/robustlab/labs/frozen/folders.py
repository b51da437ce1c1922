"""Real aerial tiles with solar-panel masks, read from folders (BDAPPV-style or Bradbury-style layouts)
into the same :class:`~robustlab.labs.frozen.tiles.Tiles` container the procedural generator returns.

Layout::

    images/  a.jpg  b.png  c.tif ...      RGB tiles (png, jpg, jpeg, tif, tiff, bmp, webp)
    masks/   a.png  b.png  c.png ...      one mask per image, matched by file stem
    areas.csv (optional)                  name, area_m2[, gsd_m]

Every image must have exactly one mask (a tile without panels has an all-black mask); a mask may have
another extension than its image. A mask pixel is panel where its value is > 0: colour and palette
masks are converted to 8-bit grey (``L``) first, 16-bit and float masks are compared as stored.
Files starting with ``.`` (``.DS_Store``, ``._a.png``) and files with other extensions are ignored.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from robustlab.core.errors import RobustlabError
from robustlab.labs.frozen.tiles import PATCH_SIZE, Tiles

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp"})
"""File extensions (lower-cased) read as images or masks."""

_RAW_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
"""Mask modes compared as stored (converting them to ``L`` would clip or round small values)."""

_SHOWN = 3
"""How many stems an error message lists."""


@dataclass(frozen=True)
class _Area:
    area_m2: float
    gsd_m: float | None


def read_tile_folder(images: str | Path, masks: str | Path, size: int, areas_csv: str | Path | None = None,
                     gsd: float | None = None) -> Tiles:
    """Read an image folder and its mask folder into :class:`Tiles` of side ``size``, sorted by file stem.

    Returns ``images`` uint8 ``(N, 3, size, size)`` (RGB, resized bilinearly), ``masks`` bool
    ``(N, size, size)`` (resized with nearest neighbour, then ``> 0``), ``labels`` int64 ``(N,)`` (1
    where the resized mask has any panel pixel, else 0), ``areas`` float32 ``(N,)`` in m² and ``gsd``,
    the metres per pixel of the *resized* tiles (``original gsd * original side / size``).

    The ground sample distance of the originals is ``gsd`` (metres per original pixel) when given,
    else the ``gsd_m`` column of ``areas_csv`` (one value for all tiles). When it is known, all
    originals must be square and of one size, so that one effective gsd describes every resized tile.
    Areas come from ``areas_csv`` (``area_m2`` per ``name``, the image's stem or file name; every image
    exactly once, no other rows) when given, else from the resized mask: panel pixels * ``gsd ** 2``.
    With an ``areas_csv`` and no gsd anywhere, tile sizes may differ and the returned ``gsd`` is NaN.

    Raises :class:`RobustlabError` (one line: what is wrong, what is allowed) for a ``size`` that is
    not a positive multiple of 14, a missing or empty image folder, a missing mask folder, images
    without masks or masks without images, two files with one stem, an unreadable image or mask, a
    mask whose size differs from its image's, tiles of different sizes when a gsd is used, no gsd and
    no ``areas_csv``, and a malformed ``areas_csv`` (missing file or columns, missing, duplicate or
    extra names, non-numeric, negative or non-finite values, differing ``gsd_m``).
    """
    _check_size(size)
    if gsd is not None:
        gsd = _positive_number(gsd, "gsd", "the gsd argument")
    image_files = _listing(Path(images), "image")
    if not image_files:
        raise RobustlabError(f"image folder {str(images)!r} has no images; it needs files ending in "
                             f"{', '.join(sorted(IMAGE_SUFFIXES))}")
    mask_files = _listing(Path(masks), "mask")
    _check_matching(image_files, mask_files, Path(images), Path(masks))
    stems = sorted(image_files)

    table = None
    if areas_csv is not None:
        table = _read_areas(Path(areas_csv), image_files)
        if gsd is None:
            gsd = _csv_gsd(table, Path(areas_csv))
    if gsd is None and table is None:
        raise RobustlabError("give gsd (metres per pixel) or an areas.csv with name and area_m2 columns; "
                             "neither was given, so tile areas cannot be computed")

    n = len(stems)
    out_images = torch.empty((n, 3, size, size), dtype=torch.uint8)
    out_masks = torch.empty((n, size, size), dtype=torch.bool)
    original: tuple[int, int] | None = None
    first = ""
    for i, stem in enumerate(stems):
        rgb, mask = _read_pair(image_files[stem], mask_files[stem])
        if gsd is not None:
            w, h = rgb.size
            if w != h:
                raise RobustlabError(f"tile {image_files[stem].name} is {w}x{h} pixels; with a gsd, tiles must be "
                                     "square so that one gsd describes the resized tile")
            if original is None:
                original, first = rgb.size, image_files[stem].name
            elif rgb.size != original:
                raise RobustlabError(f"tiles differ in size ({first} is {original[0]}x{original[1]}, "
                                     f"{image_files[stem].name} is {w}x{h}); with a gsd, all tiles must share "
                                     "one size")
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
        small = mask.resize((size, size), Image.Resampling.NEAREST)
        out_images[i] = torch.from_numpy(np.asarray(rgb, dtype=np.uint8).copy()).permute(2, 0, 1)
        out_masks[i] = torch.from_numpy(np.asarray(small, dtype=np.uint8) > 0)

    labels = out_masks.flatten(1).any(dim=1).to(torch.int64)
    if gsd is not None:
        assert original is not None
        effective = gsd * original[0] / size
    else:
        effective = math.nan
    if table is not None:
        areas = torch.tensor([table[stem].area_m2 for stem in stems], dtype=torch.float32)
    else:
        counts = out_masks.flatten(1).sum(dim=1).to(torch.float64)
        areas = (counts * effective ** 2).to(torch.float32)
    return Tiles(images=out_images, masks=out_masks, labels=labels, areas=areas, gsd=float(effective))


def check_tile_folder(images: str | Path, masks: str | Path) -> int:
    """Without reading any pixels: both folders exist, hold images, and pair one mask with every
    image by stem (one-line errors as :func:`read_tile_folder`'s); returns the number of tiles."""
    image_dir, mask_dir = Path(images), Path(masks)
    found = _listing(image_dir, "image")
    if not found:
        raise RobustlabError(f"image folder {str(image_dir)!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    _check_matching(found, _listing(mask_dir, "mask"), image_dir, mask_dir)
    return len(found)


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or size % PATCH_SIZE:
        raise RobustlabError(f"image size {size!r} is not a multiple of the patch size {PATCH_SIZE}; "
                             f"give a positive multiple of {PATCH_SIZE} such as 224")


def _listing(folder: Path, kind: str) -> dict[str, Path]:
    """Image-like files of ``folder`` by stem (not recursive; dot-files and other extensions skipped)."""
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise RobustlabError(f"{kind} folder {str(folder)!r} {what}; give the folder that holds the {kind} files")
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        if path.stem in files:
            raise RobustlabError(f"{kind} folder {str(folder)!r} has two files with stem {path.stem!r} "
                                 f"({files[path.stem].name}, {path.name}); each stem may appear once")
        files[path.stem] = path
    return files


def _few(stems: list[str]) -> str:
    shown = ", ".join(stems[:_SHOWN])
    return shown + (", ..." if len(stems) > _SHOWN else "")


def _check_matching(images: dict[str, Path], masks: dict[str, Path], image_dir: Path, mask_dir: Path) -> None:
    no_mask = sorted(set(images) - set(masks))
    no_image = sorted(set(masks) - set(images))
    if not no_mask and not no_image:
        return
    parts = []
    if no_mask:
        parts.append(f"{len(no_mask)} image(s) without a mask ({_few(no_mask)})")
    if no_image:
        parts.append(f"{len(no_image)} mask(s) without an image ({_few(no_image)})")
    raise RobustlabError(f"mask folder {str(mask_dir)!r} does not match image folder {str(image_dir)!r}: "
                         f"{'; '.join(parts)}; every image needs one mask with the same file stem")


def _open(path: Path, kind: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RobustlabError(f"cannot read {kind} file {path.name} ({reason}); it must be an image PIL can open "
                             f"({', '.join(sorted(IMAGE_SUFFIXES))})") from exc


def _read_pair(image_path: Path, mask_path: Path) -> tuple[Image.Image, Image.Image]:
    """The RGB image and its ``L`` mask (0 background, 255 panel), both at the original size."""
    rgb = _open(image_path, "image").convert("RGB")
    raw = _open(mask_path, "mask")
    if raw.size != rgb.size:
        raise RobustlabError(f"mask {mask_path.name} is {raw.size[0]}x{raw.size[1]} pixels but its image "
                             f"{image_path.name} is {rgb.size[0]}x{rgb.size[1]}; a mask must have its image's size")
    values = np.asarray(raw) if raw.mode in _RAW_MODES else np.asarray(raw.convert("L"))
    panel = values > 0
    return rgb, Image.fromarray(panel.astype(np.uint8) * 255)


def _positive_number(value: object, column: str, where: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise RobustlabError(f"{column} {value!r} in {where} is not allowed; it must be a positive finite number")
    return number


def _read_areas(path: Path, images: dict[str, Path]) -> dict[str, _Area]:
    """``areas.csv`` rows by image stem; every image exactly once, no other names."""
    if not path.is_file():
        raise RobustlabError(f"areas csv {str(path)!r} does not exist; give a csv with columns name, area_m2 "
                             "and optionally gsd_m")
    by_name = {p.name: stem for stem, p in images.items()}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        missing = [c for c in ("name", "area_m2") if c not in columns]
        if missing:
            raise RobustlabError(f"areas csv {path.name} lacks column(s) {', '.join(missing)} (has "
                                 f"{', '.join(columns) or 'none'}); it needs name, area_m2 and optionally gsd_m")
        reader.fieldnames = columns
        has_gsd = "gsd_m" in columns
        table: dict[str, _Area] = {}
        for row in reader:
            line = reader.line_num
            name = (row.get("name") or "").strip()
            where = f"{path.name} line {line} ({name or 'no name'})"
            stem = name if name in images else by_name.get(name)
            if stem is None:
                raise RobustlabError(f"{where} names no image in the image folder; every row must name one "
                                     "image by stem or file name")
            if stem in table:
                raise RobustlabError(f"{where} repeats image {stem!r}; each image may appear once")
            raw_area = (row.get("area_m2") or "").strip()
            try:
                area = float(raw_area)
            except ValueError:
                area = math.nan
            if not math.isfinite(area) or area < 0:
                raise RobustlabError(f"area_m2 {raw_area!r} in {where} is not allowed; it must be a finite "
                                     "number >= 0 (square metres)")
            tile_gsd = _positive_number((row.get("gsd_m") or "").strip(), "gsd_m", where) if has_gsd else None
            table[stem] = _Area(area, tile_gsd)
    absent = sorted(set(images) - set(table))
    if absent:
        raise RobustlabError(f"areas csv {path.name} has no row for {len(absent)} image(s) ({_few(absent)}); "
                             "every image needs one row")
    return table


def _csv_gsd(table: dict[str, _Area], path: Path) -> float | None:
    """The one ``gsd_m`` of the csv, ``None`` without the column; differing values are an error."""
    values = {stem: a.gsd_m for stem, a in sorted(table.items()) if a.gsd_m is not None}
    if not values:
        return None
    distinct = sorted(set(values.values()))
    if len(distinct) > 1:
        shown = ", ".join(f"{g:g}" for g in distinct[:_SHOWN])
        raise RobustlabError(f"gsd_m differs between tiles in {path.name} ({shown}); all tiles must share one gsd "
                             "(metres per pixel)")
    return distinct[0]
