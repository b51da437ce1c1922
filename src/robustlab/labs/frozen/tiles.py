"""Procedural aerial tiles of rooftops, some carrying solar-panel arrays, with exact panel masks.

An offline stand-in for aerial imagery in which panels are to be found and their area measured.
Each tile is a square RGB image seen from straight above, built in this order (later layers cover
earlier ones):

* **ground**: two octaves of smooth noise in one of three palettes (grass, bare soil, dry field);
* **roads**: 0–2 grey bands a few pixels wide at random angles;
* **pools**: in about 30 % of tiles, one light or mid blue rounded rectangle with a pale rim
  (a distractor: blue, but untextured);
* **roofs**: 1–4 rotated rectangles with sides of about 14–40 px, one half darker (the ridge),
  coloured red, grey, white or dark grey-blue (the last a deliberate panel look-alike, plain);
* **trees**: 2–9 shaded dark-green discs of radius 3–7 px;
* **panels** (positive tiles only): 1..``max_arrays`` rotated dark-blue rectangles with a light cell
  grid (lines about every 3 px one way and 5 px the other, in the array's own frame), about 80 % of
  them centred on a roof, the rest anywhere. Panels are drawn last, so the mask is exactly the set
  of pixels where panel is visible.

Mild per-pixel noise covers everything. Sizes above are for a 112 px tile: the scene is laid out in
tile-relative units, so for a given seed a larger ``size`` renders the same scene at a finer
resolution (the panel pixel counts scale with ``size**2``; the matching ground sampling distance is
``gsd * 112 / size``). Generation is deterministic for a given seed and argument set, and the
scenes do not depend on ``positive_fraction``: the same seed with fewer positives gives the same
pixels everywhere except where panels were left out.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from robustlab.core.errors import RobustlabError

PATCH_SIZE = 14
"""Tile sizes must be a multiple of this (the ViT patch size)."""

_BASE = 112.0  # scene geometry is drawn in the pixel units of a 112 px tile
_CHUNK = 16  # tiles rendered at once, to bound memory
_MAX_ROADS, _MAX_ROOFS, _MAX_TREES = 2, 4, 9

# ground palettes: (main colour, patch colour), RGB in [0, 1]
_GROUND = torch.tensor(
    [
        [[0.30, 0.42, 0.20], [0.40, 0.48, 0.24]],  # grass
        [[0.50, 0.40, 0.29], [0.42, 0.36, 0.27]],  # bare soil
        [[0.62, 0.57, 0.42], [0.50, 0.50, 0.33]],  # dry field
    ]
)
# roof colours: red, grey, dark grey-blue (panel look-alike), white
_ROOF = torch.tensor([[0.62, 0.26, 0.20], [0.55, 0.55, 0.54], [0.18, 0.21, 0.29], [0.86, 0.86, 0.83]])
_POOL_LIGHT = torch.tensor([0.50, 0.80, 0.90])
_POOL_MID = torch.tensor([0.18, 0.52, 0.78])
_POOL_RIM = torch.tensor([0.85, 0.84, 0.80])
_TREE = torch.tensor([0.12, 0.28, 0.10])
_PANEL = torch.tensor([0.07, 0.11, 0.33])
_PANEL_LINE = torch.tensor([0.62, 0.68, 0.80])


@dataclass(frozen=True, eq=False)
class Tiles:
    """A batch of ``N`` square aerial tiles of side ``S`` pixels and their panel annotations.

    ``images`` are uint8 ``(N, 3, S, S)`` RGB; ``masks`` are bool ``(N, S, S)``, true exactly on the
    visible panel pixels; ``labels`` are int64 ``(N,)``, 1 where a tile has panels and 0 elsewhere;
    ``areas`` are float32 ``(N,)``, the panel area in square metres, ``masks.sum((1, 2)) * gsd**2``;
    ``gsd`` is the ground sampling distance in metres per pixel.
    """

    images: torch.Tensor
    masks: torch.Tensor
    labels: torch.Tensor
    areas: torch.Tensor
    gsd: float

    def __len__(self) -> int:
        """The number of tiles ``N``."""
        return int(self.labels.shape[0])

    def subset(self, index: torch.Tensor) -> Tiles:
        """The tiles picked by ``index`` (int64 positions or a bool mask of length ``N``), same ``gsd``."""
        return Tiles(self.images[index], self.masks[index], self.labels[index], self.areas[index], self.gsd)


def generate_tiles(
    n: int,
    size: int = 112,
    seed: int = 0,
    positive_fraction: float = 0.5,
    gsd: float = 0.3,
    max_arrays: int = 3,
) -> Tiles:
    """``n`` tiles of ``size``×``size`` pixels, ``round(n * positive_fraction)`` of them with panels.

    The positive tiles sit at positions shuffled by ``seed``; each has 1..``max_arrays`` panel arrays
    (uniformly many) and a non-empty mask (at 112 px, at least about 20 pixels). Negative tiles have an
    all-false mask and zero area. ``gsd`` (metres per pixel) sets only ``areas``. The same arguments
    give bit-identical tiles; a different seed gives different tiles.

    Raises :class:`RobustlabError` unless ``n >= 1``, ``size`` is a positive multiple of
    :data:`PATCH_SIZE`, ``0 <= positive_fraction <= 1``, ``gsd > 0`` and ``max_arrays >= 1``.
    """
    _check(n, size, positive_fraction, gsd, max_arrays)
    gen = torch.Generator().manual_seed(seed)
    positive = torch.zeros(n, dtype=torch.bool)
    positive[torch.randperm(n, generator=gen)[: round(n * positive_fraction)]] = True
    scene = _draw_scene(gen, n, max_arrays)
    scene["panel_on"] &= positive[:, None]
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    masks = torch.empty(n, size, size, dtype=torch.bool)
    for start in range(0, n, _CHUNK):
        part = {key: value[start : start + _CHUNK] for key, value in scene.items()}
        images[start : start + _CHUNK], masks[start : start + _CHUNK] = _render(part, size, gen)
    areas = masks.sum((1, 2)).to(torch.float32) * gsd**2
    return Tiles(images, masks, positive.to(torch.int64), areas, float(gsd))


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check(n: int, size: int, positive_fraction: float, gsd: float, max_arrays: int) -> None:
    if not _is_int(n) or n < 1:
        raise RobustlabError(f"the number of tiles must be an integer >= 1, got {n!r}")
    if not _is_int(size) or size < PATCH_SIZE or size % PATCH_SIZE:
        raise RobustlabError(
            f"tile size {size!r} is not a positive multiple of the patch size {PATCH_SIZE}; use 112, 224, …"
        )
    if not 0.0 <= positive_fraction <= 1.0:
        raise RobustlabError(f"positive_fraction must be between 0 and 1, got {positive_fraction!r}")
    if not gsd > 0:
        raise RobustlabError(f"gsd (metres per pixel) must be > 0, got {gsd!r}")
    if not _is_int(max_arrays) or max_arrays < 1:
        raise RobustlabError(f"max_arrays must be an integer >= 1, got {max_arrays!r}")


def _uniform(gen: torch.Generator, shape: tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
    return torch.rand(shape, generator=gen) * (hi - lo) + lo


def _present(gen: torch.Generator, n: int, lo: int, hi: int, slots: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Slot presence (n, slots) for a count drawn uniformly in lo..hi, and the counts (n,)."""
    count = torch.randint(lo, hi + 1, (n,), generator=gen)
    return torch.arange(slots) < count[:, None], count


