"""Font-rendered digits: a second, SVHN-like digit domain for domain-shift experiments.

:func:`render_font_digits` draws digits 0–9 with the TrueType/OpenType fonts installed on this system
(``/usr/share/fonts`` and friends; PIL's built-in font when there are none), in a random colour on a
random colour background with a gradient, flanked by partial neighbouring digits as in house-number
crops, with slight rotation, scale, aspect and offset jitter, blur and pixel noise.

Generation is deterministic given ``seed`` *and the installed fonts*: a machine with other fonts
draws other (equally valid) images. Glyphs are rendered once per font and cached; composing 12,000
32×32 images takes a few seconds on one core, and results are cached per process.

Registered as dataset ``font-digits``: train = 10,000 images from seed 0, test = 2,000 from seed 1,
balanced over the ten classes.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageChops, ImageDraw, ImageFont

from robustlab.core.errors import RobustlabError
from robustlab.core.progress import log
from robustlab.data.base import Transform
from robustlab.data.registry import register_specs
from robustlab.data.spec import DatasetInfo, DatasetSpec, size_pair
from robustlab.data.tensor_dataset import TensorImageDataset

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.fonts", "~/.local/share/fonts")
FONT_DIRS_ENV = "ROBUSTLAB_FONT_DIRS"  # extra folders, os.pathsep-separated, searched first
MAX_FONTS = 32
_SKIP_FONTS = re.compile(r"symbol|emoji|dingbat|wingding|webding|math|icon|awesome|braille|music|ornament", re.I)
SPLIT_SEEDS = {"train": 0, "test": 1}
SPLIT_SIZES = {"train": 10_000, "test": 2_000}

FONT_DIGITS_INFO = DatasetInfo(
    name="font-digits",
    num_classes=10,
    channels=3,
    image_size=(32, 32),
    mean=(0.5, 0.5, 0.5),
    std=(0.28, 0.28, 0.28),
    train_size=SPLIT_SIZES["train"],
    test_size=SPLIT_SIZES["test"],
    description="font digits: 32x32 colour digits rendered from system fonts, SVHN-like (generated)",
    class_names=tuple(str(i) for i in range(10)),
)


def find_font_files() -> list[Path]:
    """TrueType/OpenType files on this system, sorted, symbol fonts skipped, at most ``MAX_FONTS``."""
    dirs = [d for d in os.environ.get(FONT_DIRS_ENV, "").split(os.pathsep) if d] + list(FONT_DIRS)
    found: set[Path] = set()
    for d in dirs:
        folder = Path(d).expanduser()
        if folder.is_dir():
            found.update(
                p for p in folder.rglob("*") if p.suffix.lower() in (".ttf", ".otf") and not _SKIP_FONTS.search(p.name)
            )
    fonts = sorted(found)
    if len(fonts) > MAX_FONTS:  # spread the choice over the sorted list (families differ most)
        fonts = [fonts[i] for i in np.linspace(0, len(fonts) - 1, MAX_FONTS).round().astype(int)]
    return fonts


def _render_glyph(font: ImageFont.ImageFont | ImageFont.FreeTypeFont, digit: int, px: int) -> Image.Image | None:
    canvas = Image.new("L", (3 * px, 3 * px), 0)
    ImageDraw.Draw(canvas).text((px, px // 2), str(digit), font=font, fill=255)
    box = canvas.getbbox()
    return None if box is None else canvas.crop(box)


def _default_font(px: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=px)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


@lru_cache(maxsize=4)
def glyph_bank(px: int) -> tuple[tuple[Image.Image, ...], ...]:
    """Per usable font, the ten digit glyphs (font size ``px``) as "L" ink masks cropped to their ink."""
    bank = []
    for path in find_font_files():
        try:
            font = ImageFont.truetype(str(path), px)
            glyphs = tuple(_render_glyph(font, d, px) for d in range(10))
        except (OSError, ValueError) as exc:
            log.debug("skipping font %s: %s", path, exc)
            continue
        # fonts without digits draw nothing, or the same "missing glyph" box for every digit
        if any(g is None for g in glyphs) or len({(g.size, g.tobytes()) for g in glyphs}) < 10:
            continue
        bank.append(glyphs)
    if not bank:
        log.info("no usable system fonts found; drawing font digits with PIL's built-in font")
        glyphs = tuple(_render_glyph(_default_font(px), d, px) for d in range(10))
        if any(g is None for g in glyphs):
            raise RobustlabError("cannot render digits: no usable font (install fonts-dejavu-core)")
        bank.append(glyphs)
    return tuple(bank)


def _place(
    glyph: Image.Image, size: int, centre: tuple[float, float], sx: float, sy: float, angle: float
) -> Image.Image:
    """Draw ``glyph`` into an empty ``size``×``size`` mask with one bilinear affine resampling.

    The glyph is scaled by (sx, sy), rotated by ``angle`` (radians) and centred at ``centre`` = (x, y).
    """
    cos, sin = math.cos(angle), math.sin(angle)
    # inverse map: output pixel -> glyph pixel = diag(1/sx, 1/sy) · R(-angle) · (p - centre) + glyph centre
    a, b, d, e = cos / sx, sin / sx, -sin / sy, cos / sy
    gx, gy = glyph.width / 2, glyph.height / 2
    cx, cy = centre
    coeffs = (a, b, gx - a * cx - b * cy, d, e, gy - d * cx - e * cy)
    return glyph.transform((size, size), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _masks(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Ink masks uint8 N×size×size: the labelled digit centred, partial neighbours at the sides."""
    bank = glyph_bank(max(12, size))  # glyphs about as tall as the output: little resampling loss
    n = labels.shape[0]
    font_idx = rng.integers(0, len(bank), n).tolist()
    heights = (size * rng.uniform(0.5, 0.8, n)).tolist()
    aspects = rng.uniform(0.8, 1.2, n).tolist()
    angles = np.radians(rng.uniform(-12.0, 12.0, n)).tolist()
    offsets = (rng.uniform(-0.08, 0.08, (n, 2)) * size).tolist()
    has_nb = (rng.random((n, 2)) < 0.75).tolist()
    nb_digits = rng.integers(0, 10, (n, 2)).tolist()
    gaps = rng.uniform(0.02, 0.15, (n, 2)).tolist()
    label_list = labels.tolist()
    masks = np.zeros((n, size, size), dtype=np.uint8)
    for i in range(n):
        glyphs = bank[font_idx[i]]
        glyph = glyphs[label_list[i]]
        sy = heights[i] / glyph.height
        sx = sy * aspects[i]
        cx, cy = size / 2 + offsets[i][1], size / 2 + offsets[i][0]
        mask = _place(glyph, size, (cx, cy), sx, sy, angles[i])
        cos, sin = math.cos(angles[i]), math.sin(angles[i])
        for side, sign in enumerate((-1.0, 1.0)):
            if not has_nb[i][side]:
                continue
            nb = glyphs[nb_digits[i][side]]
            # step along the (rotated) text line: half of each width plus a gap
            step = sign * ((glyph.width + nb.width) / 2 * sx + gaps[i][side] * heights[i])
            centre = (cx + step * cos, cy + step * sin)
            mask = ImageChops.lighter(mask, _place(nb, size, centre, sx, sy, angles[i]))
        masks[i] = np.asarray(mask)
    return masks


