"""Sample quality measured on features of a judge network trained in the lab (no downloads).

The inputs are ``(N, D)`` float features — numpy arrays or torch tensors, on any device — of real and
generated images, e.g. the penultimate layer of a small classifier trained on the same data. These are
*not* the Inception features of FID, so the numbers are comparable only between runs that share the
judge; the Fréchet distance here is called "FD (judge features)", never FID.

* :func:`frechet_distance` — FD (judge features) between Gaussians fitted to two feature sets.
* :func:`precision_recall` — improved precision (fidelity) and recall (coverage) of Kynkäänniemi et al. (2019).
* :func:`diversity`, :func:`relative_diversity` — mean pairwise distance, and its fake / real ratio.
* :func:`nearest_distance` — each sample's distance to the nearest reference (memorisation / copying).
* :func:`label_accuracy` — how often a classifier gives samples the label they were asked for.

Pairwise distances are computed with :func:`torch.cdist` in row chunks of :data:`CHUNK` (memory
``CHUNK × N``), with no Python loop over single samples.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy import linalg

from robustlab.core.errors import RobustlabError

CHUNK = 1024  # rows of a pairwise-distance block
ArrayLike = np.ndarray | torch.Tensor


def _features(x: ArrayLike, name: str, min_rows: int = 1) -> torch.Tensor:
    """``x`` as a CPU float tensor ``(N, D)`` (float64 kept, anything else as float32), validated."""
    t = torch.as_tensor(x).detach().cpu()
    if t.ndim != 2:
        raise RobustlabError(f"{name} must be features of shape (N, D); got shape {tuple(t.shape)}")
    if t.shape[0] < min_rows:
        raise RobustlabError(f"{name} needs at least {min_rows} rows; got {t.shape[0]}")
    if not torch.is_floating_point(t) or t.dtype != torch.float64:
        t = t.float()
    if not torch.isfinite(t).all():
        raise RobustlabError(f"{name} holds NaN or infinite values")
    return t


def _same_width(a: torch.Tensor, b: torch.Tensor, names: str) -> tuple[torch.Tensor, torch.Tensor]:
    if a.shape[1] != b.shape[1]:
        raise RobustlabError(f"{names} have different feature widths: {a.shape[1]} vs {b.shape[1]}")
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(dtype)


def frechet_distance(a: ArrayLike, b: ArrayLike, eps: float = 1e-6) -> float:
    """FD (judge features): the Fréchet distance between Gaussians fitted to two feature sets.

    ``a``: ``(N, D)``, ``b``: ``(M, D)``, ``N, M >= 2``. With means ``μ`` and unbiased covariances ``Σ``,
    ``FD = ‖μa - μb‖² + Tr(Σa + Σb - 2 (Σa Σb)^{1/2})`` (squared feature units, ``>= 0``; ``0`` for sets
    with equal mean and covariance; symmetric in ``a`` and ``b``). The matrix square root is
    :func:`scipy.linalg.sqrtm` in float64 and its real part is used (round-off leaves a tiny imaginary
    part). When ``Σa Σb`` is singular (e.g. fewer samples than dimensions), so that ``sqrtm`` warns or
    returns non-finite values, ``eps · I`` is added to both covariances and the root is taken again (the
    result then carries an ``O(eps · D)`` bias). Tiny negative round-off is clipped to ``0``.
    """
    ta, tb = _same_width(_features(a, "a", 2), _features(b, "b", 2), "a and b")
    xa, xb = ta.double().numpy(), tb.double().numpy()
    mu_a, mu_b = xa.mean(axis=0), xb.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(xa, rowvar=False))
    cov_b = np.atleast_2d(np.cov(xb, rowvar=False))
    root = _sqrtm_or_none(cov_a @ cov_b)
    if root is None:
        offset = eps * np.eye(cov_a.shape[0])
        cov_a, cov_b = cov_a + offset, cov_b + offset
        root = _sqrtm_or_none(cov_a @ cov_b)
        if root is None:
            raise RobustlabError(f"FD (judge features): no matrix square root of the covariance product even "
                                 f"with eps={eps} added; pass a larger eps")
    diff = mu_a - mu_b
    value = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(root))
    return max(value, 0.0)


def _sqrtm_or_none(m: np.ndarray) -> np.ndarray | None:
    """The real part of ``sqrtm(m)``, or ``None`` when scipy finds ``m`` singular or the root is not finite."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", linalg.LinAlgWarning)
        try:
            root = linalg.sqrtm(m)
        except (linalg.LinAlgWarning, linalg.LinAlgError, ValueError):
            return None
    root = np.asarray(root)
    if not np.isfinite(root).all():
        return None
    return root.real


def _kth_neighbour_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """``(N,)`` distance from each row of ``x`` to its ``k``-th nearest other row (itself excluded)."""
    n = x.shape[0]
    radii = []
    for start in range(0, n, CHUNK):
        d = torch.cdist(x[start:start + CHUNK], x)
        rows = torch.arange(d.shape[0])
        d[rows, rows + start] = float("inf")  # exclude self, not merely distance 0 (duplicates count)
        radii.append(d.topk(k, dim=1, largest=False).values[:, -1])
    return torch.cat(radii)


