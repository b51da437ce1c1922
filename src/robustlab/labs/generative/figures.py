"""Figures of the generative families (matplotlib Agg, PNG; the codebook animation as a GIF with Pillow).

Every function draws from plain tensors / metric records (no model), writes one file atomically and
returns its path. Images are ``(N, C, H, W)`` float in [0, 1] with C = 1 (gray) or 3 (RGB).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedFormatter, FixedLocator, MaxNLocator, NullLocator

from robustlab.core.io import atomic_write_bytes

GIF_FRAME_MS = 400
DPI = 100
# Okabe-Ito, colour-blind friendly (as the report's figures)
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
_PAD = 1


def new_figure(width: float, height: float) -> Figure:
    """A blank ``width`` × ``height`` inch figure drawn with Agg (no pyplot, no global state)."""
    fig = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Render ``fig`` as PNG into ``path`` atomically and return ``path``.

    One draw, no ``bbox_inches="tight"`` and no ``tight_layout`` (each costs a further full draw):
    the figures place their axes with ``subplots_adjust`` margins instead.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white")
    return atomic_write_bytes(Path(path), buf.getvalue())


def _margins(fig: Figure, left: float = 0.7, right: float = 0.25, bottom: float = 0.5, top: float = 0.35,
             wspace: float = 0.35, hspace: float = 0.55) -> None:
    """Axes margins in inches (converted to the figure fractions ``subplots_adjust`` wants)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h,
                        wspace=wspace, hspace=hspace)


