"""Panel area from a frozen-backbone classifier's attention head, and how well it tracks the truth.

The classifier is a frozen ViT (patch tokens on a g×g grid, ``patch`` px square, ground sample distance
``gsd`` m/px, so one patch covers ``(patch·gsd)²`` m²) plus a trained head whose new CLS query attends with
``H`` heads over the ``P = g²`` patch tokens. Per tile the head gives :class:`AttentionScores`:

* ``attn`` (N, H, P): post-softmax CLS→patch attention over the patches only, each (tile, head) row summing to 1;
* ``logits`` (N, H, P): the pre-softmax scaled dot products of the same rows.

Estimators turn those into an area per tile in m². Each has ``fit(scores, areas)`` on calibration tiles
(positives with known area, m²; a no-op where nothing is fitted) returning itself, ``predict(scores)`` → (N,)
float64 CPU tensor of m², and ``patch_mask(scores)`` → (N, P) bool (the patches it counts):

* :class:`MassThreshold` — the smallest set of patches holding a fraction of the attention mass (DINO-style);
* :class:`PeakCount` — patches whose attention exceeds a ratio of the tile's maximum (the naive count);
* :class:`LogitSoftCount` — a calibrated soft count of pre-softmax logits above a fitted threshold.

:func:`score_areas`, :func:`patch_jaccard` and :func:`compare_estimators` report plain floats. All
computation is vectorised over tiles and done in float64 on the CPU, so a fit is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np
import torch
from scipy import stats

from robustlab.core.errors import RobustlabError

#: a set holding ``fraction − MASS_TOLERANCE`` of the mass counts as holding ``fraction`` (float32 inputs)
MASS_TOLERANCE = 1e-6


def patch_area(gsd_m_per_px: float, patch_px: int = 14) -> float:
    """Ground area of one square patch in m²: ``(patch_px · gsd)²`` for a ground sample distance in m/px."""
    if not gsd_m_per_px > 0 or patch_px < 1:
        raise RobustlabError(f"patch_area needs gsd > 0 m/px and patch_px >= 1, got {gsd_m_per_px!r}, {patch_px!r}")
    return float((patch_px * gsd_m_per_px) ** 2)


def patch_mask(masks: torch.Tensor, patch: int, min_fraction: float = 0.5) -> torch.Tensor:
    """Which patches are panel: bool (N, P) from pixel masks bool (N, S_h, S_w).

    A patch is panel when at least ``min_fraction`` of its ``patch × patch`` pixels are panel. Patches are
    numbered row-major (left to right, then top to bottom), ``P = (S_h/patch)·(S_w/patch)``; both sides must
    be multiples of ``patch``.
    """
    if masks.dim() != 3:
        raise RobustlabError(f"patch_mask needs masks of shape (N, S, S), got {tuple(masks.shape)}")
    n, h, w = masks.shape
    if patch < 1 or h % patch or w % patch:
        raise RobustlabError(f"patch_mask needs image sides divisible by patch={patch}, got {h}x{w}")
    if not 0.0 < min_fraction <= 1.0:
        raise RobustlabError(f"patch_mask needs 0 < min_fraction <= 1, got {min_fraction!r}")
    cells = masks.detach().to("cpu", torch.float64).reshape(n, h // patch, patch, w // patch, patch)
    return (cells.mean(dim=(2, 4)) >= min_fraction - 1e-12).reshape(n, -1)


@dataclass(frozen=True)
class AttentionScores:
    """The attention head's per-tile outputs; both (N, H, P), the same shape.

    ``attn`` is post-softmax over the P patches (rows sum to 1), ``logits`` the pre-softmax scores.
    """

    attn: torch.Tensor
    logits: torch.Tensor

    def __post_init__(self) -> None:
        a, s = self.attn, self.logits
        if not isinstance(a, torch.Tensor) or not isinstance(s, torch.Tensor):
            raise RobustlabError("AttentionScores needs attn and logits as torch tensors")
        if a.dim() != 3 or a.shape != s.shape or min(a.shape[1:], default=0) < 1:
            shapes = f"{tuple(a.shape)} and {tuple(s.shape)}"
            raise RobustlabError(f"AttentionScores needs attn and logits of one shape (N, H, P), got {shapes}")

    @classmethod
    def from_logits(cls, logits: torch.Tensor) -> AttentionScores:
        """Scores whose attention is the softmax of ``logits`` (N, H, P) over the patches."""
        return cls(attn=torch.softmax(logits.to(torch.float64), dim=-1), logits=logits)

    @property
    def n(self) -> int:
        """Number of tiles N."""
        return int(self.attn.shape[0])


class Estimator(Protocol):
    """What :func:`compare_estimators` needs; ``patch_mask(scores) -> bool (N, P)`` is optional."""

    def fit(self, scores: AttentionScores, areas: torch.Tensor) -> Estimator: ...

    def predict(self, scores: AttentionScores) -> torch.Tensor: ...


HeadChoice = Literal["mean"] | int


def _f64(x: torch.Tensor | np.ndarray | Sequence[float]) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x), dtype=torch.float64)


def _areas(scores: AttentionScores, areas: torch.Tensor | np.ndarray | Sequence[float], least: int) -> torch.Tensor:
    if not isinstance(scores, AttentionScores):
        raise RobustlabError(f"fit needs AttentionScores, got {type(scores).__name__}")
    y = _f64(areas)
    if y.shape != (scores.n,):
        raise RobustlabError(f"fit needs areas of shape ({scores.n},) to match the scores, got {tuple(y.shape)}")
    if scores.n < least:
        raise RobustlabError(f"fit needs at least {least} calibration tiles, got {scores.n}")
    if not torch.isfinite(y).all():
        raise RobustlabError("fit needs finite calibration areas (m²)")
    return y


def _head_rows(x: torch.Tensor, head: HeadChoice) -> torch.Tensor:
    """(N, H, P) → (N, P): the mean over heads or one head, as CPU float64."""
    x = x.detach().to("cpu", torch.float64)
    if head == "mean":
        return x.mean(dim=1)
    if isinstance(head, int) and not isinstance(head, bool) and 0 <= head < x.shape[1]:
        return x[:, head]
    raise RobustlabError(f"head must be 'mean' or an int in 0..{x.shape[1] - 1}, got {head!r}")


def _check_head(head: object, allow_best: bool) -> None:
    ok = head == "mean" or (allow_best and head == "best") or (isinstance(head, int) and not isinstance(head, bool))
    if not ok:
        allowed = "'mean', 'best' or an int" if allow_best else "'mean' or an int"
        raise RobustlabError(f"head must be {allowed}, got {head!r}")


def _fit_lines(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Least squares ``y ≈ a·x + b`` for each row of ``x`` (K, n) against ``y`` (n,), with slope ``a >= 0``.

    Returns ``a``, ``b`` and the in-sample MAE, each (K,). A row with no spread in ``x`` (or whose best slope
    is negative) gets ``a = 0, b = mean(y)``, the least-squares optimum under the constraint.
    """
    xm, ym = x.mean(dim=1, keepdim=True), y.mean()
    dx = x - xm
    sxx, sxy = (dx * dx).sum(dim=1), (dx * (y - ym)).sum(dim=1)
    flat = sxx <= 1e-12 * (1.0 + (x * x).sum(dim=1))
    a = torch.where(flat, torch.zeros_like(sxx), sxy / torch.where(flat, torch.ones_like(sxx), sxx)).clamp(min=0.0)
    b = ym - a * xm.squeeze(1)
    mae = (a[:, None] * x + b[:, None] - y).abs().mean(dim=1)
    return a, b, mae


