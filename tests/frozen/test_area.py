"""Panel area from attention: the three estimators on hand-computed and planted maps, the scores, the
patch-mask helper and the determinism of a fit."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from robustlab.core.errors import RobustlabError
from robustlab.labs.frozen.area import (
    AttentionScores,
    LogitSoftCount,
    MassThreshold,
    PeakCount,
    compare_estimators,
    patch_area,
    patch_jaccard,
    patch_mask,
    score_areas,
)

PATCH_M2 = patch_area(0.3, 14)  # (14 px · 0.3 m/px)² = 17.64 m²
P = 64  # an 8×8 patch grid


def _scores(rows: list[list[float]]) -> AttentionScores:
    """One head per tile, attention given directly (logits = log attention)."""
    attn = torch.tensor(rows, dtype=torch.float64)[:, None, :]
    return AttentionScores(attn=attn, logits=attn.log())


def _planted(n: int, seed: int, heads: int = 4, peak: float | None = None, noise: float = 0.3, low: float = -1.0):
    """``n`` tiles with 1..20 panel patches of 64 at random places; logits ``3 + noise`` on panel patches,
    ``low + noise`` elsewhere, per head; with ``peak`` one panel patch per tile gets that logit instead.
    True area = #panel × patch area + up to ±20 % of a patch (sub-patch edges)."""
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, 21, (n,), generator=gen)
    ranks = torch.rand(n, P, generator=gen).argsort(dim=1).argsort(dim=1)
    mask = ranks < sizes[:, None]
    logits = torch.where(mask[:, None, :], 3.0, low) + noise * torch.randn(n, heads, P, generator=gen)
    if peak is not None:
        first = (ranks == 0)[:, None, :].expand(-1, heads, -1)
        logits = torch.where(first, torch.tensor(peak), logits)
    areas = sizes.double() * PATCH_M2 + 0.2 * PATCH_M2 * (2 * torch.rand(n, generator=gen, dtype=torch.float64) - 1)
    return AttentionScores.from_logits(logits), areas, mask


def _split(scores: AttentionScores, areas: torch.Tensor, mask: torch.Tensor, k: int):
    head = AttentionScores(scores.attn[:k], scores.logits[:k]), areas[:k]
    tail = AttentionScores(scores.attn[k:], scores.logits[k:]), areas[k:], mask[k:]
    return head, tail


# ---- helpers -------------------------------------------------------------------------------------------------


def test_patch_area_and_patch_mask_by_hand():
    assert patch_area(0.3, 14) == pytest.approx(17.64)
    # 4×4 image, 2 px patches → patches TL, TR, BL, BR holding 4, 2, 1, 0 panel pixels of 4
    img = torch.zeros(1, 4, 4, dtype=torch.bool)
    img[0, 0:2, 0:2] = True
    img[0, 0, 2:4] = True
    img[0, 3, 0] = True
    assert patch_mask(img, 2).tolist() == [[True, True, False, False]]
    assert patch_mask(img, 2, min_fraction=0.25).tolist() == [[True, True, True, False]]
    assert patch_mask(img, 2, min_fraction=0.75).tolist() == [[True, False, False, False]]
    # row-major: a lone bottom-right pixel block is patch 3
    img2 = torch.zeros(1, 4, 4, dtype=torch.bool)
    img2[0, 2:4, 2:4] = True
    assert patch_mask(img2, 2).tolist() == [[False, False, False, True]]
    with pytest.raises(RobustlabError, match="divisible"):
        patch_mask(torch.zeros(1, 5, 4, dtype=torch.bool), 2)


def test_attention_scores_rejects_mismatched_shapes():
    with pytest.raises(RobustlabError, match="one shape"):
        AttentionScores(attn=torch.zeros(2, 1, 4), logits=torch.zeros(2, 1, 5))
    with pytest.raises(RobustlabError, match="one shape"):
        AttentionScores(attn=torch.zeros(2, 4), logits=torch.zeros(2, 4))


# ---- estimators by hand --------------------------------------------------------------------------------------


