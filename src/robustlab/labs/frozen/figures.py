"""The frozen-features lab's figures, drawn with robustlab's figure toolkit: tiles with the head's
attention and the true panel outline, estimated against true area, and the area estimate under attack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robustlab.viz.figure import PALETTE, new_figure, save_figure


def attention_tiles(images: np.ndarray, maps: np.ndarray, masks: np.ndarray, titles: list[str], path: Path) -> Path:
    """Each tile (uint8 ``(N, 3, S, S)``) beside itself with the head's mean patch attention
    (``(N, g, g)``) over it and the true panel mask (``(N, S, S)`` bool) outlined."""
    n = len(images)
    fig = new_figure(2.0 * min(n, 4), 4.2 * ((n + 3) // 4))
    size = images.shape[-1]
    for i in range(n):
        img = images[i].transpose(1, 2, 0)
        for j, overlay in enumerate((False, True)):
            ax = fig.add_subplot(2 * ((n + 3) // 4), min(n, 4), (2 * (i // 4) + j) * min(n, 4) + i % 4 + 1)
            ax.imshow(img)
            if overlay:
                ax.imshow(maps[i], cmap="inferno", alpha=0.55, extent=(0, size, size, 0), interpolation="nearest")
                if masks[i].any():
                    ax.contour(masks[i].astype(float), levels=[0.5], colors=["#00e5ff"], linewidths=0.8)
            else:
                ax.set_title(titles[i], fontsize=7)
            ax.set_axis_off()
    return save_figure(fig, path)


def area_scatter(true: list[float], estimates: dict[str, list[float]], path: Path) -> Path:
    """Estimated against true panel area (m²) per positive test tile, one colour per estimator, with
    the identity line."""
    fig = new_figure(4.2, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    top = max([*true, *(v for e in estimates.values() for v in e), 1.0])
    for i, (name, values) in enumerate(estimates.items()):
        ax.scatter(true, values, s=8, alpha=0.6, color=PALETTE[i % len(PALETTE)], label=name)
    ax.plot([0, top], [0, top], color="#888888", lw=0.8)
    ax.set_xlabel("true panel area (m²)")
    ax.set_ylabel("estimated area (m²)")
    ax.legend(frameon=False, fontsize=7)
    return save_figure(fig, path)


def area_under_attack(rows: list[dict[str, Any]], path: Path) -> Path:
    """Accuracy on positive tiles and the area estimate's MAE against the PGD budget (eps × 255)."""
    fig = new_figure(4.8, 3.2)
    ax = fig.add_subplot(1, 1, 1)
    x = [r["eps_255"] for r in rows]
    ax.plot(x, [r["accuracy"] for r in rows], marker="o", color=PALETTE[0], label="accuracy (positives)")
    ax.set_xlabel("PGD eps (/255)")
    ax.set_ylabel("accuracy")
    twin = ax.twinx()
    twin.plot(x, [r["mae_m2"] for r in rows], marker="s", color=PALETTE[1], label="area MAE (m²)")
    twin.set_ylabel("area MAE (m²)")
    fig.legend(frameon=False, fontsize=7, loc="upper center")
    return save_figure(fig, path)
