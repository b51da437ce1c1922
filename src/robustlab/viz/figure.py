"""Blank figures, PNG files and the colours shared by every robustlab figure.

Figures are :class:`matplotlib.figure.Figure` objects with their own Agg canvas (never ``pyplot``),
so drawing touches no global backend or display.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from robustlab.core.io import atomic_write_bytes

DPI = 110
"""Dots per inch of every figure (a ``w`` × ``h`` inch figure is about ``110·w`` × ``110·h`` pixels)."""

PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
"""Okabe-Ito: eight colour-blind-friendly line colours, for attacks, runs or metrics in turn."""

RED = "#C62828"
"""The colour of a wrong prediction."""


def new_figure(width: float, height: float) -> Figure:
    """A blank ``width`` × ``height`` inch figure with a white background and an Agg canvas
    (``fig.canvas.draw()`` then ``fig.canvas.buffer_rgba()`` give its pixels)."""
    fig = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path, dpi: int = DPI, *, tight: bool = True) -> Path:
    """Render ``fig`` as a PNG into ``path`` atomically (parent folders created) and return ``path``.

    ``tight`` crops the image to what is drawn (at the cost of a second draw); without it the image is
    the figure's full size, for figures that place their axes with :func:`set_margins`.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None, facecolor="white")
    return atomic_write_bytes(Path(path), buf.getvalue())


def set_margins(
    fig: Figure,
    left: float = 0.7,
    right: float = 0.25,
    bottom: float = 0.5,
    top: float = 0.35,
    wspace: float = 0.35,
    hspace: float = 0.55,
) -> None:
    """Place ``fig``'s subplots with margins given in inches (``wspace``/``hspace``: fractions of the
    mean axes width/height, as in ``subplots_adjust``)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        wspace=wspace, hspace=hspace)


def category_cmap(n: int) -> str:
    """The name of a colormap that tells ``n`` categories apart: tab10 up to 10, tab20 up to 20,
    viridis beyond."""
    return "tab10" if n <= 10 else "tab20" if n <= 20 else "viridis"