def test_mass_threshold_by_hand():
    s = _scores([[0.5, 0.3, 0.1, 0.1], [0.1, 0.5, 0.1, 0.3]])
    est = MassThreshold(fraction=0.6, patch_area_m2=PATCH_M2)
    # 0.5 < 0.6, 0.5 + 0.3 ≥ 0.6 → two patches; the mask is put back in the original order
    assert est.predict(s).tolist() == pytest.approx([2 * PATCH_M2, 2 * PATCH_M2])
    assert est.patch_mask(s).tolist() == [[True, True, False, False], [False, True, False, True]]
    assert MassThreshold(fraction=0.85, patch_area_m2=1.0).predict(s).tolist() == [3.0, 3.0]
    assert MassThreshold(fraction=0.8, patch_area_m2=1.0).predict(s).tolist() == [2.0, 2.0]  # exactly 0.8 is enough
    assert MassThreshold(fraction=0.5, patch_area_m2=1.0).predict(s).tolist() == [1.0, 1.0]


def test_counters_average_heads_before_thresholding():
    # head 0 peaks on patch 0, head 1 on patch 1: alone each keeps one patch, their mean [.4 .4 .1 .1] keeps two
    attn = torch.tensor([[[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1]]], dtype=torch.float64)
    s = AttentionScores(attn=attn, logits=attn.log())
    assert MassThreshold(fraction=0.6, patch_area_m2=1.0).predict(s).tolist() == [2.0]
    one_head = MassThreshold(fraction=0.6, patch_area_m2=1.0, head=1)
    assert one_head.patch_mask(s).tolist() == [[False, True, False, False]]
    # heads [.7 .3 0 0] and [.7 0 .3 0] average to [.7 .15 .15 0]: mass 0.8 needs two patches, and only the
    # peak exceeds 0.25 × 0.7 (a max over heads, [.7 .3 .3 0], would give three and three)
    attn = torch.tensor([[[0.7, 0.3, 0.0, 0.0], [0.7, 0.0, 0.3, 0.0]]], dtype=torch.float64)
    s = AttentionScores(attn=attn, logits=attn.log())
    assert MassThreshold(fraction=0.8, patch_area_m2=1.0).predict(s).tolist() == [2.0]
    assert PeakCount(ratio=0.25, patch_area_m2=1.0).predict(s).tolist() == [1.0]


def test_mass_threshold_calibration_recovers_a_line():
    # fraction 0.6 keeps 1, 2, 3 patches (0.9; 0.5 + 0.3; 0.3 + 0.25 + 0.25); areas 3·count + 5
    s = _scores([[0.9, 0.05, 0.05, 0.0], [0.5, 0.3, 0.1, 0.1], [0.2, 0.3, 0.25, 0.25]])
    est = MassThreshold(fraction=0.6, patch_area_m2=PATCH_M2, calibrate=True)
    assert est.count(s).tolist() == [1.0, 2.0, 3.0]
    est.fit(s, torch.tensor([8.0, 11.0, 14.0]))
    assert (est.a_, est.b_) == (pytest.approx(3.0), pytest.approx(5.0))
    assert est.predict(s).tolist() == pytest.approx([8.0, 11.0, 14.0])
    with pytest.raises(RobustlabError, match="fitted"):
        MassThreshold(calibrate=True).predict(s)
    with pytest.raises(RobustlabError, match="areas of shape"):
        est.fit(s, torch.tensor([1.0, 2.0]))


def test_peak_count_by_hand():
    s = _scores([[0.5, 0.3, 0.1, 0.1], [0.1, 0.3, 0.5, 0.1]])
    # > 0.25 → {0.5, 0.3}; > 0.35 → {0.5}
    assert PeakCount(ratio=0.5, patch_area_m2=PATCH_M2).predict(s).tolist() == pytest.approx([2 * PATCH_M2] * 2)
    assert PeakCount(ratio=0.5).patch_mask(s).tolist() == [[True, True, False, False], [False, True, True, False]]
    assert PeakCount(ratio=0.7, patch_area_m2=1.0).predict(s).tolist() == [1.0, 1.0]
    assert PeakCount(ratio=0.2, patch_area_m2=1.0).predict(s).tolist() == [2.0, 2.0]  # 0.1 is not > 0.1: strict
    assert PeakCount(ratio=0.19, patch_area_m2=1.0).predict(s).tolist() == [4.0, 4.0]


