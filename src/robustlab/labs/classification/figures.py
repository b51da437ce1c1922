"""The classification report's figures (robustness curves, per-class bars, confusion matrices, noise
curve), drawn through :mod:`robustlab.viz` from ``results.json``.

Each function writes one PNG atomically and returns its path, or returns ``None`` when its input
holds nothing to draw (so a report never fails on a missing section). Accuracies are fractions in
[0, 1] in the inputs and are plotted as percentages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustlab.report.format import eps_255, is_number, norm_label
from robustlab.viz import PALETTE, new_figure, plain, save_figure

__all__ = ["confusion_matrices", "noise_curve", "per_class_bars", "robustness_curve", "robustness_overlay"]


def _curve_groups(robust: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """``{norm: {attack: [(eps, accuracy), ...] sorted by eps}}`` from results' ``robust`` list."""
    out: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for row in robust:
        eps, acc = row.get("eps"), row.get("accuracy")
        if not (is_number(eps) and is_number(acc)):
            continue
        norm = str(row.get("norm") or "linf")
        out.setdefault(norm, {}).setdefault(str(row.get("attack", "?")), []).append((float(eps), float(acc)))
    for attacks in out.values():
        for pts in attacks.values():
            pts.sort()
    return out


def _eps_ticks(ax, eps_values: Sequence[float], norm: str) -> None:
    eps_values = sorted(set(eps_values))
    if not eps_values or len(eps_values) > 12:
        return
    ax.set_xticks(eps_values)
    if norm == "linf":
        ax.set_xticklabels([f"{e:.3g}\n{eps_255(e)}" if e > 0 else "0" for e in eps_values], fontsize=7)
    else:
        ax.set_xticklabels([f"{e:.3g}" for e in eps_values], fontsize=7)


def robustness_curve(
    robust: Sequence[Mapping[str, Any]],
    path: str | Path,
    worst_case: Sequence[Mapping[str, Any]] | None = None,
    clean_accuracy: float | None = None,
) -> Path | None:
    """Accuracy (%) against eps, one line per attack and a dashed black worst-case line (over all
    attacks, per sample), with the clean accuracy at eps 0. One panel per norm; L∞ ticks read
    ``eps`` and ``k/255``. Returns ``None`` when there is no robust accuracy to plot."""
    groups = _curve_groups(robust or [])
    if not groups:
        return None
    fig = new_figure(5.6 * len(groups), 3.8)
    axes = np.atleast_1d(fig.subplots(1, len(groups), squeeze=False)).ravel()
    worst = sorted(
        (float(w["eps"]), float(w["accuracy"]))
        for w in (worst_case or [])
        if is_number(w.get("eps")) and is_number(w.get("accuracy"))
    )
    for ax, (norm, attacks) in zip(axes, groups.items(), strict=True):
        all_eps: list[float] = []
        for i, (name, pts) in enumerate(attacks.items()):
            xs, ys = [p[0] for p in pts], [100 * p[1] for p in pts]
            if is_number(clean_accuracy) and xs and xs[0] > 0:
                xs, ys = [0.0, *xs], [100 * clean_accuracy, *ys]
            all_eps += xs
            ax.plot(xs, ys, marker="o", markersize=4, linewidth=1.6, color=PALETTE[i % len(PALETTE)], label=plain(name))
        eps_here = {p[0] for pts in attacks.values() for p in pts}
        wc = [w for w in worst if w[0] in eps_here] if len(groups) > 1 else worst
        if wc:
            xs, ys = [w[0] for w in wc], [100 * w[1] for w in wc]
            if is_number(clean_accuracy) and xs[0] > 0:
                xs, ys = [0.0, *xs], [100 * clean_accuracy, *ys]
            ax.plot(xs, ys, linestyle="--", color="black", linewidth=1.8, label="worst case")
        _eps_ticks(ax, all_eps, norm)
        ax.set_ylim(-2, 102)
        ax.set_xlabel(f"eps ({norm_label(norm)})")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)