@dataclass(kw_only=True)
class _Counter:
    """Shared by the two post-softmax counters: count × patch area, or a fitted line of the count."""

    patch_area_m2: float = 1.0
    head: HeadChoice = "mean"
    calibrate: bool = False
    a_: float | None = field(default=None, init=False)
    b_: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if not self.patch_area_m2 > 0:
            raise RobustlabError(f"patch_area_m2 must be > 0 m², got {self.patch_area_m2!r}")
        _check_head(self.head, allow_best=False)

    def patch_mask(self, scores: AttentionScores) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def count(self, scores: AttentionScores) -> torch.Tensor:
        """Number of kept patches per tile, (N,) float64."""
        return self.patch_mask(scores).sum(dim=1).to(torch.float64)

    def fit(self, scores: AttentionScores, areas: torch.Tensor) -> _Counter:
        """With ``calibrate``, least squares ``area ≈ a·count + b`` (a >= 0) on the calibration tiles (m²);
        otherwise only the inputs are checked."""
        y = _areas(scores, areas, least=2 if self.calibrate else 0)
        if self.calibrate:
            a, b, _ = _fit_lines(self.count(scores)[None], y)
            self.a_, self.b_ = float(a[0]), float(b[0])
        return self

    def predict(self, scores: AttentionScores) -> torch.Tensor:
        """Area per tile in m², (N,): ``count × patch_area_m2``, or ``max(a·count + b, 0)`` when calibrated."""
        k = self.count(scores)
        if not self.calibrate:
            return k * self.patch_area_m2
        if self.a_ is None or self.b_ is None:
            raise RobustlabError(f"{type(self).__name__} with calibrate=True must be fitted before predict")
        return (self.a_ * k + self.b_).clamp(min=0.0)