def _draw_scene(gen: torch.Generator, n: int, max_arrays: int) -> dict[str, torch.Tensor]:
    """Every random choice for ``n`` tiles, in 112 px units, independent of tile size and labels."""
    s: dict[str, torch.Tensor] = {}
    palette = torch.randint(0, len(_GROUND), (n,), generator=gen)
    s["ground"] = _GROUND[palette] + _uniform(gen, (n, 1, 3), -0.03, 0.03)  # (n, 2, 3)
    s["field_low"] = torch.randn(n, 1, 4, 4, generator=gen)
    s["field_mid"] = torch.randn(n, 1, 14, 14, generator=gen)

    r = _MAX_ROADS
    s["road_on"], _ = _present(gen, n, 0, r, r)
    s["road_x"], s["road_y"] = _uniform(gen, (n, r), 10, 102), _uniform(gen, (n, r), 10, 102)
    s["road_angle"] = _uniform(gen, (n, r), 0, math.pi)
    s["road_half"] = _uniform(gen, (n, r), 1.5, 3.0)
    s["road_grey"] = _uniform(gen, (n, r), 0.38, 0.55)

    s["pool_on"] = torch.rand(n, 1, generator=gen) < 0.3
    s["pool_x"], s["pool_y"] = _uniform(gen, (n, 1), 14, 98), _uniform(gen, (n, 1), 14, 98)
    s["pool_angle"] = _uniform(gen, (n, 1), 0, math.pi)
    s["pool_half_u"], s["pool_half_v"] = _uniform(gen, (n, 1), 5, 10), _uniform(gen, (n, 1), 3.5, 6)
    s["pool_radius"] = _uniform(gen, (n, 1), 1.5, 3.0)
    t = torch.rand(n, 1, 1, generator=gen)
    s["pool_colour"] = _POOL_LIGHT * t + _POOL_MID * (1 - t)  # (n, 1, 3)

    k = _MAX_ROOFS
    s["roof_on"], roof_count = _present(gen, n, 1, k, k)
    s["roof_x"], s["roof_y"] = _uniform(gen, (n, k), 12, 100), _uniform(gen, (n, k), 12, 100)
    s["roof_angle"] = _uniform(gen, (n, k), 0, math.pi)
    side_a, side_b = _uniform(gen, (n, k), 14, 40), _uniform(gen, (n, k), 14, 40)
    s["roof_half_u"], s["roof_half_v"] = torch.maximum(side_a, side_b) / 2, torch.minimum(side_a, side_b) / 2
    kind = torch.randint(0, len(_ROOF), (n, k), generator=gen)
    s["roof_colour"] = (_ROOF[kind] + _uniform(gen, (n, k, 3), -0.04, 0.04)).clamp(0, 1)  # (n, k, 3)
    shade = _uniform(gen, (n, k), 0.68, 0.85)
    s["roof_shade"] = torch.where(torch.rand(n, k, generator=gen) < 0.5, shade, -shade)  # sign: darker half

    t_ = _MAX_TREES
    s["tree_on"], _ = _present(gen, n, 2, t_, t_)
    s["tree_x"], s["tree_y"] = _uniform(gen, (n, t_), 0, 112), _uniform(gen, (n, t_), 0, 112)
    s["tree_r"] = _uniform(gen, (n, t_), 3, 7)
    s["tree_colour"] = _TREE * _uniform(gen, (n, t_, 1), 0.8, 1.25)  # (n, t, 3)

    a = max_arrays
    s["panel_on"], _ = _present(gen, n, 1, a, a)
    on_roof = torch.rand(n, a, generator=gen) < 0.8
    roof_pick = (torch.rand(n, a, generator=gen) * roof_count[:, None]).long()  # a present roof
    pick = {name: s[f"roof_{name}"].gather(1, roof_pick) for name in ("x", "y", "angle", "half_u", "half_v")}
    off_u, off_v = _uniform(gen, (n, a), -0.4, 0.4), _uniform(gen, (n, a), -0.4, 0.4)
    cos, sin = pick["angle"].cos(), pick["angle"].sin()
    du, dv = off_u * pick["half_u"], off_v * pick["half_v"]
    roof_x, roof_y = pick["x"] + du * cos - dv * sin, pick["y"] + du * sin + dv * cos
    turn = torch.where(torch.rand(n, a, generator=gen) < 0.25, math.pi / 2, 0.0)
    roof_angle = pick["angle"] + turn + _uniform(gen, (n, a), -0.05, 0.05)
    free_x, free_y = _uniform(gen, (n, a), 8, 104), _uniform(gen, (n, a), 8, 104)
    free_angle = _uniform(gen, (n, a), 0, math.pi)
    # centres at least 4 units in from the edge keep a 3-unit disc (~28 px at 112 px) of every array visible
    s["panel_x"] = torch.where(on_roof, roof_x, free_x).clamp(4, _BASE - 4)
    s["panel_y"] = torch.where(on_roof, roof_y, free_y).clamp(4, _BASE - 4)
    s["panel_angle"] = torch.where(on_roof, roof_angle, free_angle)
    s["panel_half_u"], s["panel_half_v"] = _uniform(gen, (n, a), 4, 18), _uniform(gen, (n, a), 3, 10)
    s["panel_colour"] = _PANEL * _uniform(gen, (n, a, 1), 0.8, 1.25)  # (n, a, 3)
    s["panel_line"] = _PANEL_LINE * _uniform(gen, (n, a, 1), 0.85, 1.1)
    s["panel_pitch_u"], s["panel_pitch_v"] = _uniform(gen, (n, a), 4.5, 5.5), _uniform(gen, (n, a), 2.7, 3.3)
    return s


