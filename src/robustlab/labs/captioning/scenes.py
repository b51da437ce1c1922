"""``shapes-captions``: procedural captioning scenes with exact ground truth, captioned in English and Persian.

An offline stand-in for COCO captions whose content is known exactly, so a caption can be scored
object by object rather than only by n-gram overlap:

* **images**: ``S``×``S`` RGB uint8 (``S >= 32``), a dark background in one of five tints with
  Gaussian pixel noise (σ ≈ 5 grey levels) over everything;
* **objects**: 1..``max_objects`` (``1 + Binomial(max_objects - 1, 1/2)``, so 1:2:1 for three) in
  distinct cells of a 3×3 grid, each a colour (:data:`COLOURS`) × shape (:data:`SHAPES`) × size
  (:data:`SIZES`), centred in its cell up to a jitter of ±8 % of a cell; a big object spans at most
  98 % of its cell, so objects never overlap and every object lies inside its cell;
* **references**: ``n_refs`` raw captions per image and language from a small grammar (see
  :func:`generate_scenes`); the Persian ones are dirty the way machine-translated COCO is (Arabic
  ``ي``/``ك``, Latin digits, doubled spaces, detached ``می``, mixed commas), which
  :func:`~robustlab.labs.captioning.text.clean_caption` undoes.

:func:`fashion_scenes` builds the same kind of dataset from Fashion-MNIST items (tinted, pasted into
a 2×2 grid). Because the grammar is known, :func:`parse_mentions` reads the objects back out of a
cleaned caption, :func:`object_scores` scores captions on (colour, shape, cell) triples and
:func:`groundings` says which object each colour/shape word of a caption refers to.
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import torch
import torch.nn.functional as F

from robustlab.core.errors import RobustlabError
from robustlab.labs.captioning.text import Language, clean_caption

COLOURS: dict[str, str] = {
    "red": "قرمز",
    "green": "سبز",
    "blue": "آبی",
    "yellow": "زرد",
    "white": "سفید",
    "purple": "بنفش",
}
SHAPES: dict[str, str] = {
    "circle": "دایره",
    "square": "مربع",
    "triangle": "مثلث",
    "diamond": "لوزی",
    "cross": "ضربدر",
}
SIZES: dict[str, str] = {"small": "کوچک", "big": "بزرگ"}
#: the nine positions of the 3×3 grid, in cell order (row-major, top left first); the 2×2 grid of
#: :func:`fashion_scenes` uses the four corners
POSITIONS: dict[str, str] = {
    "top left": "بالا سمت چپ",
    "top": "بالا",
    "top right": "بالا سمت راست",
    "left": "سمت چپ",
    "center": "وسط",
    "right": "سمت راست",
    "bottom left": "پایین سمت چپ",
    "bottom": "پایین",
    "bottom right": "پایین سمت راست",
}
#: Fashion-MNIST class names in label order (0–9), English → Persian
FASHION_CLASSES: dict[str, str] = {
    "t-shirt": "تی‌شرت",
    "trouser": "شلوار",
    "pullover": "پلیور",
    "dress": "پیراهن زنانه",
    "coat": "کت",
    "sandal": "صندل",
    "shirt": "پیراهن",
    "sneaker": "کفش ورزشی",
    "bag": "کیف",
    "ankle boot": "نیم‌بوت",
}
GRID_POSITIONS: dict[int, tuple[str, ...]] = {
    3: tuple(POSITIONS),
    2: ("top left", "top right", "bottom left", "bottom right"),
}

# RGB of each colour in COLOURS order, and the background tints
_RGB = torch.tensor(
    [[220, 40, 40], [40, 190, 60], [50, 95, 235], [230, 210, 40], [235, 235, 235], [155, 60, 205]],
    dtype=torch.float32,
)
_BACKGROUND = torch.tensor(
    [[18, 18, 22], [12, 20, 34], [30, 16, 18], [16, 28, 18], [26, 24, 14]], dtype=torch.float32
)
_NOISE = 5.0  # pixel noise σ, grey levels
_COLOUR_JITTER = 12.0  # per-object colour jitter, ± grey levels
_BG_JITTER = 4.0
_POS_JITTER = 0.08  # object centre jitter, ± fraction of a cell
_RADIUS = {"small": 0.22, "big": 0.38}  # half-extent, fraction of a cell (± _RADIUS_JITTER)
_RADIUS_JITTER = 0.03
_FASHION_FILL = 0.8  # a Fashion-MNIST item is resized to this fraction of a cell
_CHUNK = 256
_MAX_CELLS = 9

_EN_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_FA_DIGITS = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
_TO_ARABIC = str.maketrans({"ی": "ي", "ک": "ك"})


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene: its grid ``cell`` (row-major, 0..grid²-1), its tight pixel ``box``
    ``(x0, y0, x1, y1)`` (end-exclusive, ``0 <= x0 < x1 <= S``), and its English ``colour``, ``shape``
    and ``size`` keys (``size`` is ``""`` for Fashion-MNIST items, which have none)."""

    cell: int
    box: tuple[int, int, int, int]
    colour: str
    shape: str
    size: str