@dataclass
class MassThreshold(_Counter):
    """DINO-style mass threshold on post-softmax attention.

    The heads' attention maps are averaged per tile first (``head="mean"``; an int picks one head) and the
    mean map renormalised to sum to 1; then the smallest set of patches holding ``fraction`` of that mass is
    kept (sort descending, cumulative sum, un-sort; ties go to the lower patch index). Area =
    ``#kept × patch_area_m2`` m², or with ``calibrate=True`` a least-squares line ``a·#kept + b`` (a >= 0)
    fitted on the calibration tiles, clamped at 0.
    """

    fraction: float = 0.6

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.fraction <= 1.0:
            raise RobustlabError(f"MassThreshold needs 0 < fraction <= 1, got {self.fraction!r}")

    def patch_mask(self, scores: AttentionScores) -> torch.Tensor:
        """Kept patches, bool (N, P): the smallest top set whose attention sums to at least ``fraction``."""
        w = _head_rows(scores.attn, self.head).clamp(min=0.0)
        w = w / w.sum(dim=1, keepdim=True).clamp(min=torch.finfo(torch.float64).tiny)
        ordered, order = torch.sort(w, dim=1, descending=True, stable=True)
        before = ordered.cumsum(dim=1) - ordered  # mass held by the patches ranked above this one
        keep = before < self.fraction - MASS_TOLERANCE
        return torch.zeros_like(keep).scatter(1, order, keep)


@dataclass
class PeakCount(_Counter):
    """Naive post-softmax count: patches whose attention exceeds ``ratio × the tile's maximum``.

    Heads are averaged first (``head="mean"``; an int picks one head). Area = ``#patches × patch_area_m2`` m²
    (or a calibrated line, as in :class:`MassThreshold`). Softmax makes this collapse when one patch's logit
    stands far above the others: only the peak survives whatever the panel's size.
    """

    ratio: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.ratio < 1.0:
            raise RobustlabError(f"PeakCount needs 0 <= ratio < 1, got {self.ratio!r}")

    def patch_mask(self, scores: AttentionScores) -> torch.Tensor:
        """Counted patches, bool (N, P): attention strictly above ``ratio × max``."""
        w = _head_rows(scores.attn, self.head)
        return w > self.ratio * w.max(dim=1, keepdim=True).values


DEFAULT_QUANTILES: tuple[float, ...] = tuple(float(q) for q in np.linspace(0.02, 0.98, 49))
DEFAULT_RELATIVE_TEMPERATURES: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5)


