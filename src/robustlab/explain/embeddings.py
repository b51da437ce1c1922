"""Penultimate features and their UMAP maps (e.g. train / test / adversarial test on one map)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.lines import Line2D
from torch import nn

from robustlab.core.errors import RobustlabError
from robustlab.core.modes import eval_mode
from robustlab.core.progress import log
from robustlab.viz import category_cmap, label_name, new_figure, plain, save_figure

MAX_UMAP_POINTS = 2000


@torch.no_grad()
def features(
    model: nn.Module, loader: Iterable[tuple[torch.Tensor, torch.Tensor]], max_points: int | None = 1000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features ``model.embed(x)`` of the first ``max_points`` images of ``loader``
    (all when ``None``), in eval mode (mode restored).

    Returns ``(feats, labels)``: float32 CPU ``(N, D)`` and int64 CPU ``(N,)``.
    """
    device = next(model.parameters()).device
    feats, labels, n = [], [], 0
    with eval_mode(model):
        for x, y in loader:
            if max_points is not None and n >= max_points:
                break
            take = x.shape[0] if max_points is None else min(x.shape[0], max_points - n)
            feats.append(model.embed(x[:take].to(device)).float().cpu())
            labels.append(torch.as_tensor(y[:take]).long().cpu())
            n += take
    if not feats:
        return torch.empty(0, getattr(model, "feature_dim", 0)), torch.empty(0, dtype=torch.long)
    return torch.cat(feats), torch.cat(labels)


_umap_cache_enabled = False


def _enable_umap_cache() -> None:
    """Let numba cache the UMAP kernels it otherwise recompiles in every process (~25 s of CPU on a
    cold start; well under a second once cached). Best effort: without a writable cache folder
    (see ``NUMBA_CACHE_DIR``) UMAP simply compiles as usual."""
    global _umap_cache_enabled
    if _umap_cache_enabled:
        return
    _umap_cache_enabled = True
    try:
        import umap.layouts as layouts
        import umap.umap_ as umap_
    except ImportError:  # pragma: no cover - umap-learn is a dependency
        return
    kernels = (
        getattr(umap_, "smooth_knn_dist", None),
        getattr(umap_, "compute_membership_strengths", None),
        getattr(layouts, "_nb_optimize_layout_euclidean_single_epoch", None),
    )
    for kernel in kernels:
        try:
            kernel.enable_caching()  # type: ignore[union-attr]
        except Exception as e:  # numba internals moved, or no cache folder: keep compiling
            log.debug("umap kernel caching unavailable: %s", e)


