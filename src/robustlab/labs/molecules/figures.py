"""The molecule lab's figures: SMILES length histogram by class, accuracy gain per length decile,
and the reliability diagram — drawn with robustlab's figure toolkit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robustlab.viz.figure import PALETTE, new_figure, save_figure


def length_histogram(lengths: np.ndarray, labels: np.ndarray, path: Path) -> Path:
    """Histogram of SMILES lengths (characters) per class."""
    fig = new_figure(5.0, 3.0)
    ax = fig.add_subplot(1, 1, 1)
    bins = np.linspace(0, np.quantile(lengths, 0.99), 40)
    for cls, colour in ((1, PALETTE[0]), (0, PALETTE[1])):
        ax.hist(lengths[labels == cls], bins=bins, alpha=0.6, color=colour, label=f"label {cls}")
    ax.set_xlabel("SMILES length (characters)")
    ax.set_ylabel("molecules")
    ax.legend(frameon=False)
    return save_figure(fig, path)


def decile_gains(rows: list[dict[str, Any]], models: list[str], path: Path) -> Path:
    """Accuracy minus majority-class accuracy per length decile, one line per model, with the bins'
    positive rate on a second axis (the confound: the label depends on the length)."""
    fig = new_figure(6.0, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    x = [r["bin"] for r in rows]
    for i, name in enumerate(models):
        key = f"{name}_gain"
        if all(key in r for r in rows):
            ax.plot(x, [r[key] for r in rows], marker="o", color=PALETTE[i % len(PALETTE)], label=name)
    ax.axhline(0.0, color="#888888", lw=0.8)
    ax.set_xlabel("length decile (short → long)")
    ax.set_ylabel("accuracy − majority accuracy")
    twin = ax.twinx()
    twin.plot(x, [r["positive_rate"] for r in rows], ls="--", color="#555555", label="positive rate")
    twin.set_ylabel("positive rate", color="#555555")
    twin.set_ylim(0, 1)
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    return save_figure(fig, path)


def reliability_diagram(rows: list[dict[str, Any]], path: Path) -> Path:
    """Observed positive rate against mean predicted probability per confidence bin (size ∝ count)."""
    fig = new_figure(3.4, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot([0, 1], [0, 1], color="#888888", lw=0.8)
    n = np.asarray([r["n"] for r in rows], dtype=float)
    ax.scatter([r["predicted"] for r in rows], [r["observed"] for r in rows], s=20 + 200 * n / max(n.max(), 1),
               color=PALETTE[0])
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed positive rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    return save_figure(fig, path)