@dataclass
class LogitSoftCount:
    """Calibrated soft count of pre-softmax logits ``s`` (N, H, P) above a threshold ``τ``.

    ``kind="sigmoid"`` (default, the more robust): ``area ≈ a·Σ_p sigmoid((s_p − τ)/T) + b``;
    ``kind="relu"``: ``area ≈ a·Σ_p relu(s_p − τ) + b`` (T plays no part). Predictions are clamped at 0 m².

    Fitting (deterministic, works from 2 tiles; ~10 is plenty on clean maps): ``τ`` runs over ``quantiles`` of
    the pooled calibration logits (numpy's linear interpolation) and the midpoints between consecutive distinct
    quantiles (so a gap between panel and background logits gets a candidate inside it); ``T`` runs over
    ``temperatures`` (absolute logit units) or, when None, over ``DEFAULT_RELATIVE_TEMPERATURES × std`` of the
    pooled calibration logits. For each pair ``a >= 0, b`` are least squares against the calibration areas (m²)
    and the pair with the lowest in-sample calibration MAE wins (the lowest τ, then the first T, on ties).

    Heads: ``head="mean"`` averages the logits over heads; an int uses that head; ``"best"`` fits every head
    and keeps the one with the lowest calibration MAE (the lowest index on ties). ``patch_mask`` is ``s > τ``
    on the chosen logits. Fitted: ``tau_``, ``temperature_``, ``a_``, ``b_``, ``head_`` and ``calib_mae_``.
    """

    head: HeadChoice | Literal["best"] = "mean"
    kind: Literal["sigmoid", "relu"] = "sigmoid"
    quantiles: Sequence[float] = DEFAULT_QUANTILES
    temperatures: Sequence[float] | None = None
    tau_: float | None = field(default=None, init=False)
    temperature_: float | None = field(default=None, init=False)
    a_: float | None = field(default=None, init=False)
    b_: float | None = field(default=None, init=False)
    head_: HeadChoice | None = field(default=None, init=False)
    calib_mae_: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        _check_head(self.head, allow_best=True)
        if self.kind not in ("sigmoid", "relu"):
            raise RobustlabError(f"LogitSoftCount kind must be 'sigmoid' or 'relu', got {self.kind!r}")
        q = list(self.quantiles)
        if not q or not all(0.0 <= v <= 1.0 for v in q):
            raise RobustlabError("LogitSoftCount needs a non-empty list of quantiles in [0, 1]")
        if self.temperatures is not None and (not list(self.temperatures) or min(self.temperatures) <= 0):
            raise RobustlabError("LogitSoftCount needs temperatures > 0 (or None for the relative grid)")

    def _soft(self, s: torch.Tensor, tau: float, temps: torch.Tensor) -> torch.Tensor:
        """Soft counts (len(temps), N) of logits ``s`` (N, P) at threshold ``tau``."""
        z = s - tau
        if self.kind == "relu":
            return z.clamp(min=0.0).sum(dim=1)[None].expand(len(temps), -1)
        return torch.sigmoid(z[None] / temps[:, None, None]).sum(dim=2)

    def _fit_rows(self, s: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float, float, float]:
        """Best (mae, tau, T, a, b) for calibration logits ``s`` (n, P)."""
        pooled = s.flatten().numpy()
        taus = np.unique(np.quantile(pooled, np.asarray(list(self.quantiles), dtype=np.float64)))
        taus = np.sort(np.concatenate([taus, (taus[1:] + taus[:-1]) / 2]))  # midpoints land in gaps between modes
        if self.kind == "relu":
            temps = torch.ones(1, dtype=torch.float64)
        elif self.temperatures is not None:
            temps = torch.tensor(list(self.temperatures), dtype=torch.float64)
        else:
            spread = float(pooled.std()) or 1.0
            temps = torch.tensor(DEFAULT_RELATIVE_TEMPERATURES, dtype=torch.float64) * spread
        x = torch.cat([self._soft(s, float(t), temps) for t in taus])  # (len(taus)·len(temps), n), τ-major
        a, b, mae = _fit_lines(x, y)
        best = int(torch.argmin(mae))
        i, j = divmod(best, len(temps))
        return float(mae[best]), float(taus[i]), float(temps[j]), float(a[best]), float(b[best])

    def fit(self, scores: AttentionScores, areas: torch.Tensor) -> LogitSoftCount:
        """Fit ``τ, T, a, b`` (and the head with ``head="best"``) on calibration tiles with known area (m²)."""
        y = _areas(scores, areas, least=2)
        logits = scores.logits.detach().to("cpu", torch.float64)
        if self.head == "best":
            heads: list[HeadChoice] = list(range(logits.shape[1]))
        else:
            _head_rows(logits[:1], self.head)  # range check
            heads = [self.head]
        fits = [self._fit_rows(_head_rows(logits, h), y) for h in heads]
        k = min(range(len(fits)), key=lambda i: fits[i][0])
        self.calib_mae_, self.tau_, self.temperature_, self.a_, self.b_ = fits[k]
        self.head_ = heads[k]
        return self

    def _chosen(self, scores: AttentionScores) -> torch.Tensor:
        if self.head_ is None or self.tau_ is None:
            raise RobustlabError("LogitSoftCount must be fitted before predict or patch_mask")
        return _head_rows(scores.logits, self.head_)

    def soft_count(self, scores: AttentionScores) -> torch.Tensor:
        """The fitted soft count per tile, (N,) float64 (patches for sigmoid, logit units for relu)."""
        s = self._chosen(scores)
        return self._soft(s, float(self.tau_), torch.tensor([self.temperature_], dtype=torch.float64))[0]

    def predict(self, scores: AttentionScores) -> torch.Tensor:
        """Area per tile in m², (N,): ``max(a·soft_count + b, 0)``."""
        return (self.a_ * self.soft_count(scores) + self.b_).clamp(min=0.0)

    def patch_mask(self, scores: AttentionScores) -> torch.Tensor:
        """Patches whose chosen logit exceeds the fitted ``τ``, bool (N, P)."""
        return self._chosen(scores) > self.tau_