@dataclass(frozen=True)
class Mention:
    """One object a caption mentions: its English colour/shape/size keys (``None`` where the caption
    omits one), its grid ``cell`` (``None`` without a position phrase), and ``positions``, the
    indices (ascending) in the token list of its colour word and shape word(s)."""

    colour: str | None
    shape: str
    size: str | None
    cell: int | None
    positions: tuple[int, ...]


@dataclass(eq=False)
class CaptionScenes:
    """``N`` captioned scenes: ``images`` uint8 ``(N, 3, S, S)``; ``references`` ``"en"``/``"fa"`` →
    per image its raw reference captions; ``objects`` per image its ground truth; ``grid`` the side
    of the cell grid (3, or 2 for Fashion-MNIST composites); ``source`` a plain description."""

    images: torch.Tensor
    references: dict[str, list[list[str]]]
    objects: list[list[SceneObject]]
    grid: int
    source: str

    def __len__(self) -> int:
        """The number of scenes ``N``."""
        return int(self.images.shape[0])

    def subset(self, index: torch.Tensor | Sequence[int]) -> CaptionScenes:
        """The scenes picked by ``index`` (int positions or a bool mask of length ``N``), in that order."""
        idx = torch.as_tensor(index)
        if idx.dtype == torch.bool:
            idx = idx.nonzero().flatten()
        idx = idx.to(torch.int64).flatten()
        picks = idx.tolist()
        return CaptionScenes(
            self.images[idx],
            {lang: [refs[i] for i in picks] for lang, refs in self.references.items()},
            [self.objects[i] for i in picks],
            self.grid,
            self.source,
        )


# --------------------------------------------------------------------------- generation


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_common(n: int, size: int, n_refs: int) -> None:
    if not _is_int(n) or n < 1:
        raise RobustlabError(f"the number of scenes must be an integer >= 1, got {n!r}")
    if not _is_int(size) or size < 32:
        raise RobustlabError(f"scene size must be an integer >= 32 pixels, got {size!r}")
    if not _is_int(n_refs) or n_refs < 1:
        raise RobustlabError(f"n_refs must be an integer >= 1, got {n_refs!r}")