def _frame(
    xs: torch.Tensor, x: torch.Tensor, y: torch.Tensor, angle: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates (C, S, S) in the frame centred at (x, y) (each (C,)) rotated by ``angle``."""
    dx = xs[None, None, :] - x[:, None, None]  # (C, 1, S)
    dy = xs[None, :, None] - y[:, None, None]  # (C, S, 1)
    cos, sin = angle.cos()[:, None, None], angle.sin()[:, None, None]
    return dx * cos + dy * sin, dy * cos - dx * sin


def _inside(u: torch.Tensor, v: torch.Tensor, half_u: torch.Tensor, half_v: torch.Tensor) -> torch.Tensor:
    """Bool (C, S, S): inside the rectangle of half sides (C,) centred on the frame's origin."""
    return (u.abs() <= half_u[:, None, None]) & (v.abs() <= half_v[:, None, None])


def _band(v: torch.Tensor, half: torch.Tensor, pixel: float) -> torch.Tensor:
    """Anti-aliased coverage in [0, 1] of the band ``|v| <= half`` (half (C, 1, 1)); pixels ``pixel`` wide."""
    return (half - v.abs()).mul_(1 / pixel).add_(0.5).clamp_(0, 1)


def _absent(on: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """Half extents (C, 1, 1), made hugely negative for absent objects so that they cover no pixel."""
    return torch.where(on, half, -1e4)[:, None, None]


def _grid_lines(coord: torch.Tensor, pitch: torch.Tensor, width: float, pixel: float) -> torch.Tensor:
    """Anti-aliased coverage in [0, 1] of lines ``width`` wide every ``pitch`` (C, 1, 1) along ``coord``."""
    phase = torch.remainder(coord, pitch)
    dist = torch.minimum(phase, pitch - phase)
    return dist.mul_(-1 / pixel).add_(0.5 * width / pixel + 0.5).clamp_(0, 1)


def _tint(field: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """``field`` (C, 1, S, S) times ``colour`` ((C, 3, 1, 1) or (3, 1, 1)): a (C, 3, S, S) image."""
    return field.expand(-1, 3, -1, -1) * colour  # expanding the field first is much faster on CPU


def _panels(s: dict[str, torch.Tensor], xs: torch.Tensor, pixel: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Panel colours (C, 3, S, S), valid under the bool mask (C, S, S) of the arrays' union."""
    count, size = s["panel_on"].shape[0], xs.shape[0]
    masks = torch.zeros(count, size, size, dtype=torch.bool)
    base = torch.zeros(count, size, size)
    line = torch.zeros(count, size, size)
    grid = torch.zeros(count, size, size)
    for k in range(s["panel_on"].shape[1]):
        u, v = _frame(xs, s["panel_x"][:, k], s["panel_y"][:, k], s["panel_angle"][:, k])
        # at 14 px (pixels 8 units wide) arrays grow to reach the nearest pixel centre; from 28 px on no change
        half_v = s["panel_half_v"][:, k].clamp(min=0.71 * pixel)
        half_u = torch.where(s["panel_on"][:, k], s["panel_half_u"][:, k].clamp(min=0.71 * pixel), -1.0)
        array = _inside(u, v, half_u, half_v)
        weight = array.to(torch.float32)
        lines = torch.maximum(
            _grid_lines(u + half_u[:, None, None], s["panel_pitch_u"][:, k, None, None], 0.7, pixel),
            _grid_lines(v + half_v[:, None, None], s["panel_pitch_v"][:, k, None, None], 0.7, pixel),
        )
        grid = torch.lerp(grid, lines, weight)
        base = torch.lerp(base, s["panel_colour"][:, k, :1, None] / _PANEL[0], weight)
        line = torch.lerp(line, s["panel_line"][:, k, :1, None] / _PANEL_LINE[0], weight)
        masks |= array
    panel = _tint((base * (1 - grid))[:, None], _PANEL[:, None, None])
    panel += _tint((line * grid)[:, None], _PANEL_LINE[:, None, None])
    return panel, masks


def _render(s: dict[str, torch.Tensor], size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (C, 3, S, S) and bool panel masks (C, S, S) for the scene parameters ``s``.

    Every layer but the panels has anti-aliased edges; panel edges are hard so that the mask is exact.
    """
    count = s["road_on"].shape[0]
    pixel = _BASE / size
    xs = (torch.arange(size, dtype=torch.float32) + 0.5) * pixel

    low = F.interpolate(s["field_low"], size=(size, size), mode="bicubic", align_corners=False)
    mid = F.interpolate(s["field_mid"], size=(size, size), mode="bilinear", align_corners=False)
    main, patch = s["ground"][:, 0, :, None, None], s["ground"][:, 1, :, None, None]
    canvas = _tint(torch.sigmoid(2.0 * low), patch - main).add_(main).mul_(1 + 0.08 * mid + 0.04 * low)

    for k in range(_MAX_ROADS):
        _, v = _frame(xs, s["road_x"][:, k], s["road_y"][:, k], s["road_angle"][:, k])
        cover = _band(v, _absent(s["road_on"][:, k], s["road_half"][:, k]), pixel)
        canvas = torch.lerp(canvas, s["road_grey"][:, k, None, None, None], cover[:, None])

    u, v = _frame(xs, s["pool_x"][:, 0], s["pool_y"][:, 0], s["pool_angle"][:, 0])
    radius = s["pool_radius"][:, 0, None, None]
    qu = u.abs_() - _absent(s["pool_on"][:, 0], s["pool_half_u"][:, 0]) + radius
    qv = v.abs_() - s["pool_half_v"][:, 0, None, None] + radius
    inside = radius - torch.hypot(qu.clamp(min=0), qv.clamp(min=0)) - torch.maximum(qu, qv).clamp_(max=0)
    rim = (inside / pixel + 0.5).clamp_(0, 1)[:, None]
    water = ((inside - 1.2) / pixel + 0.5).clamp_(0, 1)[:, None]
    canvas = torch.lerp(canvas, _POOL_RIM[:, None, None].expand(count, 3, 1, 1), rim)
    canvas = torch.lerp(canvas, s["pool_colour"][:, 0, :, None, None], water)

    for k in range(_MAX_ROOFS):
        u, v = _frame(xs, s["roof_x"][:, k], s["roof_y"][:, k], s["roof_angle"][:, k])
        shade = s["roof_shade"][:, k, None, None]
        cover = torch.minimum(
            _band(u, _absent(s["roof_on"][:, k], s["roof_half_u"][:, k]), pixel),
            _band(v, s["roof_half_v"][:, k, None, None], pixel),
        )
        dark = (v * shade.sign()).mul_(1 / pixel).add_(0.5).clamp_(0, 1)  # one half of the roof in shadow
        dark = torch.maximum(dark, _band(v, torch.tensor(0.5), pixel).mul_(0.6))  # and the ridge line
        factor = dark.mul_(shade.abs() - 1).add_(1)
        colour = _tint(factor[:, None], s["roof_colour"][:, k, :, None, None])
        canvas = torch.lerp(canvas, colour, cover[:, None])

    light = torch.zeros(count, size, size)
    cover = torch.zeros(count, size, size)
    for k in range(_MAX_TREES):
        r = s["tree_r"][:, k, None, None]
        dx = (xs[None, None, :] - s["tree_x"][:, k, None, None]) / r  # (C, 1, S), in radii
        dy = (xs[None, :, None] - s["tree_y"][:, k, None, None]) / r  # (C, S, 1)
        brightness = s["tree_colour"][:, k, :1, None] / _TREE[0]
        # lit from the top left, darker towards the rim
        shading = (1.15 - 0.3 * dx - 0.35 * dx * dx) * brightness + (-0.3 * dy - 0.35 * dy * dy) * brightness
        edge = r / (2 * pixel)  # (1 - d²) * edge is about the distance inside the rim, in pixels
        offset = torch.where(s["tree_on"][:, k, None, None], edge + 0.5, -1e4)
        disc = ((dx * dx * -edge + offset) - dy * dy * edge).clamp_(0, 1)
        light = torch.lerp(light, shading, disc)
        cover = torch.maximum(cover, disc)
    canvas = torch.lerp(canvas, _tint(light[:, None], _TREE[:, None, None]), cover[:, None])

    masks = torch.zeros(count, size, size, dtype=torch.bool)
    rows = s["panel_on"].any(1).nonzero().squeeze(1)  # only tiles with panels pay for drawing them
    if len(rows):
        panel, masks[rows] = _panels({key: value[rows] for key, value in s.items()}, xs, pixel)
        canvas[rows] = torch.lerp(canvas[rows], panel, masks[rows, None].to(torch.float32))

    canvas += 0.02 * torch.randn(canvas.shape, generator=gen)
    images = canvas.clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return images, masks