def _correlation(fn, x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    r = float(fn(x, y)[0])
    return r if np.isfinite(r) else None


def score_areas(
    pred: torch.Tensor | np.ndarray | Sequence[float],
    true: torch.Tensor | np.ndarray | Sequence[float],
    baseline_mean: float,
) -> dict[str, float | int | None]:
    """How predicted areas (N,) m² track the true ones (N,) m²; plain floats.

    Keys: ``pearson``, ``spearman`` (scipy.stats; **None** when either side is constant or N < 2),
    ``mae_m2``, ``baseline_mae_m2`` (predicting ``baseline_mean`` m², e.g. the calibration tiles' mean area,
    for every tile), ``mae_gain = 1 − mae/baseline_mae`` (None when the baseline MAE is 0),
    ``total_relative_error = |Σpred − Σtrue| / Σtrue`` (None when Σtrue is 0), ``per_tile_mre`` = mean
    ``|pred − true| / true`` over tiles with true > 0 (None when there are none), and ``n``.
    """
    p, t = _f64(pred).numpy(), _f64(true).numpy()
    if p.ndim != 1 or p.shape != t.shape or len(p) == 0:
        raise RobustlabError(f"score_areas needs pred and true of one shape (N,), got {p.shape} and {t.shape}")
    if not (np.isfinite(p).all() and np.isfinite(t).all() and np.isfinite(baseline_mean)):
        raise RobustlabError("score_areas needs finite areas and baseline_mean")
    err = np.abs(p - t)
    mae, base = float(err.mean()), float(np.abs(baseline_mean - t).mean())
    total = float(t.sum())
    pos = t > 0
    return {
        "pearson": _correlation(stats.pearsonr, p, t),
        "spearman": _correlation(stats.spearmanr, p, t),
        "mae_m2": mae,
        "baseline_mae_m2": base,
        "mae_gain": 1.0 - mae / base if base > 0 else None,
        "total_relative_error": abs(float(p.sum()) - total) / total if total != 0 else None,
        "per_tile_mre": float((err[pos] / t[pos]).mean()) if pos.any() else None,
        "n": int(len(p)),
    }


def patch_jaccard(pred_mask: torch.Tensor, true_mask: torch.Tensor) -> float:
    """Mean over tiles of ``|pred ∩ true| / |pred ∪ true|`` for bool masks (N, P); a tile where both are
    empty (empty union) counts as 1.0."""
    if pred_mask.dim() != 2 or pred_mask.shape != true_mask.shape or pred_mask.shape[0] == 0:
        raise RobustlabError(
            f"patch_jaccard needs masks of one shape (N, P), got {tuple(pred_mask.shape)} and {tuple(true_mask.shape)}"
        )
    p, t = pred_mask.detach().cpu().bool(), true_mask.detach().cpu().bool()
    inter, union = (p & t).sum(dim=1).double(), (p | t).sum(dim=1).double()
    per_tile = torch.where(union > 0, inter / union.clamp(min=1.0), torch.ones_like(union))
    return float(per_tile.mean())


def compare_estimators(
    estimators: Mapping[str, Estimator],
    calib_scores: AttentionScores,
    calib_areas: torch.Tensor,
    test_scores: AttentionScores,
    test_areas: torch.Tensor,
    test_patch_masks: torch.Tensor | None = None,
) -> dict[str, dict[str, float | int | None]]:
    """Fit each estimator (in place) on the calibration tiles and score it on the test tiles.

    Per name: :func:`score_areas` against the test areas (m²) with the calibration tiles' mean area as the
    baseline, plus ``patch_jaccard`` when the estimator has ``patch_mask`` and ``test_patch_masks`` (N, P) is
    given.
    """
    baseline = float(_f64(calib_areas).mean()) if len(_f64(calib_areas)) else float("nan")
    out: dict[str, dict[str, float | int | None]] = {}
    for name, est in estimators.items():
        est.fit(calib_scores, calib_areas)
        row = score_areas(est.predict(test_scores), test_areas, baseline)
        masker = getattr(est, "patch_mask", None)
        if callable(masker) and test_patch_masks is not None:
            row["patch_jaccard"] = patch_jaccard(masker(test_scores), test_patch_masks)
        out[name] = row
    return out