def _colourize(masks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Colour N masks (vectorized): float32 N×H×W×3 in [0, 1] with gradient background, blur and noise."""
    n, h, w = masks.shape
    bg = rng.random((n, 3), dtype=np.float32)
    fg = rng.random((n, 3), dtype=np.float32)
    low_contrast = np.abs(_luma(fg) - _luma(bg)) < 0.3
    bright_bg = _luma(bg) > 0.5
    fg = np.where((low_contrast & bright_bg)[:, None], fg * 0.3, fg)
    fg = np.where((low_contrast & ~bright_bg)[:, None], 1.0 - (1.0 - fg) * 0.3, fg)
    theta = rng.uniform(0, 2 * np.pi, n).astype(np.float32)
    amp = rng.uniform(0.0, 0.25, n).astype(np.float32)
    ys = np.linspace(-0.5, 0.5, h, dtype=np.float32)[None, :, None]
    xs = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, None, :]
    ramp = np.cos(theta)[:, None, None] * xs + np.sin(theta)[:, None, None] * ys
    background = bg[:, None, None, :] + (amp[:, None, None] * ramp)[..., None]
    m = masks[..., None].astype(np.float32) / 255.0
    img = background * (1.0 - m) + fg[:, None, None, :] * m
    # blend with a 3×3 box blur by a random amount: from crisp to camera-soft
    padded = np.pad(img, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    rows = padded[:, :-2] + padded[:, 1:-1] + padded[:, 2:]  # separable 3×3 box filter
    blur = (rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]) / 9.0
    b = rng.uniform(0.0, 1.0, n).astype(np.float32)[:, None, None, None]
    img = (1.0 - b) * img + b * blur
    noise_std = rng.uniform(0.01, 0.06, n).astype(np.float32)[:, None, None, None]
    img = img + noise_std * rng.standard_normal(img.shape, dtype=np.float32)
    return np.clip(img, 0.0, 1.0)


@lru_cache(maxsize=8)
def _render_cached(n: int, image_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 10)
    masks = _masks(labels, image_size, rng)
    images = np.empty((n, 3, image_size, image_size), dtype=np.uint8)
    for start in range(0, n, 2048):  # bound the float32 working set
        chunk = _colourize(masks[start : start + 2048], rng)
        images[start : start + 2048] = np.rint(chunk * 255.0).astype(np.uint8).transpose(0, 3, 1, 2)
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def render_font_digits(n: int, image_size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` digit images: (uint8 N×3×S×S, int64 N labels 0..9, each class ``n // 10`` or one more).

    Same ``(n, image_size, seed)`` and same installed fonts give identical output.
    """
    if n < 0 or image_size < 8:
        raise RobustlabError(f"font digits need n >= 0 and image_size >= 8, got n={n}, image_size={image_size}")
    images, labels = _render_cached(int(n), int(image_size), int(seed))
    return images.clone(), labels.clone()


def load_font_digits(
    split: str,
    root: Path | None = None,
    transform: Transform | None = None,
    image_size: int | tuple[int, int] | None = None,
    **_: object,
) -> TensorImageDataset:
    """``font-digits`` ``split``: train 10,000 (seed 0) or test 2,000 (seed 1), 3×S×S (S default 32)."""
    h, w = size_pair(32 if image_size is None else image_size)
    if h != w or h < 8:
        raise RobustlabError(f"font digits are square and at least 8x8; got image size {(h, w)}")
    size = h
    images, labels = _render_cached(SPLIT_SIZES[split], size, SPLIT_SEEDS[split])
    info = dataclasses.replace(FONT_DIGITS_INFO, image_size=(size, size))
    return TensorImageDataset(images, labels, info, transform)


SPECS = (DatasetSpec(FONT_DIGITS_INFO, load_font_digits, lambda root: True, resizable=True, aliases=("fontdigits",)),)

register_specs(SPECS)
