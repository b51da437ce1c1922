"""Figures of the generative families (PNG; the codebook animation as a GIF with Pillow), drawn
through :mod:`robustlab.viz`.

Every function draws from plain tensors / metric records (no model), writes one file atomically and
returns its path. Images are ``(N, C, H, W)`` float in [0, 1] with C = 1 (gray) or 3 (RGB). The
generic image and curve figures (:func:`image_rows`, :func:`image_grid`, :func:`loss_curves`) are
:mod:`robustlab.viz`'s, re-exported here.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

from robustlab.core.io import atomic_write_bytes
from robustlab.viz import (
    PALETTE,
    category_cmap,
    image_grid,
    image_rows,
    label_name,
    loss_curves,
    montage,
    new_figure,
    save_figure,
    set_margins,
    show_image,
)

__all__ = [
    "GIF_FRAME_MS",
    "code_cmap",
    "code_colours",
    "codebook_gif",
    "codebook_plane",
    "image_grid",
    "image_rows",
    "latent_scatter",
    "loss_curves",
    "manifold_panels",
    "montage",
    "project_2d",
    "study_plot",
    "usage_bars",
]

GIF_FRAME_MS = 400
"""How long one frame of :func:`codebook_gif` lasts (the last one lasts three times as long)."""


def code_cmap(num_codes: int) -> Any:
    """A categorical colormap with ``num_codes`` entries (tab10 up to 10 codes, tab20 up to 20, viridis beyond)."""
    return colormaps[category_cmap(num_codes)].resampled(max(num_codes, 2))


def code_colours(indices: torch.Tensor, num_codes: int, size: tuple[int, int]) -> torch.Tensor:
    """Code maps ``(N, h, w)`` int64 → RGB images ``(N, 3, H, W)`` in [0, 1] (nearest upsampling to
    ``size``), one colour per code."""
    cmap = code_cmap(num_codes)
    table = torch.tensor(cmap(np.arange(max(num_codes, 2)))[:, :3], dtype=torch.float32)
    rgb = table[indices.cpu()].permute(0, 3, 1, 2)
    return torch.nn.functional.interpolate(rgb, size=size, mode="nearest")


def latent_scatter(z: torch.Tensor, labels: torch.Tensor, path: str | Path, class_names: Sequence[str] | None = None,
                   title: str = "", axis_names: tuple[str, str] = ("z1", "z2")) -> Path:
    """2-D points ``z`` ``(N, 2)`` coloured by integer ``labels`` ``(N,)``, with a legend of class names."""
    z, labels = z.detach().float().cpu().numpy(), labels.cpu().numpy()
    fig = new_figure(6.6, 4.6)
    ax = fig.subplots()
    cmap = colormaps["tab10"]
    for k in np.unique(labels):
        m = labels == k
        ax.scatter(z[m, 0], z[m, 1], s=4, alpha=0.6, color=cmap(int(k) % 10), label=label_name(class_names, int(k)),
                   linewidths=0)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.legend(fontsize=7, markerscale=3, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title(title, fontsize=10)
    set_margins(fig, left=0.8, right=1.6, bottom=0.5, top=0.35)
    return save_figure(fig, path, tight=False)


def manifold_panels(panels: Sequence[tuple[str, torch.Tensor]], n: int, path: str | Path, title: str = "") -> Path:
    """Decoded latent grids: each panel ``(label, images (n*n, C, H, W))`` shown as an ``n × n`` tile
    (rows: second latent coordinate from high to low; columns: first, low to high)."""
    cols = min(len(panels), 5)
    rows = -(-len(panels) // cols)
    side = 4.6 if len(panels) == 1 else 2.3
    fig = new_figure(side * cols, side * rows + 0.3)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, (label, imgs) in zip(axes, panels, strict=False):
        show_image(ax, montage(imgs, n), label, fontsize=9)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=11)
    set_margins(fig, left=0.1, right=0.1, bottom=0.1, top=0.6 if title else 0.3, wspace=0.08, hspace=0.25)
    return save_figure(fig, path, tight=False)


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
    set_margins(fig, left=0.8, right=0.2, bottom=0.5, top=0.35)
    return save_figure(fig, path, tight=False)


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
        set_margins(fig, left=0.8, right=0.15, bottom=0.5, top=0.55)
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
    set_margins(fig, left=0.7, right=0.2, bottom=0.5, top=0.35)
    return save_figure(fig, path, tight=False)


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
    set_margins(fig, left=0.85, right=0.75, bottom=0.5, top=0.2, wspace=0.9)
    return save_figure(fig, path, tight=False)