def _inside_any_ball(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor) -> torch.Tensor:
    """Bool ``(M,)``: is ``points[i]`` within ``radii[j]`` of some ``centres[j]`` (boundary included)."""
    inside = [(torch.cdist(points[s:s + CHUNK], centres) <= radii[None, :]).any(dim=1)
              for s in range(0, points.shape[0], CHUNK)]
    return torch.cat(inside)


def precision_recall(real: ArrayLike, fake: ArrayLike, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019) of generated features against real ones.

    ``real``: ``(N, D)``, ``fake``: ``(M, D)``, both with more than ``k`` rows. Each sample's ball has the
    radius of its ``k``-th nearest neighbour within its own set (itself excluded); the balls of a set
    approximate its support (manifold). Returns ``{"precision", "recall"}``, both in ``[0, 1]``:
    ``precision`` = fraction of fake samples inside at least one real ball (fidelity: fakes look real),
    ``recall`` = fraction of real samples inside at least one fake ball (coverage: the real variety is
    produced). Mode collapse shows as high precision with low recall.
    """
    if k < 1:
        raise RobustlabError(f"precision_recall needs k >= 1; got {k}")
    r, f = _same_width(_features(real, "real", k + 1), _features(fake, "fake", k + 1), "real and fake")
    real_radii = _kth_neighbour_radius(r, k)
    fake_radii = _kth_neighbour_radius(f, k)
    precision = _inside_any_ball(f, r, real_radii).double().mean()
    recall = _inside_any_ball(r, f, fake_radii).double().mean()
    return {"precision": float(precision), "recall": float(recall)}


def diversity(x: ArrayLike) -> float:
    """Mean Euclidean distance between distinct samples of ``x`` ``(N, D)``, ``N >= 2``.

    The average of ``‖x_i - x_j‖`` over the ``N (N - 1)`` ordered pairs with ``i != j`` (feature units,
    ``>= 0``; ``0`` only when all samples coincide).
    """
    t = _features(x, "x", 2)
    n = t.shape[0]
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, n, CHUNK):
        d = torch.cdist(t[start:start + CHUNK], t)
        rows = torch.arange(d.shape[0])
        d[rows, rows + start] = 0.0  # the diagonal is excluded (cdist's matmul path leaves round-off there)
        total += d.double().sum()
    return float(total / (n * (n - 1)))


def relative_diversity(fake: ArrayLike, real: ArrayLike) -> float:
    """``diversity(fake) / diversity(real)``: ``1`` for real-like spread, below ``1`` for collapsed samples.

    Both ``(·, D)`` with at least two rows; raises :class:`RobustlabError` when the real samples all coincide.
    """
    f, r = _same_width(_features(fake, "fake", 2), _features(real, "real", 2), "fake and real")
    denominator = diversity(r)
    if denominator == 0.0:
        raise RobustlabError("relative_diversity: the real samples all coincide (diversity 0)")
    return diversity(f) / denominator


def nearest_distance(samples: ArrayLike, references: ArrayLike) -> torch.Tensor:
    """Each sample's Euclidean distance to its nearest reference: float ``(M,)``, ``>= 0``, on the CPU.

    ``samples``: ``(M, ...)``, ``references``: ``(R, ...)`` with the same trailing shape — features
    ``(·, D)`` or images ``(·, C, H, W)``, flattened to vectors (pixel space). A distance near ``0`` means
    the sample (nearly) copies a reference — for DreamBooth, a generated image of the subject that
    reproduces one of the few instance images.
    """
    s = torch.as_tensor(samples).detach().cpu()
    ref = torch.as_tensor(references).detach().cpu()
    if s.ndim < 2 or ref.ndim < 2 or s.shape[1:] != ref.shape[1:]:
        raise RobustlabError(f"nearest_distance needs samples (M, ...) and references (R, ...) of the same "
                             f"trailing shape; got {tuple(s.shape)} and {tuple(ref.shape)}")
    s, ref = _same_width(_features(s.flatten(1), "samples"), _features(ref.flatten(1), "references"),
                         "samples and references")
    return torch.cat([torch.cdist(s[i:i + CHUNK], ref).min(dim=1).values for i in range(0, s.shape[0], CHUNK)])


def label_accuracy(logits: ArrayLike, labels: ArrayLike) -> float:
    """Fraction in ``[0, 1]`` of rows whose arg-max logit equals the label.

    ``logits``: ``(M, K)`` judge scores of ``M`` samples; ``labels``: ``(M,)`` integer labels in ``[0, K)``
    (the class each sample was generated for). Chance level is ``1 / K``.
    """
    lg = torch.as_tensor(logits).detach().cpu()
    lb = torch.as_tensor(labels).detach().cpu()
    if lg.ndim != 2 or lb.shape != (lg.shape[0],) or lg.shape[0] == 0:
        raise RobustlabError(f"label_accuracy needs logits (M, K) and labels (M,) with M > 0; got "
                             f"{tuple(lg.shape)} and {tuple(lb.shape)}")
    if torch.is_floating_point(lb) or lb.dtype == torch.bool:
        raise RobustlabError(f"labels must be integers; got dtype {lb.dtype}")
    if ((lb < 0) | (lb >= lg.shape[1])).any():
        raise RobustlabError(f"labels must lie in [0, {lg.shape[1]}); got values from {int(lb.min())} "
                             f"to {int(lb.max())}")
    return float((lg.argmax(dim=1) == lb).double().mean())
