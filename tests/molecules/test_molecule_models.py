"""Sequence models ignore padding exactly (no packing needed), the audit's invariance numbers, and the
aggregation of cross-validation folds."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
import torch

from robustlab.crossval import aggregate, flatten, fold_configs
from robustlab.labs.molecules.config import MoleculesConfig
from robustlab.labs.molecules.measures import decile_rows, expected_calibration_error, invariance
from robustlab.labs.molecules.models import OneHotMLP, SmilesLSTM, last_valid, reverse_valid


def _batch(seed=0, n=6, width=9, vocab=12):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, width + 1, (n,), generator=g)
    ids = torch.randint(2, vocab, (n, width), generator=g)
    ids[torch.arange(width)[None] >= lengths[:, None]] = 0
    return ids, lengths


@pytest.mark.parametrize("make", [
    lambda: SmilesLSTM(12, 8, 16, 8, 0.0, bidirectional=False),
    lambda: SmilesLSTM(12, 8, 16, 8, 0.0, bidirectional=True),
    lambda: SmilesLSTM(12, 8, 16, 8, 0.0, bidirectional=True, pooling="mean"),
    lambda: OneHotMLP(12, 20, 16, 0.0),
], ids=["lstm", "bilstm", "bilstm-mean", "onehot-mlp"])
def test_padding_never_changes_the_output(make):
    torch.manual_seed(0)
    model = make().eval()
    ids, lengths = _batch()
    with torch.no_grad():
        batched = model(ids, lengths)
        wider = model(torch.cat([ids, torch.zeros(len(ids), 7, dtype=torch.long)], 1), lengths)
        alone = torch.cat([model(ids[i:i + 1, : int(lengths[i])], lengths[i:i + 1]) for i in range(len(ids))])
    assert torch.allclose(batched, wider, atol=1e-6) and torch.allclose(batched, alone, atol=1e-6)


def test_bilstm_backward_half_reads_the_real_tokens():
    torch.manual_seed(0)
    model = SmilesLSTM(12, 8, 16, 8, 0.0, bidirectional=True).eval()
    ids, lengths = _batch(n=1, width=6)
    ids, lengths = ids.clone(), torch.tensor([6])
    ids[0] = torch.tensor([2, 3, 4, 5, 6, 7])
    flipped = ids.clone()
    flipped[0, 0] = 8  # the first token: the last one the backward direction reads
    with torch.no_grad():
        assert not torch.allclose(model(ids, lengths), model(flipped, lengths))
    x = torch.arange(12.0).view(2, 6)
    assert reverse_valid(x, torch.tensor([3, 6])).tolist() == [[2, 1, 0, 3, 4, 5], [11, 10, 9, 8, 7, 6]]
    out = torch.arange(24.0).view(2, 6, 2)
    assert last_valid(out, torch.tensor([2, 6])).tolist() == [[2.0, 3.0], [22.0, 23.0]]


def test_invariance_measures_by_hand():
    p = np.array([0.9, 0.2, 0.6])
    pv = np.array([[0.8, 0.4], [0.7, 0.1], [0.55, 0.65]])
    inv = invariance(p, pv)
    assert inv["flip_rate"] == pytest.approx(2 / 6) and inv["any_flip_rate"] == pytest.approx(2 / 3)
    assert inv["probability_range"] == pytest.approx(np.mean([0.5, 0.6, 0.1]))


def test_deciles_and_calibration_by_hand():
    y = np.array([1, 1, 1, 0, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.4, 0.3, 0.4, 0.7, 0.2, 0.1])
    rows = decile_rows(y, {"m": p}, np.array([1, 2, 3, 4, 5, 6, 7, 8]), bins=2)
    assert [r["n"] for r in rows] == [4, 4]
    assert rows[0]["positive_rate"] == 0.75 and rows[0]["m_accuracy"] == 0.75 and rows[0]["m_gain"] == 0.0
    assert rows[1]["m_accuracy"] == 1.0 and rows[1]["m_gain"] == pytest.approx(0.25)
    # bin [0, 0.5): five at mean 0.28, observed 0.2; bin [0.5, 1]: three at mean 0.8, observed 1.0
    assert expected_calibration_error(y, p, bins=2) == pytest.approx((5 * 0.08 + 3 * 0.2) / 8)


def test_fold_aggregation_is_mean_and_sample_std():
    folds = [{"molecules": {"canonical": {"roc_auc": v, "n": 10}, "model": "lstm"}, "figures": {"a": 1.0}}
             for v in (0.8, 0.9, 0.7)]
    folds[2]["molecules"]["only_here"] = 1.0
    agg = aggregate(folds)
    key = "molecules.canonical.roc_auc"
    assert agg["folds"] == 3 and agg["values"][key] == [0.8, 0.9, 0.7]
    assert agg["mean"][key] == pytest.approx(0.8)
    assert agg["std"][key] == pytest.approx(statistics.stdev([0.8, 0.9, 0.7]))
    assert "molecules.only_here" not in agg["mean"] and not any(k.startswith("figures") for k in agg["mean"])
    assert flatten({"a": [1, {"b": True, "c": 2.5}], "d": "x"}) == {"a.0": 1.0, "a.1.c": 2.5}


def test_fold_configs_cover_every_fold():
    cfgs = fold_configs(MoleculesConfig(name="cv"), 4)
    assert [c.data.fold for c in cfgs] == [0, 1, 2, 3] and {c.data.folds for c in cfgs} == {4}
    assert cfgs[1].name == "cv-fold-1"