def montage(images: torch.Tensor, ncol: int) -> np.ndarray:
    """Tile ``images`` ``(N, C, H, W)`` in [0, 1] into one array, ``ncol`` per row, 1-pixel white gaps:
    ``(rows*(H+1)-1, ncol*(W+1)-1)`` for gray, ``(..., 3)`` for RGB."""
    x = images.detach().float().cpu().clamp(0, 1)
    n, c, h, w = x.shape
    if c not in (1, 3):
        x = x[:, :1]
        c = 1
    ncol = max(1, min(ncol, n))
    nrow = max(1, -(-n // ncol))
    grid = torch.ones(c, nrow * (h + _PAD) - _PAD, ncol * (w + _PAD) - _PAD)
    for i in range(n):
        r, col = divmod(i, ncol)
        grid[:, r * (h + _PAD): r * (h + _PAD) + h, col * (w + _PAD): col * (w + _PAD) + w] = x[i]
    arr = grid.numpy()
    return arr[0] if c == 1 else np.moveaxis(arr, 0, -1)


def _show(ax: Any, arr: np.ndarray, title: str = "") -> None:
    ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def code_cmap(num_codes: int) -> Any:
    """A categorical colormap with ``num_codes`` entries (tab10 up to 10 codes, tab20 up to 20, viridis beyond)."""
    name = "tab10" if num_codes <= 10 else "tab20" if num_codes <= 20 else "viridis"
    return colormaps[name].resampled(max(num_codes, 2))


def code_colours(indices: torch.Tensor, num_codes: int, size: tuple[int, int]) -> torch.Tensor:
    """Code maps ``(N, h, w)`` int64 → RGB images ``(N, 3, H, W)`` in [0, 1] (nearest upsampling to
    ``size``), one colour per code."""
    cmap = code_cmap(num_codes)
    table = torch.tensor(cmap(np.arange(max(num_codes, 2)))[:, :3], dtype=torch.float32)
    rgb = table[indices.cpu()].permute(0, 3, 1, 2)
    return torch.nn.functional.interpolate(rgb, size=size, mode="nearest")


def image_rows(rows: Sequence[tuple[str, torch.Tensor]], path: str | Path, title: str = "") -> Path:
    """One montage row per ``(label, images (N, C, H, W))``, labels on the left: e.g. inputs vs
    reconstructions. All rows must have the same image size and channel count (gray rows are
    repeated to RGB when mixed)."""
    rgb = any(t.shape[1] == 3 for _, t in rows)
    fig = new_figure(1.0 + 0.75 * max(t.shape[0] for _, t in rows), 0.15 + 0.85 * len(rows))
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, (label, imgs) in zip(axes, rows, strict=True):
        imgs = imgs.repeat(1, 3, 1, 1) if rgb and imgs.shape[1] == 1 else imgs
        _show(ax, montage(imgs, imgs.shape[0]))
        ax.set_ylabel(label, fontsize=9, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    _margins(fig, left=1.2, right=0.1, bottom=0.05, top=0.4 if title else 0.05, hspace=0.08)
    return save_figure(fig, path)


def image_grid(images: torch.Tensor, ncol: int, path: str | Path, title: str = "",
               row_labels: Sequence[str] | None = None) -> Path:
    """``images`` ``(N, C, H, W)`` tiled ``ncol`` per row; optional label per row (e.g. the class)."""
    nrow = -(-images.shape[0] // ncol)
    fig = new_figure((1.2 if row_labels else 0.2) + 0.55 * ncol, 0.45 + 0.55 * nrow)
    ax = fig.subplots()
    arr = montage(images, ncol)
    _show(ax, arr, title)
    if row_labels:
        h = images.shape[-2] + _PAD
        ax.set_yticks([h * i + (h - _PAD) / 2 for i in range(len(row_labels))])
        ax.set_yticklabels(list(row_labels), fontsize=8)
    _margins(fig, left=1.1 if row_labels else 0.1, right=0.1, bottom=0.1, top=0.35 if title else 0.1)
    return save_figure(fig, path)


def loss_curves(metrics: Sequence[Mapping[str, Any]], panels: Sequence[tuple[str, Sequence[str], bool]],
                path: str | Path, title: str = "") -> Path | None:
    """Training curves from ``metrics.jsonl`` records: one panel per ``(title, metric names, log scale)``,
    each metric in its own colour, train solid and validation dashed, against the epoch. Panels
    without data are dropped; ``None`` when none is left."""

    def series(key: str) -> tuple[list[float], list[float]]:
        pts = [(float(r.get("epoch", i + 1)), float(r[key])) for i, r in enumerate(metrics)
               if isinstance(r.get(key), int | float) and math.isfinite(r[key])]
        return ([p[0] for p in pts], [p[1] for p in pts]) if pts else ([], [])

    kept = [(t, [m for m in names if series(f"train_{m}")[0] or series(f"val_{m}")[0]], log)
            for t, names, log in panels]
    kept = [p for p in kept if p[1]]
    if not kept:
        return None
    fig = new_figure(4.2 * len(kept), 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(kept), squeeze=False)).ravel()
    for ax, (panel_title, names, log) in zip(axes, kept, strict=True):
        for j, m in enumerate(names):
            for split, style in (("train", "-"), ("val", "--")):
                xs, ys = series(f"{split}_{m}")
                if xs:
                    ax.plot(xs, ys, style, marker="o", markersize=2.5, linewidth=1.4, color=PALETTE[j % len(PALETTE)],
                            label=f"{split} {m.replace('_', ' ')}")
        if log and all(y > 0 for m in names for s in ("train", "val") for y in series(f"{s}_{m}")[1]):
            ax.set_yscale("log")
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    _margins(fig, left=0.9, right=0.2, bottom=0.5, top=0.65 if title else 0.35, wspace=0.4)
    return save_figure(fig, path)


def latent_scatter(z: torch.Tensor, labels: torch.Tensor, path: str | Path, class_names: Sequence[str] | None = None,
                   title: str = "", axis_names: tuple[str, str] = ("z1", "z2")) -> Path:
    """2-D points ``z`` ``(N, 2)`` coloured by integer ``labels`` ``(N,)``, with a legend of class names."""
    z, labels = z.detach().float().cpu().numpy(), labels.cpu().numpy()
    fig = new_figure(6.6, 4.6)
    ax = fig.subplots()
    cmap = colormaps["tab10"]
    for k in np.unique(labels):
        m = labels == k
        name = class_names[int(k)] if class_names is not None and int(k) < len(class_names) else str(int(k))
        ax.scatter(z[m, 0], z[m, 1], s=4, alpha=0.6, color=cmap(int(k) % 10), label=name, linewidths=0)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.legend(fontsize=7, markerscale=3, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(title, fontsize=10)
    _margins(fig, left=0.8, right=1.6, bottom=0.5, top=0.35)
    return save_figure(fig, path)


def manifold_panels(panels: Sequence[tuple[str, torch.Tensor]], n: int, path: str | Path, title: str = "") -> Path:
    """Decoded latent grids: each panel ``(label, images (n*n, C, H, W))`` shown as an ``n × n`` tile
    (rows: second latent coordinate from high to low; columns: first, low to high)."""
    cols = min(len(panels), 5)
    rows = -(-len(panels) // cols)
    side = 4.6 if len(panels) == 1 else 2.3
    fig = new_figure(side * cols, side * rows + 0.3)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, (label, imgs) in zip(axes, panels, strict=False):
        _show(ax, montage(imgs, n), label)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    _margins(fig, left=0.1, right=0.1, bottom=0.1, top=0.6 if title else 0.3, wspace=0.08, hspace=0.25)
    return save_figure(fig, path)


def project_2d(
    *arrays: torch.Tensor, reference: torch.Tensor | None = None
) -> tuple[list[torch.Tensor], tuple[str, str]]:
    """Points ``(N_i, D)`` in a common plane: unchanged for D = 2, padded with zeros for D = 1, the
    first two principal components of ``reference`` (default: all points) for D > 2. Returns the
    projected ``(N_i, 2)`` arrays and the axis names."""
    d = arrays[0].shape[1]
    if d == 2:
        return [a.float() for a in arrays], ("dim 1", "dim 2")
    if d == 1:
        return [torch.cat([a.float(), torch.zeros_like(a.float())], 1) for a in arrays], ("dim 1", "")
    ref = (reference if reference is not None else torch.cat(arrays)).float()
    mean = ref.mean(0, keepdim=True)
    _, _, v = torch.linalg.svd(ref - mean, full_matrices=False)
    basis = v[:2].t()
    return [(a.float() - mean) @ basis for a in arrays], ("PC 1", "PC 2")


def codebook_plane(points: torch.Tensor, assign: torch.Tensor, codebook: torch.Tensor, path: str | Path,
                   title: str = "") -> Path:
    """Encoder outputs ``points`` ``(N, D)`` coloured by their code ``assign`` ``(N,)`` with the codebook
    ``(K, D)`` on top (stars); D > 2 is shown in the first two principal components of the points."""
    (pts, cb), names = project_2d(points, codebook, reference=points)
    k = codebook.shape[0]
    cmap = code_cmap(k)
    fig = new_figure(5.0, 4.6)
    ax = fig.subplots()
    ax.scatter(pts[:, 0], pts[:, 1], s=3, alpha=0.35, c=cmap(assign.cpu().numpy() % max(k, 2)), linewidths=0)
    ax.scatter(cb[:, 0], cb[:, 1], s=160, marker="*", c=cmap(np.arange(k) % max(k, 2)), edgecolors="black",
               linewidths=0.8, zorder=3)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.grid(alpha=0.3)
    ax.set_title(title or f"codebook (K={k}, D={codebook.shape[1]}) over encoder outputs", fontsize=10)
    _margins(fig, left=0.8, right=0.2, bottom=0.5, top=0.35)
    return save_figure(fig, path)


def _limits(books: Sequence[torch.Tensor], points: Sequence[torch.Tensor]) -> tuple[float, float, float, float]:
    """Axis limits holding every codebook vector and the central 98% of the encoder outputs."""
    b = torch.cat(list(books)).float()
    lo, hi = b.min(0).values, b.max(0).values
    p = [x for x in points if x.numel()]
    if p:
        allp = torch.cat(p).float()
        q_lo = torch.quantile(allp, 0.01, dim=0) if allp.shape[0] > 20 else allp.min(0).values
        q_hi = torch.quantile(allp, 0.99, dim=0) if allp.shape[0] > 20 else allp.max(0).values
        lo, hi = torch.minimum(lo, q_lo), torch.maximum(hi, q_hi)
    span = (hi - lo).clamp_min(1e-3)
    lo, hi = lo - 0.1 * span, hi + 0.1 * span
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def codebook_gif(history: Sequence[Mapping[str, torch.Tensor]], path: str | Path, steps_per_epoch: int | None = None,
                 title: str = "codebook during training") -> Path:
    """An animated GIF, one frame per snapshot of ``history`` (``{"step", "codebook" (K, D), "points"
    (M, D)}``, oldest first): the codebook vectors (stars, with their trails so far) over the encoder
    outputs of that moment (gray dots). D > 2 is projected on the two principal components of the last
    snapshot; the axes are fixed across frames. Frames last :data:`GIF_FRAME_MS` ms, the last one 3×."""
    from PIL import Image

    books = [h["codebook"].float() for h in history]
    pts = [h["points"].float() for h in history]
    last = torch.cat([books[-1], pts[-1]]) if pts[-1].numel() else books[-1]
    proj, names = project_2d(*books, *[p if p.numel() else books[0][:0] for p in pts], reference=last)
    books2, pts2 = proj[: len(books)], proj[len(books):]
    xmin, xmax, ymin, ymax = _limits(books2, pts2)
    k = books[0].shape[0]
    cmap = code_cmap(k)
    colours = cmap(np.arange(k) % max(k, 2))
    frames = []
    for i, (b, p) in enumerate(zip(books2, pts2, strict=True)):
        fig = new_figure(4.2, 4.0)
        ax = fig.subplots()
        if p.numel():
            ax.scatter(p[:, 0], p[:, 1], s=4, color="#9e9e9e", alpha=0.5, linewidths=0)
        trail = torch.stack(books2[: i + 1])  # (i+1, K, 2)
        for j in range(k):
            ax.plot(trail[:, j, 0], trail[:, j, 1], "-", color=colours[j], linewidth=0.8, alpha=0.7)
        ax.scatter(b[:, 0], b[:, 1], s=140, marker="*", c=colours, edgecolors="black", linewidths=0.8, zorder=3)
        ax.set_xlim(xmin, xmax)
        ax.set_ylim(ymin, ymax)
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        ax.grid(alpha=0.3)
        step = int(history[i]["step"])
        when = f"epoch {step // steps_per_epoch}" if steps_per_epoch else f"step {step}"
        ax.set_title(f"{title}\n{when if step else 'initial'} (K={k}, D={books[0].shape[1]})", fontsize=9)
        _margins(fig, left=0.8, right=0.15, bottom=0.5, top=0.55)
        fig.canvas.draw()  # new_figure attached an Agg canvas
        rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
        frames.append(Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE))
    durations = [GIF_FRAME_MS] * len(frames)
    durations[-1] = 3 * GIF_FRAME_MS
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)
    return atomic_write_bytes(Path(path), buf.getvalue())


def usage_bars(counts: torch.Tensor, path: str | Path, title: str = "") -> Path:
    """Bar chart of how often each code was chosen (share of positions, %)."""
    c = counts.double()
    share = (100 * c / c.sum().clamp_min(1)).numpy()
    k = len(share)
    fig = new_figure(min(max(4.0, 0.18 * k + 2), 14.0), 2.8)
    ax = fig.subplots()
    ax.bar(np.arange(k), share, color=PALETTE[0])
    ax.set_xlabel("code")
    ax.set_ylabel("share of positions (%)")
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(title, fontsize=10)
    _margins(fig, left=0.7, right=0.2, bottom=0.5, top=0.35)
    return save_figure(fig, path)


def study_plot(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path | None:
    """Recon MSE and perplexity against K (at the smallest D) and against D (at the smallest K), from
    study rows ``{K, D, recon_mse, perplexity, ...}``; ``None`` when neither sweep has two points."""
    if not rows:
        return None
    d0 = min(r["D"] for r in rows)
    k0 = min(r["K"] for r in rows)
    sweeps = [("K", sorted((r for r in rows if r["D"] == d0), key=lambda r: r["K"]), f"D={d0}"),
              ("D", sorted((r for r in rows if r["K"] == k0), key=lambda r: r["D"]), f"K={k0}")]
    sweeps = [s for s in sweeps if len(s[1]) >= 2]
    if not sweeps:
        return None
    fig = new_figure(4.0 * len(sweeps), 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(sweeps), squeeze=False)).ravel()
    for ax, (key, pts, fixed) in zip(axes, sweeps, strict=True):
        xs = [r[key] for r in pts]
        ax.plot(xs, [r["recon_mse"] for r in pts], "-o", color=PALETTE[0], markersize=4)
        ax.set_xscale("log")
        ax.set_xlabel(f"{key} ({fixed})")
        ax.set_ylabel("test recon MSE", color=PALETTE[0])
        ax.xaxis.set_major_locator(FixedLocator(xs))
        ax.xaxis.set_major_formatter(FixedFormatter([str(x) for x in xs]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax2 = ax.twinx()
        ax2.plot(xs, [r["perplexity"] for r in pts], "--s", color=PALETTE[1], markersize=4)
        ax2.set_ylabel("perplexity", color=PALETTE[1])
        ax.grid(alpha=0.3)
    _margins(fig, left=0.85, right=0.75, bottom=0.5, top=0.2, wspace=0.9)
    return save_figure(fig, path)