def _subsample(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return np.sort(rng.choice(n, size=k, replace=False)) if n > k else np.arange(n)


def embed_2d(x: np.ndarray, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """A 2-D embedding of rows of ``x`` (``N×D``): UMAP (``n_neighbors``, fixed ``random_state``, so
    the same input gives the same map) when there are enough points, PCA for fewer than 10 points.
    Returns ``(N, 2)`` float32."""
    n = x.shape[0]
    if n < 10:
        from sklearn.decomposition import PCA

        if n < 3:
            out = np.zeros((n, 2), dtype=np.float32)
            out[:, 0] = np.arange(n)
            return out
        return PCA(n_components=2, random_state=seed).fit_transform(x).astype(np.float32)
    import umap
    from sklearn.neighbors import NearestNeighbors

    _enable_umap_cache()
    k = min(n_neighbors, n - 1)
    # Exact neighbours from scikit-learn, handed to UMAP: same graph as UMAP's own small-data path,
    # without JIT-compiling its nearest-neighbour kernels (tens of seconds on a cold start).
    dists, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
    reducer = umap.UMAP(
        n_neighbors=k,
        n_components=2,
        random_state=seed,
        n_jobs=1,
        precomputed_knn=(idx.astype(np.int32), dists.astype(np.float32)),
    )
    import numba

    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)  # ≤ 2,000 points: threads only fight the rest of the process for cores
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no search index (transform unused), numba chatter
            return np.asarray(reducer.fit_transform(x), dtype=np.float32)
    finally:
        numba.set_num_threads(threads)


def umap_figure(
    sets: Mapping[str, tuple[torch.Tensor | np.ndarray, torch.Tensor | np.ndarray]],
    class_names: Sequence[str] | None,
    path: str | Path,
    seed: int = 0,
    max_points: int = MAX_UMAP_POINTS,
    n_neighbors: int = 15,
) -> Path:
    """One UMAP panel per set (e.g. ``{"train": (feats, labels), "test": ..., "adversarial test": ...}``),
    points coloured by class with a legend (up to 20 classes; a colour bar beyond).

    UMAP is fitted once on the union of the sets, so all panels share coordinates: a cluster that
    moves between "test" and "adversarial test" really moved. At most ``max_points`` points in all
    (each set subsampled to an equal share, seeded). Writes a PNG to ``path`` and returns it.
    """
    if not sets:
        raise RobustlabError("umap_figure needs at least one set of features")
    rng = np.random.default_rng(seed)
    share = max(1, max_points // len(sets))
    names, blocks, labels = [], [], []
    for name, (f, lab) in sets.items():
        f = f.detach().cpu().numpy() if isinstance(f, torch.Tensor) else np.asarray(f)
        lab = lab.detach().cpu().numpy() if isinstance(lab, torch.Tensor) else np.asarray(lab)
        f = f.reshape(f.shape[0], -1).astype(np.float32)
        if f.shape[0] != lab.shape[0]:
            raise RobustlabError(f"umap_figure: set {name!r} has {f.shape[0]} feature rows but {lab.shape[0]} labels")
        idx = _subsample(f.shape[0], share, rng)
        names.append(name)
        blocks.append(f[idx])
        labels.append(lab[idx].astype(np.int64))
    dims = {b.shape[1] for b in blocks}
    if len(dims) > 1:
        raise RobustlabError(f"umap_figure: sets have different feature sizes {sorted(dims)}")
    union = np.concatenate(blocks) if blocks else np.zeros((0, 2), np.float32)
    coords = embed_2d(union, seed=seed, n_neighbors=n_neighbors)
    all_labels = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    k = int(max(all_labels.max() + 1 if all_labels.size else 1, len(class_names or [])))
    cmap = category_cmap(k)
    fig = new_figure(4.0 * len(names) + (1.8 if k <= 20 else 0.6), 4.0)
    axes = np.atleast_1d(fig.subplots(1, len(names), squeeze=False)).ravel()
    lo, hi = (coords.min(0), coords.max(0)) if coords.size else (np.zeros(2), np.ones(2))
    pad = 0.05 * np.maximum(hi - lo, 1e-6)
    start = 0
    sc = None
    for ax, name, lab in zip(axes, names, labels, strict=True):
        c = coords[start : start + len(lab)]
        start += len(lab)
        sc = ax.scatter(
            c[:, 0],
            c[:, 1],
            c=lab,
            cmap=cmap,
            vmin=-0.5,
            vmax=k - 0.5,
            s=14 if len(lab) <= 300 else 6,
            alpha=0.8,
            linewidths=0,
        )
        ax.set_title(f"{plain(name)} ({len(lab)} points)", fontsize=10)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
        ax.set_xticks([])
        ax.set_yticks([])
    if sc is not None and k <= 20:
        cm = sc.get_cmap()
        names_k = [label_name(class_names, i) for i in range(k)]
        handles = [
            Line2D([], [], marker="o", linestyle="", markersize=5, color=cm((i + 0.5) / k), label=names_k[i])
            for i in range(k)
        ]
        fig.legend(handles=handles, loc="center right", fontsize=7, frameon=False, title="class")
        fig.tight_layout(rect=(0, 0, 1 - 1.6 / (4.0 * len(names) + 1.8), 1))
    else:
        if sc is not None:
            fig.colorbar(sc, ax=list(axes), fraction=0.03, label="class")
    return save_figure(fig, path)
