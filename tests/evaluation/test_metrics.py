"""Small metric functions: confusion matrix, per-class and superclass accuracy, noise, cross-domain."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from robustlab.core.errors import RobustlabError
from robustlab.data import DatasetInfo, TensorImageDataset
from robustlab.evaluation import (
    accuracy_under_noise,
    confusion_matrix,
    cross_domain_table,
    per_class_accuracy,
    superclass_accuracy,
)
from robustlab.evaluation.metrics import derive_seed, norm_summary
from robustlab.evaluation.state import fingerprint, load_state, save_state
from robustlab.models.inference import dataset_accuracy, predict


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=50))
def test_confusion_and_per_class_agree_with_accuracy(pairs):
    labels = torch.tensor([a for a, _ in pairs])
    preds = torch.tensor([b for _, b in pairs])
    cm = confusion_matrix(labels, preds, 5)
    n = len(pairs)
    acc = (labels == preds).double().mean().item()
    assert cm.sum() == n and cm.trace().item() / n == pytest.approx(acc)
    assert cm.sum(1).tolist() == torch.bincount(labels, minlength=5).tolist()
    pc = per_class_accuracy(labels, labels == preds, 5)
    counts = torch.bincount(labels, minlength=5).tolist()
    assert sum((a or 0) * c for a, c in zip(pc, counts, strict=True)) / n == pytest.approx(acc)
    assert all((a is None) == (c == 0) for a, c in zip(pc, counts, strict=True))


def test_confusion_rejects_out_of_range():
    with pytest.raises(RobustlabError, match="0..2"):
        confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), 3)


def test_superclass_accuracy_counts_predictions_in_the_right_superclass():
    labels = torch.tensor([0, 1, 2, 3])
    coarse = torch.tensor([0, 0, 1, 1])  # classes 0,1 -> "a"; 2,3 -> "b"
    preds = {"clean": torch.tensor([1, 1, 0, 2]), "robust": torch.tensor([2, 2, 2, 2])}
    out = superclass_accuracy(labels, coarse, preds, 4, ["a", "b"])
    assert out["clean_accuracy"] == 0.75 and out["robust_accuracy"] == 0.5
    assert out["per_superclass"] == {"a": {"n": 2, "clean": 1.0, "robust": 0.0},
                                     "b": {"n": 2, "clean": 0.5, "robust": 1.0}}
    with pytest.raises(RobustlabError, match="inconsistent"):
        superclass_accuracy(torch.tensor([0, 0]), torch.tensor([0, 1]), preds, 4, ["a", "b"])


def test_norm_summary():
    s = norm_summary(torch.tensor([1.0, 2.0, 3.0, float("inf"), float("nan")]))
    assert s["n"] == 3 and s["mean"] == 2.0 and s["median"] == 2.0 and s["quantiles"]["0.5"] == 2.0
    assert norm_summary(torch.tensor([float("inf")]))["median"] is None


def _tiny_dataset(n=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 4, 4, generator=gen)
    y = (x.mean(dim=(1, 2, 3)) > 0.5).long()
    info = DatasetInfo("tiny", 2, 1, (4, 4), (0.5,), (0.25,), n, n, "test data")
    return TensorImageDataset(x, y, info)


class MeanThreshold(torch.nn.Module):
    """Class 1 iff the mean pixel exceeds 0.5 (perfect on :func:`_tiny_dataset`)."""

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], dim=1) * 100


def test_accuracy_under_noise_is_seeded_and_degrades():
    ds = _tiny_dataset()
    model = MeanThreshold()
    a = accuracy_under_noise(model, ds, [0.0, 0.3, 3.0], batch_size=16, seed=1)
    b = accuracy_under_noise(model, ds, [0.0, 0.3, 3.0], batch_size=16, seed=1)
    assert a == b and a[0] == {"sigma": 0.0, "accuracy": 1.0}
    assert a[2]["accuracy"] < 1.0


def test_cross_domain_table():
    table = cross_domain_table(MeanThreshold(), {"same": _tiny_dataset(), "flipped": _flipped()})
    assert table == [{"dataset": "same", "accuracy": 1.0, "n": 40},
                     {"dataset": "flipped", "accuracy": 0.0, "n": 40}]


def test_predict_and_dataset_accuracy_keep_each_submodule_mode():
    ds = _tiny_dataset()
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Dropout(0.9), MeanThreshold()).train()
    model[0].eval()  # a frozen part stays in eval mode, the rest in train mode
    assert dataset_accuracy(model, ds, batch_size=16) == 1.0  # dropout off: eval mode inside
    assert dataset_accuracy(model, _flipped(), 7, "cpu") == 0.0
    assert torch.equal(predict(model, ds.data), ds.targets)
    assert torch.equal(predict(model, ds.data, batch_size=7), ds.targets)
    assert predict(model, ds.data[:0]).shape == (0,) and predict(model, ds.data[:0]).dtype == torch.long
    assert [m.training for m in model.modules()] == [True, False, True, True]


def _flipped():
    ds = _tiny_dataset()
    return TensorImageDataset(ds.data, 1 - ds.targets, ds.info)


def test_derive_seed_is_stable_and_distinct():
    assert derive_seed(0, 1, 2) == derive_seed(0, 1, 2)
    assert len({derive_seed(0, b, k) for b in range(10) for k in range(10)}) == 100


def test_state_roundtrip_and_fingerprint(tmp_path):
    model = MeanThreshold()
    labels = torch.arange(5)
    fp = fingerprint({"a": 1}, model, labels)
    assert fp == fingerprint({"a": 1}, model, labels) != fingerprint({"a": 2}, model, labels)
    assert fingerprint({"a": 1}, torch.nn.Linear(2, 2), labels) != fp
    path = tmp_path / "s.pt"
    save_state(path, {"fingerprint": fp, "next_batch": 3, "t": torch.ones(2)})
    state = load_state(path, fp)
    assert state["next_batch"] == 3 and torch.equal(state["t"], torch.ones(2))
    assert load_state(path, "other") is None
    path.write_bytes(b"torn")
    assert load_state(path, fp) is None
    assert load_state(None, fp) is None
