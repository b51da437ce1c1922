"""Curves of ``metrics.jsonl`` records (one dict per epoch: ``epoch``, ``train_<metric>``,
``val_<metric>``, ``lr``, ``best``, ...) against the epoch.

:func:`training_curves` picks its panels from the keys it finds (loss, accuracy, learning rate,
extra metrics); :func:`loss_curves` draws the panels the caller names, train solid and validation
dashed. Both write one PNG and return its path, or ``None`` when there is nothing to draw.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator

from robustlab.viz.figure import PALETTE, new_figure, save_figure, set_margins
from robustlab.viz.text import plain

BOOKKEEPING = frozenset({"epoch", "lr", "seconds", "best", "step"})
"""Record keys that are bookkeeping, not curves."""

_CORE = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
_MAX_EXTRA_PANELS = 4


def is_number(v: Any) -> bool:
    """True for a finite int or float (bools excluded)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def metric_series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """``(epochs, values)`` of the records holding a finite number under ``key``, in record order;
    a record without a numeric ``epoch`` counts as epoch ``index + 1``."""
    xs, ys = [], []
    for i, rec in enumerate(records):
        v = rec.get(key)
        if is_number(v):
            xs.append(float(rec["epoch"]) if is_number(rec.get("epoch")) else float(i + 1))
            ys.append(float(v))
    return xs, ys


def _extra_keys(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Numeric keys beyond train/val loss and accuracy (defense metrics and the like), in first-seen order."""
    seen: dict[str, None] = {}
    for rec in records:
        for k, v in rec.items():
            if k in BOOKKEEPING or k in _CORE or not is_number(v):
                continue
            seen.setdefault(k, None)
    return list(seen)


def _best_epoch(records: Sequence[Mapping[str, Any]]) -> float | None:
    best = None
    for i, rec in enumerate(records):
        if rec.get("best") is True:
            best = float(rec.get("epoch", i + 1))
    return best


def _training_panels(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[tuple[str, str]], bool]]:
    """``[(y label, [(key, legend label), ...], as percentage)]`` of the curves ``records`` hold."""
    panels: list[tuple[str, list[tuple[str, str]], bool]] = []
    if any(metric_series(records, k)[0] for k in ("train_loss", "val_loss")):
        panels.append(("loss", [("train_loss", "train"), ("val_loss", "val")], False))
    if any(metric_series(records, k)[0] for k in ("train_accuracy", "val_accuracy")):
        panels.append(("accuracy (%)", [("train_accuracy", "train"), ("val_accuracy", "val")], True))
    if len(set(metric_series(records, "lr")[1])) > 1:
        panels.append(("learning rate", [("lr", "lr")], False))
    for key in _extra_keys(records)[:_MAX_EXTRA_PANELS]:
        as_pct = "accuracy" in key or key.endswith("_acc")
        panels.append((plain(key).replace("_", " ") + (" (%)" if as_pct else ""), [(key, key)], as_pct))
    return panels


def _epoch_ticks(ax: Any, epochs: list[float]) -> None:
    """Every epoch as a tick up to 15 epochs (a ±1 range around a single one), integer ticks beyond."""
    if len(epochs) <= 15:
        ax.set_xticks(epochs, [f"{e:g}" for e in epochs])
        if len(epochs) == 1:
            ax.set_xlim(epochs[0] - 1, epochs[0] + 1)
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)


def training_curves(records: Sequence[Mapping[str, Any]], path: str | Path, title: str | None = None) -> Path | None:
    """Loss and accuracy per epoch (train vs val), the learning rate when it changes, and one panel per
    extra numeric metric (e.g. a defense's own numbers; at most four). The best epoch is marked with
    a dotted line; accuracies are drawn as percentages. Returns ``None`` when ``records`` hold no curve."""
    panels = _training_panels(records)
    if not panels:
        return None
    lrs = metric_series(records, "lr")[1]
    cols = 2 if len(panels) == 4 else min(len(panels), 3)
    rows = (len(panels) + cols - 1) // cols
    fig = new_figure(4.2 * cols, 3.0 * rows)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    best = _best_epoch(records)
    for ax, (ylabel, keys, as_pct) in zip(axes, panels, strict=False):
        for j, (key, label) in enumerate(keys):
            xs, ys = metric_series(records, key)
            if not xs:
                continue
            ys_plot = [100.0 * y for y in ys] if as_pct else ys
            ax.plot(xs, ys_plot, marker="o", markersize=3, linewidth=1.6, color=PALETTE[j], label=label)
        if best is not None:
            ax.axvline(best, color="#888888", linestyle=":", linewidth=1)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if keys[0][0] == "lr" and min(lrs) > 0:
            ax.set_yscale("log")
        if len(keys) > 1:
            ax.legend(fontsize=8, frameon=False)
        _epoch_ticks(ax, sorted({x for key, _ in keys for x in metric_series(records, key)[0]}))
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(plain(title), fontsize=11)
    fig.tight_layout()
    return save_figure(fig, path)


def loss_curves(records: Sequence[Mapping[str, Any]], panels: Sequence[tuple[str, Sequence[str], bool]],
                path: str | Path, title: str = "") -> Path | None:
    """One panel per ``(title, metric names, log scale)``: each metric ``m`` in its own colour,
    ``train_m`` solid and ``val_m`` dashed, against the epoch (log scale only where every value is
    positive). Panels without data are dropped; ``None`` when none is left."""
    kept = [(t, [m for m in names if metric_series(records, f"train_{m}")[0] or metric_series(records, f"val_{m}")[0]],
             log) for t, names, log in panels]
    kept = [p for p in kept if p[1]]
    if not kept:
        return None
    fig = new_figure(4.2 * len(kept), 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(kept), squeeze=False)).ravel()
    for ax, (panel_title, names, log) in zip(axes, kept, strict=True):
        for j, m in enumerate(names):
            for split, style in (("train", "-"), ("val", "--")):
                xs, ys = metric_series(records, f"{split}_{m}")
                if xs:
                    ax.plot(xs, ys, style, marker="o", markersize=2.5, linewidth=1.4, color=PALETTE[j % len(PALETTE)],
                            label=f"{split} {m.replace('_', ' ')}")
        if log and all(y > 0 for m in names for s in ("train", "val") for y in metric_series(records, f"{s}_{m}")[1]):
            ax.set_yscale("log")
        ax.set_title(panel_title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    set_margins(fig, left=0.9, right=0.2, bottom=0.5, top=0.65 if title else 0.35, wspace=0.4)
    return save_figure(fig, path, tight=False)