def _uniform(gen: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
    return torch.rand(shape, generator=gen) * (hi - lo) + lo


def _backgrounds(gen: torch.Generator, n: int) -> torch.Tensor:
    """(n, 3) background colours."""
    tint = torch.randint(0, len(_BACKGROUND), (n,), generator=gen)
    return _BACKGROUND[tint] + _uniform(gen, (n, 3), -_BG_JITTER, _BG_JITTER)


def _layout(gen: torch.Generator, n: int, lo: int, hi: int, cells: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Object counts (n,) and distinct cells (n, hi) (only the first ``count`` of a row are used)."""
    if lo == 1:
        count = 1 + (torch.rand(n, hi - 1, generator=gen) < 0.5).sum(1)
    else:
        count = torch.randint(lo, hi + 1, (n,), generator=gen)
    cell = torch.rand(n, cells, generator=gen).argsort(1)[:, :hi]
    return count, cell


def _boxes(mask: torch.Tensor) -> torch.Tensor:
    """Tight end-exclusive boxes (P, 4) ``x0, y0, x1, y1`` of non-empty masks (P, H, W)."""
    cols, rows = mask.any(1), mask.any(2)
    w, h = mask.shape[2], mask.shape[1]
    x0 = cols.to(torch.int8).argmax(1)
    x1 = w - cols.flip(1).to(torch.int8).argmax(1)
    y0 = rows.to(torch.int8).argmax(1)
    y1 = h - rows.flip(1).to(torch.int8).argmax(1)
    return torch.stack([x0, y0, x1, y1], 1)


def _shape_masks(shape: int, cx: torch.Tensor, cy: torch.Tensor, r: torch.Tensor, size: int) -> torch.Tensor:
    """(P, S, S) bool masks of shape index ``shape`` centred at (cx, cy) with half-extent r (P,)."""
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    dx = coords.view(1, 1, size) - cx.view(-1, 1, 1)
    dy = coords.view(1, size, 1) - cy.view(-1, 1, 1)
    r = r.view(-1, 1, 1)
    ax, ay = dx.abs(), dy.abs()
    if shape == 0:  # circle
        return dx * dx + dy * dy <= r * r
    if shape == 1:  # square, a little smaller than the circle so the areas are comparable
        return torch.maximum(ax, ay) <= 0.85 * r
    if shape == 2:  # triangle, apex up, base of width 2r at the bottom
        return (ay <= r) & (ax <= (dy + r) * 0.5)
    if shape == 3:  # diamond
        return ax + ay <= r
    arm = torch.clamp(r / 3, min=0.5)  # cross: two bars, at least one pixel wide
    return ((ax <= arm) & (ay <= r)) | ((ay <= arm) & (ax <= r))


def generate_scenes(n: int, size: int = 64, seed: int = 0, n_refs: int = 5, max_objects: int = 3) -> CaptionScenes:
    """``n`` procedural scenes of ``size``×``size`` pixels with ``n_refs`` references per language.

    Returns :class:`CaptionScenes` with ``images`` uint8 ``(n, 3, size, size)``, ``grid`` 3 and, per
    image, 1..``max_objects`` :class:`SceneObject` in row-major cell order. References: reference 0
    lists the objects in that (reading) order, the others in a shuffled order; the size word appears
    in references 0, 2, 4, …; the three templates (a bare list; a count sentence, "there are two
    shapes: …" / "۲ شکل در تصویر دیده می‌شود: …"; "the picture shows …" / "در این تصویر … وجود
    دارد.") rotate from a random start. Same arguments → identical tensors and strings.

    Raises :class:`RobustlabError` unless ``n >= 1``, ``size >= 32``, ``n_refs >= 1`` and
    ``1 <= max_objects <= 9``.
    """
    _check_common(n, size, n_refs)
    if not _is_int(max_objects) or not 1 <= max_objects <= _MAX_CELLS:
        raise RobustlabError(f"max_objects must be an integer between 1 and {_MAX_CELLS}, got {max_objects!r}")
    gen = torch.Generator().manual_seed(seed)
    k = max_objects
    count, cell = _layout(gen, n, 1, k, _MAX_CELLS)
    cell = torch.where(torch.arange(k) < count[:, None], cell, _MAX_CELLS)  # absent slots sort last
    cell = cell.sort(1).values  # reading order
    colour = torch.randint(0, len(COLOURS), (n, k), generator=gen)
    shape = torch.randint(0, len(SHAPES), (n, k), generator=gen)
    big = torch.rand(n, k, generator=gen) < 0.5
    rgb = (_RGB[colour] + _uniform(gen, (n, k, 3), -_COLOUR_JITTER, _COLOUR_JITTER)).clamp(0, 255)
    jitter = _uniform(gen, (n, k, 2), -_POS_JITTER, _POS_JITTER)
    radius = torch.where(big, _RADIUS["big"], _RADIUS["small"]) + _uniform(gen, (n, k), -_RADIUS_JITTER,
                                                                             _RADIUS_JITTER)
    background = _backgrounds(gen, n)
    ref_seed = int(torch.randint(0, 2**62, (1,), generator=gen))

    step = size / 3
    present = torch.arange(k) < count[:, None]
    col, row = (cell % 3).float(), (cell // 3).float()
    cx = (col + 0.5 + jitter[..., 0]) * step
    cy = (row + 0.5 + jitter[..., 1]) * step
    r = radius * step
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    boxes = torch.zeros(n, k, 4, dtype=torch.int64)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        img_idx, slot = present[start:stop].nonzero(as_tuple=True)
        img_idx_g = img_idx + start
        obj_shape = shape[img_idx_g, slot]
        masks = torch.empty(len(img_idx), size, size, dtype=torch.bool)
        for s in range(len(SHAPES)):
            sel = (obj_shape == s).nonzero().flatten()
            if len(sel):
                g, sl = img_idx_g[sel], slot[sel]
                masks[sel] = _shape_masks(s, cx[g, sl], cy[g, sl], r[g, sl], size)
        boxes[img_idx_g, slot] = _boxes(masks)
        m = masks.to(torch.float32)
        paint = torch.zeros(stop - start, size, size, 3).index_add_(
            0, img_idx, m[..., None] * rgb[img_idx_g, slot][:, None, None, :]
        )
        cover = torch.zeros(stop - start, size, size).index_add_(0, img_idx, m)
        canvas = torch.where(cover[..., None] > 0, paint, background[start:stop, None, None, :]).permute(0, 3, 1, 2)
        canvas = canvas + torch.randn(canvas.shape, generator=gen) * _NOISE
        images[start:stop] = canvas.round().clamp(0, 255).to(torch.uint8)

    colour_keys, shape_keys = tuple(COLOURS), tuple(SHAPES)
    cl, cel, sh, bg = colour.tolist(), cell.tolist(), shape.tolist(), big.tolist()
    bx, cnt = boxes.tolist(), count.tolist()
    objects = [
        [
            SceneObject(cel[i][j], tuple(bx[i][j]), colour_keys[cl[i][j]], shape_keys[sh[i][j]],
                        "big" if bg[i][j] else "small")
            for j in range(cnt[i])
        ]
        for i in range(n)
    ]
    references = _references(objects, 3, n_refs, ref_seed, with_sizes=True, noun=("shape", "شکل"))
    return CaptionScenes(images, references, objects, 3, f"shapes-captions (procedural, seed {seed}, {size} px)")


def fashion_scenes(
    items: torch.Tensor, labels: torch.Tensor, n: int, size: int = 64, seed: int = 0, n_refs: int = 5
) -> CaptionScenes:
    """``n`` composites of 2–3 Fashion-MNIST ``items`` (uint8 ``(M, H, W)``, ink bright on black; their
    ``labels`` ``(M,)`` in 0–9) in distinct cells of a 2×2 grid.

    Each item (drawn uniformly with replacement) is resized to 80 % of a cell, tinted one of
    :data:`COLOURS` (its intensity is the alpha) and pasted with a small jitter, wholly inside its
    cell. ``objects`` have ``shape`` = the class name of :data:`FASHION_CLASSES`, ``size`` ``""``, and
    ``box`` the tight box of the pixels of alpha > 0.1 (the paste area where an item has none).
    References follow :func:`generate_scenes` without size words, e.g. "a red sneaker at the top
    left and a blue bag at the bottom right". Returns ``images`` uint8 ``(n, 3, size, size)``, ``grid`` 2.
    """
    _check_common(n, size, n_refs)
    if not isinstance(items, torch.Tensor) or items.dim() != 3 or items.dtype != torch.uint8 or len(items) == 0:
        raise RobustlabError("fashion items must be a non-empty uint8 tensor of shape (M, H, W)")
    labels = torch.as_tensor(labels).to(torch.int64).flatten()
    if len(labels) != len(items):
        raise RobustlabError(f"{len(items)} fashion items but {len(labels)} labels")
    if labels.min() < 0 or labels.max() >= len(FASHION_CLASSES):
        raise RobustlabError(f"fashion labels must be in 0..{len(FASHION_CLASSES) - 1}")
    gen = torch.Generator().manual_seed(seed)
    k = 3
    count, cell = _layout(gen, n, 2, k, 4)
    cell = torch.where(torch.arange(k) < count[:, None], cell, 4).sort(1).values
    pick = torch.randint(0, len(items), (n, k), generator=gen)
    colour = torch.randint(0, len(COLOURS), (n, k), generator=gen)
    rgb = (_RGB[colour] + _uniform(gen, (n, k, 3), -_COLOUR_JITTER, _COLOUR_JITTER)).clamp(0, 255)
    background = _backgrounds(gen, n)
    step = size / 2
    paste = round(_FASHION_FILL * step)
    slack = min(_POS_JITTER * step, (math.floor(step) - paste) / 2)
    jitter = _uniform(gen, (n, k, 2), -slack, slack)
    ref_seed = int(torch.randint(0, 2**62, (1,), generator=gen))

    present = torch.arange(k) < count[:, None]
    img_idx, slot = present.nonzero(as_tuple=True)
    obj_cell = cell[img_idx, slot]
    origin = torch.stack([obj_cell % 2, obj_cell // 2], 1).float() * step + (step - paste) / 2
    offset = (origin + jitter[img_idx, slot]).round().to(torch.int64)
    offset = offset.clamp(min=0, max=size - paste)
    alpha = F.interpolate(items[pick[img_idx, slot]].float()[:, None] / 255, size=(paste, paste),
                          mode="bilinear", antialias=True, align_corners=False)[:, 0].clamp(0, 1)
    ink = alpha > 0.1
    local = _boxes(ink)
    empty = ~ink.flatten(1).any(1)
    local[empty] = torch.tensor([0, 0, paste, paste])
    box = local + offset.repeat(1, 2)

    alpha_canvas = torch.zeros(n, size, size)
    colour_canvas = torch.zeros(n, size, size, 3)
    obj_rgb = rgb[img_idx, slot]
    for p, (i, (x, y)) in enumerate(zip(img_idx.tolist(), offset.tolist(), strict=True)):
        alpha_canvas[i, y : y + paste, x : x + paste] = alpha[p]
        colour_canvas[i, y : y + paste, x : x + paste] = obj_rgb[p]
    a = alpha_canvas[..., None]
    canvas = (background[:, None, None, :] * (1 - a) + colour_canvas * a).permute(0, 3, 1, 2)
    canvas = canvas + torch.randn(canvas.shape, generator=gen) * _NOISE
    images = canvas.round().clamp(0, 255).to(torch.uint8)

    names, colour_keys = tuple(FASHION_CLASSES), tuple(COLOURS)
    lab = labels[pick].tolist()
    cl, cel, cnt = colour.tolist(), cell.tolist(), count.tolist()
    bx = iter(box.tolist())
    objects = [
        [SceneObject(cel[i][j], tuple(next(bx)), colour_keys[cl[i][j]], names[lab[i][j]], "") for j in range(cnt[i])]
        for i in range(n)
    ]
    references = _references(objects, 2, n_refs, ref_seed, with_sizes=False, noun=("item", "مورد"))
    return CaptionScenes(images, references, objects, 2,
                         f"fashion-captions (Fashion-MNIST composites, seed {seed}, {size} px)")


# --------------------------------------------------------------------------- references


def _en_mention(obj: SceneObject, position: str, with_size: bool, rng: random.Random) -> str:
    size = f"{obj.size} " if with_size and obj.size else ""
    return f"a {size}{obj.colour} {obj.shape} {rng.choice(('at the', 'in the'))} {position}"


def _fa_mention(obj: SceneObject, position: str, with_size: bool) -> str:
    shape = SHAPES.get(obj.shape) or FASHION_CLASSES[obj.shape]
    size = f" {SIZES[obj.size]}" if with_size and obj.size else ""
    return f"یک {shape} {COLOURS[obj.colour]}{size} در {POSITIONS[position]}"


def _join(parts: list[str], comma: str, conjunction: str) -> str:
    if len(parts) == 1:
        return parts[0]
    return f"{comma} ".join(parts[:-1]) + f" {conjunction} " + parts[-1]


def _en_reference(objs: list[SceneObject], names: tuple[str, ...], template: int, with_size: bool,
                  noun: str, rng: random.Random) -> str:
    body = _join([_en_mention(o, names[o.cell], with_size, rng) for o in objs], ",", "and")
    if template == 0:
        text = body
    elif template == 1:
        count = len(objs)
        verb, plural = ("is", "") if count == 1 else ("are", "s")
        text = f"there {verb} {_EN_NUMBERS[count]} {noun}{plural}: {body}."
    else:
        text = f"the picture shows {body}."
    return text[0].upper() + text[1:] if rng.random() < 0.5 else text


def _fa_reference(objs: list[SceneObject], names: tuple[str, ...], template: int, with_size: bool,
                  noun: str, rng: random.Random) -> str:
    comma = "," if rng.random() < 0.2 else "،"
    body = _join([_fa_mention(o, names[o.cell], with_size) for o in objs], comma, "و")
    seen = "می شود" if rng.random() < 0.3 else "می‌شود"  # a detached verb prefix, as MT often writes it
    stop = "." if rng.random() < 0.7 else ""
    if template == 0:
        text = body + stop
    elif template == 1:
        if len(objs) == 1:  # no "یک شکل": hazm's spacing correction joins it into one word
            text = f"در تصویر فقط {body} دیده {seen}{stop}"
        else:
            digits = str(len(objs))
            digits = digits if rng.random() < 0.5 else digits.translate(_FA_DIGITS)
            colon = " :" if rng.random() < 0.3 else ":"
            text = f"{digits} {noun} در تصویر دیده {seen}{colon} {body}{stop}"
    else:
        text = f"در این تصویر {body} وجود دارد{stop}"
    if rng.random() < 0.3:
        text = text.translate(_TO_ARABIC)
    return " ".join(w + (" " if rng.random() < 0.1 else "") for w in text.split(" ")).rstrip(" ")


def _references(objects: list[list[SceneObject]], grid: int, n_refs: int, seed: int, *, with_sizes: bool,
                noun: tuple[str, str]) -> dict[str, list[list[str]]]:
    rng = random.Random(seed)
    names = GRID_POSITIONS[grid]
    en: list[list[str]] = []
    fa: list[list[str]] = []
    for objs in objects:
        start = rng.randrange(3)
        en_refs, fa_refs = [], []
        for j in range(n_refs):
            order = list(objs)
            if j:
                rng.shuffle(order)
            template, with_size = (start + j) % 3, with_sizes and j % 2 == 0
            en_refs.append(_en_reference(order, names, template, with_size, noun[0], rng))
            fa_refs.append(_fa_reference(order, names, template, with_size, noun[1], rng))
        en.append(en_refs)
        fa.append(fa_refs)
    return {"en": en, "fa": fa}


# --------------------------------------------------------------------------- parsing and scoring


@cache
def _lexicon(language: Language) -> tuple[dict[tuple[str, ...], tuple[str, str]], int]:
    """Cleaned token tuple → (kind, English key), and the longest entry's length."""
    entries: dict[tuple[str, ...], tuple[str, str]] = {}
    tables = (("colour", COLOURS), ("shape", SHAPES), ("shape", FASHION_CLASSES), ("size", SIZES),
              ("position", POSITIONS))
    for kind, table in tables:
        for en, fa in table.items():
            entries[tuple(clean_caption(en if language == "en" else fa, language, "builtin"))] = (kind, en)
    return entries, max(len(t) for t in entries)


def parse_mentions(tokens: Sequence[str], language: Language, grid: int = 3) -> list[Mention]:
    """The objects mentioned in ``tokens`` (the cleaned words of one caption), in caption order.

    Each shape (or Fashion-MNIST class) name, longest match first ("t shirt" before "shirt"), is one
    mention. In English its colour and size are the nearest such words between the previous mention's
    shape and this one, in Persian the first ones after it; its position is the first position phrase
    after it, before the next shape. ``cell`` is that phrase's cell in a ``grid``×``grid`` grid (3 or
    2; ``None`` for a phrase that grid lacks, such as "center" on the 2×2 grid). Never raises on a list
    of strings; words outside the grammar are skipped.
    """
    if language not in ("en", "fa"):
        raise RobustlabError(f"language must be 'en' or 'fa', got {language!r}")
    lexicon, longest = _lexicon(language)
    cells = {name: c for c, name in enumerate(GRID_POSITIONS.get(grid, ()))}
    tokens = [t if isinstance(t, str) else str(t) for t in tokens]
    found: list[tuple[int, int, str, str]] = []  # start, end, kind, key
    i = 0
    while i < len(tokens):
        for length in range(min(longest, len(tokens) - i), 0, -1):
            hit = lexicon.get(tuple(tokens[i : i + length]))
            if hit is not None:
                found.append((i, i + length, *hit))
                i += length
                break
        else:
            i += 1
    shapes = [f for f in found if f[2] == "shape"]
    mentions = []
    for s, (start, end, _, key) in enumerate(shapes):
        before_lo = shapes[s - 1][1] if s else 0
        after_hi = shapes[s + 1][0] if s + 1 < len(shapes) else len(tokens)
        before = [f for f in found if before_lo <= f[0] and f[1] <= start]
        after = [f for f in found if end <= f[0] and f[1] <= after_hi]
        if language == "en":
            colour = next((f for f in reversed(before) if f[2] == "colour"), None)
            size = next((f for f in reversed(before) if f[2] == "size"), None)
        else:
            colour = next((f for f in after if f[2] == "colour"), None)
            size = next((f for f in after if f[2] == "size"), None)
        position = next((f for f in after if f[2] == "position"), None)
        indices = ([colour[0]] if colour else []) + list(range(start, end))
        mentions.append(Mention(
            colour[3] if colour else None,
            key,
            size[3] if size else None,
            cells.get(position[3]) if position else None,
            tuple(sorted(indices)),
        ))
    return mentions


def object_scores(hyps: Sequence[Sequence[str]], objects: Sequence[Sequence[SceneObject]], language: Language,
                  grid: int = 3) -> dict[str, float]:
    """Micro ``precision``/``recall``/``f1`` (0–1) of the (colour, shape, cell) triples that the
    hypotheses (cleaned token lists, one per scene) mention against each scene's ground truth.

    Every mention counts (a repeated phrase is a false positive), and each ground-truth object is
    matched at most once. ``count_accuracy`` is the share of scenes whose number of distinct mentioned
    triples equals their number of objects. Precision is 0 when nothing is mentioned at all.
    """
    if len(hyps) != len(objects):
        raise RobustlabError(f"{len(hyps)} hypotheses for {len(objects)} scenes")
    tp = n_hyp = n_true = count_ok = 0
    for hyp, objs in zip(hyps, objects, strict=True):
        mentions = parse_mentions(hyp, language, grid)
        unmatched = [(o.colour, o.shape, o.cell) for o in objs]
        for m in mentions:
            triple = (m.colour, m.shape, m.cell)
            if triple in unmatched:
                unmatched.remove(triple)
                tp += 1
        n_hyp += len(mentions)
        n_true += len(objs)
        count_ok += len({(m.colour, m.shape, m.cell) for m in mentions}) == len(objs)
    precision = tp / n_hyp if n_hyp else 0.0
    recall = tp / n_true if n_true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "count_accuracy": count_ok / len(objects) if objects else 0.0}


def groundings(tokens: Sequence[str], objects: Sequence[SceneObject], language: Language) -> list[tuple[int, int]]:
    """``(token index, object index)`` for each colour and shape word of every mention in ``tokens``
    whose (colour, shape) matches exactly one of the scene's ``objects`` (positions ignored), in
    token order; the pairs an attention-localisation score uses."""
    pairs = []
    for m in parse_mentions(tokens, language):
        hits = [j for j, o in enumerate(objects) if (o.colour, o.shape) == (m.colour, m.shape)]
        if len(hits) == 1:
            pairs.extend((p, hits[0]) for p in m.positions)
    return sorted(pairs)
