"""Matplotlib plumbing shared by the report and explain figures.

Figures are built with :class:`matplotlib.figure.Figure` directly (never ``pyplot``), so nothing
touches a global backend or a display: rendering is Agg into a PNG, written atomically.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from robustlab.core.io import atomic_write_bytes

DPI = 110
# Colour-blind-friendly palette (Okabe-Ito), used for lines of attacks / runs.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
RED = "#C62828"


def new_figure(width: float, height: float) -> Figure:
    """A blank figure of ``width`` × ``height`` inches with a white background."""
    fig = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = DPI) -> Path:
    """Render ``fig`` as PNG into ``path`` atomically (parent folders created) and return ``path``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return atomic_write_bytes(Path(path), buf.getvalue())


def to_image(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """One image ``C×H×W`` (or ``H×W``) in [0, 1] → a numpy array matplotlib shows as is:
    ``H×W`` for one channel, ``H×W×3`` for three, the first three channels otherwise."""
    a = x.detach().cpu().float().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, dtype=np.float32)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.moveaxis(a[:3] if a.shape[0] >= 3 else a[:1].repeat(3, 0), 0, -1)
    return np.clip(a, 0.0, 1.0)


def show_image(ax, img: np.ndarray, title: str = "", color: str = "black", fontsize: float = 8) -> None:
    """Draw ``img`` (from :func:`to_image`) on ``ax`` without ticks, gray for one channel."""
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize, color=color)


def plain(text: object) -> str:
    """``text`` with ``$`` escaped, so matplotlib draws it literally instead of parsing math."""
    return str(text).replace("$", r"\$")


def label_name(class_names: Sequence[str] | None, index: int) -> str:
    """``class_names[index]`` when known, else the index as text (ready for matplotlib)."""
    if class_names is not None and 0 <= index < len(class_names):
        return plain(class_names[index])
    return str(index)