def test_logit_soft_count_by_hand_relu():
    # one head, 4 patches, k panel logits of 3 and the rest −1; pooled median of the six 3s and six −1s is 1.
    # relu(s − 1) = 2 per panel patch → soft count 2k; areas 10k → a = 5, b = 0.
    logits = torch.tensor([[[3.0, -1, -1, -1]], [[3.0, 3, -1, -1]], [[3.0, 3, 3, -1]]])
    est = LogitSoftCount(kind="relu", quantiles=(0.5,)).fit(AttentionScores.from_logits(logits), [10.0, 20.0, 30.0])
    assert (est.tau_, est.a_, est.b_, est.head_) == (pytest.approx(1.0), pytest.approx(5.0), pytest.approx(0.0), "mean")
    new = AttentionScores.from_logits(torch.tensor([[[3.0, 3, 3, 3]], [[-1.0, -1, -1, -1]]]))
    assert est.predict(new).tolist() == pytest.approx([40.0, 0.0])
    assert est.patch_mask(new).tolist() == [[True] * 4, [False] * 4]


def test_logit_soft_count_by_hand_sigmoid():
    # τ = 1, T = 2: sigmoid(1) = σ per panel patch, sigmoid(−1) = 1 − σ elsewhere; soft count 4(1 − σ) + k(2σ − 1)
    # is linear in k, so areas 10k give a = 10 / (2σ − 1) and b = −4a(1 − σ) and an exact fit.
    logits = torch.tensor([[[3.0, -1, -1, -1]], [[3.0, 3, -1, -1]], [[3.0, 3, 3, -1]]])
    est = LogitSoftCount(quantiles=(0.5,), temperatures=(2.0,)).fit(AttentionScores.from_logits(logits), [10, 20, 30])
    sig = 1 / (1 + math.exp(-1))
    a = 10 / (2 * sig - 1)
    assert (est.tau_, est.temperature_) == (pytest.approx(1.0), 2.0)
    assert (est.a_, est.b_) == (pytest.approx(a), pytest.approx(-4 * a * (1 - sig)))
    assert est.calib_mae_ == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(RobustlabError, match="fitted"):
        LogitSoftCount().predict(AttentionScores.from_logits(logits))
    with pytest.raises(RobustlabError, match="head"):
        LogitSoftCount(head=5).fit(AttentionScores.from_logits(logits), [10, 20, 30])
    with pytest.raises(RobustlabError, match="head"):
        LogitSoftCount(head="worst")


# ---- planted maps --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["mean", "best", 2])
def test_logit_soft_count_tracks_planted_areas_from_ten_tiles(head):
    scores, areas, mask = _planted(60, seed=0)
    (cs, ca), (ts, ta, tm) = _split(scores, areas, mask, 10)
    est = LogitSoftCount(head=head).fit(cs, ca)
    res = score_areas(est.predict(ts), ta, float(ca.mean()))
    assert res["spearman"] > 0.95 and res["pearson"] > 0.95
    assert res["mae_m2"] < 0.25 * res["baseline_mae_m2"]
    assert patch_jaccard(est.patch_mask(ts), tm) > 0.9
    if head == "best":
        assert est.head_ in range(4)


def test_counts_are_exact_on_a_clean_planted_map():
    # no noise, background far below: every panel patch shares the maximum and nearly all the mass
    scores, _, mask = _planted(20, seed=1, noise=0.0, low=-20.0)
    k = mask.sum(dim=1).double()
    peak = PeakCount(ratio=0.5, patch_area_m2=PATCH_M2)
    assert peak.predict(scores).tolist() == pytest.approx((k * PATCH_M2).tolist())
    assert torch.equal(PeakCount().patch_mask(scores), mask)
    assert torch.equal(MassThreshold(fraction=0.999).patch_mask(scores), mask)
    # fraction 0.6 keeps ceil(0.6·k) of k equal patches
    assert MassThreshold(fraction=0.6, patch_area_m2=1.0).predict(scores).tolist() == [
        float(math.ceil(0.6 * v - 1e-9)) for v in k.tolist()
    ]