def robustness_overlay(runs: Sequence[tuple[str, Mapping[str, Any]]], path: str | Path) -> Path | None:
    """Robustness curves of several runs on one plot per norm: colour = run, line style = attack;
    each run's worst case is drawn thick. ``runs`` is ``[(name, results), ...]``."""
    per_norm: dict[str, list[tuple[int, str, str, list[tuple[float, float]]]]] = {}
    for i, (name, res) in enumerate(runs):
        clean = res.get("clean_accuracy")
        for norm, attacks in _curve_groups(res.get("robust") or []).items():
            for attack, pts in attacks.items():
                if is_number(clean) and pts and pts[0][0] > 0:
                    pts = [(0.0, float(clean)), *pts]
                per_norm.setdefault(norm, []).append((i, name, attack, pts))
    if not per_norm:
        return None
    styles = ["-", "--", ":", "-."]
    fig = new_figure(6.4 * len(per_norm), 4.2)
    axes = np.atleast_1d(fig.subplots(1, len(per_norm), squeeze=False)).ravel()
    for ax, (norm, lines) in zip(axes, per_norm.items(), strict=True):
        attack_style: dict[str, str] = {}
        all_eps: list[float] = []
        for i, name, attack, pts in lines:
            ls = attack_style.setdefault(attack, styles[len(attack_style) % len(styles)])
            xs, ys = [p[0] for p in pts], [100 * p[1] for p in pts]
            all_eps += xs
            ax.plot(
                xs,
                ys,
                linestyle=ls,
                marker="o",
                markersize=3,
                color=PALETTE[i % len(PALETTE)],
                label=plain(f"{name} · {attack}"),
            )
        _eps_ticks(ax, all_eps, norm)
        ax.set_ylim(-2, 102)
        ax.set_xlabel(f"eps ({norm_label(norm)})")
        ax.set_ylabel("accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, frameon=False, loc="upper right")
    fig.tight_layout()
    return save_figure(fig, path)


def per_class_bars(per_class: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path | None:
    """Grouped bars of clean vs robust accuracy (%) per class; the width grows with the number of
    classes and labels shrink (hidden above 100 classes). ``None`` when ``per_class`` is empty."""
    names = [n for n, v in per_class.items() if isinstance(v, Mapping)]
    if not names:
        return None
    clean = np.array([100 * v if is_number(v := per_class[n].get("clean")) else np.nan for n in names])
    robust = np.array([100 * v if is_number(v := per_class[n].get("robust")) else np.nan for n in names])
    has_robust = not np.all(np.isnan(robust))
    k = len(names)
    fig = new_figure(min(max(6.0, 0.22 * k + 2), 22.0), 3.6)
    ax = fig.subplots()
    xs = np.arange(k)
    w = 0.4 if has_robust else 0.7
    ax.bar(xs - (w / 2 if has_robust else 0), np.nan_to_num(clean), width=w, color=PALETTE[0], label="clean")
    if has_robust:
        ax.bar(xs + w / 2, np.nan_to_num(robust), width=w, color=PALETTE[1], label="adversarial")
    if k <= 100:
        ax.set_xticks(xs)
        ax.set_xticklabels([plain(n) for n in names], rotation=90 if k > 10 else 0, fontsize=8 if k <= 30 else 6)
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"{k} classes")
    ax.set_xlim(-0.6, k - 0.4)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, frameon=False, ncols=2, loc="upper right")
    fig.tight_layout()
    return save_figure(fig, path)


def _row_normalise(m: np.ndarray) -> np.ndarray:
    sums = m.sum(axis=1, keepdims=True)
    return np.divide(m, sums, out=np.zeros_like(m, dtype=float), where=sums > 0)


def confusion_matrices(
    confusion: Mapping[str, Any], path: str | Path, class_names: Sequence[str] | None = None
) -> Path | None:
    """Clean and adversarial confusion matrices side by side, rows normalised to 1 (true class →
    share predicted as each class). Up to 20 classes get tick labels, up to 10 also the values.
    Returns ``None`` when no square matrix is present."""
    mats: list[tuple[str, np.ndarray]] = []
    for key, title in (("clean", "clean"), ("adversarial", "adversarial")):
        raw = confusion.get(key) if isinstance(confusion, Mapping) else None
        if raw is None:
            continue
        try:
            m = np.asarray(raw, dtype=float)
        except (TypeError, ValueError):
            continue
        if m.ndim == 2 and m.shape[0] == m.shape[1] and m.shape[0] > 0:
            mats.append((title, _row_normalise(np.nan_to_num(m))))
    if not mats:
        return None
    k = mats[0][1].shape[0]
    side = 4.2 if k <= 20 else 4.8
    fig = new_figure(side * len(mats) + 0.8, side)
    axes = np.atleast_1d(fig.subplots(1, len(mats), squeeze=False)).ravel()
    names = list(class_names) if class_names is not None and len(class_names) == k else [str(i) for i in range(k)]
    im = None
    for ax, (title, m) in zip(axes, mats, strict=True):
        im = ax.imshow(m, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(title, fontsize=10)
        if m.shape[0] <= 20:
            ax.set_xticks(range(m.shape[0]))
            ax.set_yticks(range(m.shape[0]))
            ax.set_xticklabels([plain(n) for n in names[: m.shape[0]]], rotation=90, fontsize=7)
            ax.set_yticklabels([plain(n) for n in names[: m.shape[0]]], fontsize=7)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        if m.shape[0] <= 10:
            for i in range(m.shape[0]):
                for j in range(m.shape[1]):
                    if m[i, j] >= 0.005:
                        ax.text(
                            j,
                            i,
                            f"{100 * m[i, j]:.0f}",
                            ha="center",
                            va="center",
                            fontsize=6,
                            color="white" if m[i, j] > 0.6 else "black",
                        )
        ax.set_xlabel("predicted")
        if ax is axes[0]:
            ax.set_ylabel("true")
        else:
            ax.set_yticklabels([])
    if im is not None:
        fig.colorbar(im, ax=list(axes), fraction=0.03, pad=0.02, label="share of true class")
    return save_figure(fig, path)


def noise_curve(
    noise: Sequence[Mapping[str, Any]], path: str | Path, clean_accuracy: float | None = None
) -> Path | None:
    """Accuracy (%) against the standard deviation of added Gaussian noise (clean at σ = 0).
    ``None`` when ``noise`` holds no point."""
    pts = sorted(
        (float(r["sigma"]), float(r["accuracy"]))
        for r in noise or []
        if is_number(r.get("sigma")) and is_number(r.get("accuracy"))
    )
    if not pts:
        return None
    if is_number(clean_accuracy) and pts[0][0] > 0:
        pts = [(0.0, float(clean_accuracy)), *pts]
    fig = new_figure(5.0, 3.4)
    ax = fig.subplots()
    ax.plot([p[0] for p in pts], [100 * p[1] for p in pts], marker="o", color=PALETTE[2], linewidth=1.6)
    ax.set_xlabel("Gaussian noise σ (pixel units)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
