"""The captioning lab's figures, drawn with robustlab's figure toolkit: attention per word of the worst
captions, the robustness curves, and caption-length histograms.

Matplotlib does not shape Persian, so word panels of a Persian run are titled by word number; the
report prints the words themselves as right-to-left HTML beside the figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from robustlab.core.runs import RunDir
from robustlab.viz.figure import PALETTE, new_figure, save_figure

MAX_WORDS = 8


def attention_rows(images: np.ndarray, captions: list[list[str]], attention: list[np.ndarray], grid: tuple[int, int],
                   titles: list[str], path: Path, rtl: bool = False) -> Path:
    """One row per caption: the image (uint8 ``(3, S, S)``), then the attention ``(words, h·w)`` of
    its first :data:`MAX_WORDS` words over the image (titles: the word, or its number when ``rtl``)."""
    n = len(images)
    cols = 1 + MAX_WORDS
    fig = new_figure(1.25 * cols, 1.45 * n)
    size = images.shape[-1]
    h, w = grid
    for i in range(n):
        img = images[i].transpose(1, 2, 0)
        ax = fig.add_subplot(n, cols, i * cols + 1)
        ax.imshow(img)
        ax.set_title(titles[i], fontsize=6)
        ax.set_axis_off()
        for j, word in enumerate(captions[i][:MAX_WORDS]):
            if j >= len(attention[i]):
                break
            ax = fig.add_subplot(n, cols, i * cols + 2 + j)
            ax.imshow(img)
            ax.imshow(np.asarray(attention[i][j]).reshape(h, w), cmap="inferno", alpha=0.6,
                      extent=(0, size, size, 0), interpolation="nearest")
            ax.set_title(f"word {j + 1}" if rtl else word, fontsize=6)
            ax.set_axis_off()
    return save_figure(fig, path)


def robustness_curves(rows: list[dict[str, Any]], path: Path) -> Path:
    """Corpus BLEU-4 and the share of changed captions against the budget (×255), one line per attack."""
    fig = new_figure(7.0, 2.8)
    clean = next((r for r in rows if r["attack"] == "none"), None)
    for k, (key, label) in enumerate((("bleu4", "corpus BLEU-4"), ("changed", "captions changed"))):
        ax = fig.add_subplot(1, 2, k + 1)
        for c, kind in enumerate(sorted({r["attack"] for r in rows} - {"none"})):
            pts = sorted((r["eps_255"], r[key]) for r in rows if r["attack"] == kind)
            if clean is not None:
                pts = [(0.0, clean[key]), *pts]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=PALETTE[c % len(PALETTE)],
                    label=kind.upper())
        ax.set_xlabel("eps (×1/255, L∞)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def length_histograms(series: dict[str, dict[str, int]], path: Path) -> Path:
    """Caption lengths (words) of each named histogram (length → count), as shares."""
    fig = new_figure(4.8, 2.8)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / max(len(series), 1)
    for c, (name, hist) in enumerate(series.items()):
        total = max(sum(hist.values()), 1)
        xs = sorted(int(k) for k in hist)
        ax.bar([x + c * width for x in xs], [hist[str(x)] / total for x in xs],
               width=width, color=PALETTE[c % len(PALETTE)], label=name)
    ax.set_xlabel("caption length (words)")
    ax.set_ylabel("share of captions")
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def run_figures(run: RunDir, results: dict[str, Any], images: np.ndarray | None, grid: tuple[int, int] | None,
                train_lengths: dict[str, int] | None) -> dict[str, str]:
    """The figures of an audited run (``results`` = its ``captioning`` section; ``images`` the test
    images uint8 ``(N, 3, S, S)``), written under ``run.figures``; name → path relative to the run."""
    out: dict[str, str] = {}
    rtl = results.get("language") == "fa"
    worst = results.get("worst") or []
    if worst and images is not None and grid is not None:
        attention_rows(images[[w["index"] for w in worst]], [w["caption"] for w in worst],
                       [np.asarray(w["attention"]) for w in worst], grid,
                       [f"#{w['index']} BLEU {w['sentence_bleu4']:.2f}" for w in worst], run.figures / "attention.png",
                       rtl)
        out["attention"] = "figures/attention.png"
    rows = (results.get("robustness") or {}).get("rows") or []
    if len(rows) > 1:
        robustness_curves(rows, run.figures / "robustness.png")
        out["robustness"] = "figures/robustness.png"
    greedy = (results.get("decoding") or {}).get("greedy") or {}
    if train_lengths and greedy.get("hypothesis_length_histogram"):
        hyp = {str(k): int(v) for k, v in greedy["hypothesis_length_histogram"].items()}
        length_histograms({"training references": train_lengths, "greedy captions": hyp}, run.figures / "lengths.png")
        out["lengths"] = "figures/lengths.png"
    return out