def test_a_dominant_peak_collapses_softmax_counts_but_not_logit_soft_count():
    # one panel patch per tile at logit 8, the rest at 3: softmax puts ≥ 88 % of the mass on the peak and the
    # other panel patches at e^−5 of it, so both post-softmax counts say "one patch" whatever the panel size
    scores, areas, mask = _planted(60, seed=2, peak=8.0)
    (cs, ca), (ts, ta, tm) = _split(scores, areas, mask, 10)
    res = compare_estimators(
        {"mass": MassThreshold(patch_area_m2=PATCH_M2), "peak": PeakCount(patch_area_m2=PATCH_M2),
         "logit": LogitSoftCount()},
        cs, ca, ts, ta, tm,
    )
    for name in ("mass", "peak"):
        assert res[name]["spearman"] is None and res[name]["pearson"] is None  # constant: one patch everywhere
        assert res[name]["mae_m2"] == pytest.approx(float((ta - PATCH_M2).abs().mean()))
        assert res[name]["patch_jaccard"] < 0.5
    assert res["logit"]["spearman"] > 0.95
    assert res["logit"]["mae_gain"] > 0.75
    assert res["logit"]["patch_jaccard"] > 0.9
    assert set(res["logit"]) == {"pearson", "spearman", "mae_m2", "baseline_mae_m2", "mae_gain",
                                 "total_relative_error", "per_tile_mre", "n", "patch_jaccard"}
    assert res["logit"]["n"] == 50


def test_fit_is_deterministic():
    scores, areas, _ = _planted(30, seed=3)
    (cs, ca), (ts, _, _) = _split(scores, areas, torch.zeros(30, P, dtype=torch.bool), 10)
    runs = [LogitSoftCount(head="best").fit(cs, ca) for _ in range(2)]
    assert [(r.tau_, r.temperature_, r.a_, r.b_, r.head_) for r in runs][0] == (
        runs[1].tau_, runs[1].temperature_, runs[1].a_, runs[1].b_, runs[1].head_
    )
    assert torch.equal(runs[0].predict(ts), runs[1].predict(ts))
    # refitting one instance on other tiles and back gives the first fit again
    est = LogitSoftCount(head="best").fit(cs, ca)
    first = (est.tau_, est.a_, est.b_)
    est.fit(AttentionScores(scores.attn[10:20], scores.logits[10:20]), areas[10:20]).fit(cs, ca)
    assert (est.tau_, est.a_, est.b_) == first


# ---- scores --------------------------------------------------------------------------------------------------


def test_score_areas_by_hand():
    # pred [1 3 4] vs true [1 2 3]: deviations [−5/3 1/3 4/3] and [−1 0 1] → r = 3 / sqrt(42/9 · 2) = 9/√84;
    # ranks agree → ρ = 1; MAE 2/3; baseline 3 → MAE 1, gain 1/3; |8 − 6| / 6 = 1/3; MRE (0 + 1/2 + 1/3)/3 = 5/18
    res = score_areas(torch.tensor([1.0, 3.0, 4.0]), torch.tensor([1.0, 2.0, 3.0]), baseline_mean=3.0)
    assert res == {
        "pearson": pytest.approx(9 / math.sqrt(84)),
        "spearman": pytest.approx(1.0),
        "mae_m2": pytest.approx(2 / 3),
        "baseline_mae_m2": pytest.approx(1.0),
        "mae_gain": pytest.approx(1 / 3),
        "total_relative_error": pytest.approx(1 / 3),
        "per_tile_mre": pytest.approx(5 / 18),
        "n": 3,
    }
    res2 = score_areas([1.0, 3.0, 2.0], [1.0, 2.0, 3.0], baseline_mean=2.0)
    assert (res2["pearson"], res2["spearman"]) == (pytest.approx(0.5), pytest.approx(0.5))


def test_score_areas_constant_prediction_and_bad_input():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConstantInputWarning either
        res = score_areas(torch.full((3,), 5.0), torch.tensor([1.0, 2.0, 3.0]), baseline_mean=2.0)
    assert res["pearson"] is None and res["spearman"] is None
    assert res["mae_m2"] == pytest.approx(3.0) and res["mae_gain"] == pytest.approx(1 - 3.0 / (2 / 3))
    with pytest.raises(RobustlabError, match="one shape"):
        score_areas(torch.zeros(3), torch.zeros(4), 0.0)


def test_patch_jaccard_by_hand():
    pred = torch.tensor([[True, True, False, False], [False, False, False, False]])
    true = torch.tensor([[True, False, True, False], [False, False, False, False]])
    assert patch_jaccard(pred, true) == pytest.approx((1 / 3 + 1.0) / 2)  # the empty tile counts as 1.0
    with pytest.raises(RobustlabError, match="one shape"):
        patch_jaccard(pred, true[:1])
