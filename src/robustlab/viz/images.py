"""Images on axes: one image, a tiled montage, a grid of images and labelled rows of images.

Images are float pixels in [0, 1]: one image ``(C, H, W)`` or a batch ``(N, C, H, W)`` with
C = 1 (gray) or 3 (RGB); other channel counts show their first channel (montages) or first three
(:func:`to_image`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustlab.viz.figure import new_figure, save_figure, set_margins

GAP = 1
"""White pixels between the tiles of a montage."""


def to_image(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """One image ``C×H×W`` (or ``H×W``) in [0, 1] → a numpy array matplotlib shows as is, clipped to
    [0, 1]: ``H×W`` for one channel, ``H×W×3`` for three, the first three channels otherwise."""
    a = x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.moveaxis(a[:3] if a.shape[0] >= 3 else a[:1].repeat(3, 0), 0, -1)
    return np.clip(a, 0.0, 1.0)


def show_image(ax: Any, img: np.ndarray, title: str = "", color: str = "black", fontsize: float = 8) -> None:
    """Draw ``img`` (``H×W`` gray or ``H×W×3`` RGB in [0, 1], e.g. from :func:`to_image` or
    :func:`montage`) on ``ax`` pixel for pixel, without ticks, titled ``title`` when given."""
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize, color=color)


def montage(images: torch.Tensor, ncol: int) -> np.ndarray:
    """Tile ``images`` ``(N, C, H, W)`` in [0, 1] into one array, ``ncol`` per row, :data:`GAP`-pixel
    white gaps: ``(rows*(H+1)-1, ncol*(W+1)-1)`` for gray, ``(..., 3)`` for RGB."""
    x = images.detach().float().cpu().clamp(0, 1)
    n, c, h, w = x.shape
    if c not in (1, 3):
        x = x[:, :1]
        c = 1
    ncol = max(1, min(ncol, n))
    nrow = max(1, -(-n // ncol))
    grid = torch.ones(c, nrow * (h + GAP) - GAP, ncol * (w + GAP) - GAP)
    for i in range(n):
        r, col = divmod(i, ncol)
        grid[:, r * (h + GAP): r * (h + GAP) + h, col * (w + GAP): col * (w + GAP) + w] = x[i]
    arr = grid.numpy()
    return arr[0] if c == 1 else np.moveaxis(arr, 0, -1)


def image_rows(rows: Sequence[tuple[str, torch.Tensor]], path: str | Path, title: str = "") -> Path:
    """One montage row per ``(label, images (N, C, H, W))``, labels on the left: e.g. inputs vs
    reconstructions. All rows must have the same image size; gray rows are shown in RGB when another
    row is RGB. Writes a PNG to ``path`` and returns it."""
    rgb = any(t.shape[1] == 3 for _, t in rows)
    fig = new_figure(1.0 + 0.75 * max(t.shape[0] for _, t in rows), 0.15 + 0.85 * len(rows))
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, (label, imgs) in zip(axes, rows, strict=True):
        imgs = imgs.repeat(1, 3, 1, 1) if rgb and imgs.shape[1] == 1 else imgs
        show_image(ax, montage(imgs, imgs.shape[0]))
        ax.set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    set_margins(fig, left=1.2, right=0.1, bottom=0.05, top=0.4 if title else 0.05, hspace=0.08)
    return save_figure(fig, path, tight=False)


def image_grid(images: torch.Tensor, ncol: int, path: str | Path, title: str = "",
               row_labels: Sequence[str] | None = None) -> Path:
    """``images`` ``(N, C, H, W)`` tiled ``ncol`` per row, with an optional label per row (e.g. the
    class). Writes a PNG to ``path`` and returns it."""
    nrow = -(-images.shape[0] // ncol)
    fig = new_figure((1.2 if row_labels else 0.2) + 0.55 * ncol, 0.45 + 0.55 * nrow)
    ax = fig.subplots()
    show_image(ax, montage(images, ncol), title, fontsize=9)
    if row_labels:
        h = images.shape[-2] + GAP
        ax.set_yticks([h * i + (h - GAP) / 2 for i in range(len(row_labels))])
        ax.set_yticklabels(list(row_labels), fontsize=8)
    set_margins(fig, left=1.1 if row_labels else 0.1, right=0.1, bottom=0.1, top=0.35 if title else 0.1)
    return save_figure(fig, path, tight=False)
