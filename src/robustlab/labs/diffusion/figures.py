"""The diffusion lab's figures with robustlab's figure toolkit: sample grids per guidance scale, the
guidance study's curves, and DreamBooth's instance images beside its samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustlab.viz.figure import PALETTE, new_figure, save_figure


def _mosaic(images: torch.Tensor, columns: int) -> np.ndarray:
    """``(N, C, H, W)`` in [0, 1] → one ``(rows·H, columns·W)`` array for ``C = 1`` or
    ``(rows·H, columns·W, 3)`` for ``C = 3`` (1-px gaps of 0: blank in the reversed grey map)."""
    n, ch, h, w = images.shape
    rows = -(-n // columns)
    canvas = np.zeros((rows * (h + 1), columns * (w + 1), ch), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, columns)
        canvas[r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = images[i].permute(1, 2, 0).numpy()
    return canvas[..., 0] if ch == 1 else canvas


def guidance_grids(grids: dict[float, torch.Tensor], per_row: int, path: Path) -> Path:
    """One panel per guidance scale: ``per_row`` samples of each prompt in a row."""
    fig = new_figure(1.9 * len(grids), 2.6)
    for i, (scale, images) in enumerate(grids.items()):
        ax = fig.add_subplot(1, len(grids), i + 1)
        ax.imshow(_mosaic(images, per_row), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"scale {scale:g}", fontsize=8)
        ax.set_axis_off()
    return save_figure(fig, path)


def guidance_curves(rows: list[dict[str, Any]], study: dict[str, Any], path: Path) -> Path:
    """Judge accuracy, precision, recall and relative diversity (left axis) and FD (right axis, log)
    against the guidance scale, the balanced scale marked and the FD floor dashed."""
    plain = sorted((r for r in rows if not r.get("rescale")), key=lambda r: r["scale"])
    x = [r["scale"] for r in plain]
    fig = new_figure(5.6, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    for i, key in enumerate(("judge_accuracy", "precision", "recall", "diversity")):
        ax.plot(x, [r[key] for r in plain], marker="o", color=PALETTE[i], label=key.replace("_", " "))
    ax.set_xlabel("guidance scale s (1 = no guidance)")
    ax.set_ylim(0, max(1.05, *(r["diversity"] + 0.05 for r in plain)))
    twin = ax.twinx()
    twin.plot(x, [r["fd"] for r in plain], marker="s", color=PALETTE[4], label="FD (judge features)")
    if study.get("fd_floor") is not None:
        twin.axhline(study["fd_floor"], color=PALETTE[4], lw=0.8, ls="--")
    twin.set_yscale("log")
    twin.set_ylabel("FD (judge features)")
    if study.get("balanced_scale") is not None:
        ax.axvline(study["balanced_scale"], color="#888888", lw=0.8)
    fig.legend(frameon=False, fontsize=7, loc="upper center", ncol=3)
    return save_figure(fig, path)


def dreambooth_grid(instance: torch.Tensor, sks: torch.Tensor, cls: torch.Tensor, instance_prompt: str,
                    class_prompt: str, path: Path) -> Path:
    """The instance images, then samples of the instance prompt and of the class prompt (grey or RGB)."""
    fig = new_figure(7.0, 2.4)
    for i, (title, images) in enumerate(((f"instance images ({len(instance)})", instance),
                                         (f'"{instance_prompt}"', sks), (f'"{class_prompt}"', cls))):
        ax = fig.add_subplot(1, 3, i + 1)
        ax.imshow(_mosaic(images.float().cpu(), 8), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_axis_off()
    return save_figure(fig, path)
