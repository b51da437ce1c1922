"""Circle-loss metric learning + kNN classification, clean and under an attack through the CE head."""

from __future__ import annotations

import pytest
import torch
from defense_helpers import first_batch, tiny_model, train

from robustlab.attacks import build_attack
from robustlab.core.errors import RobustlabError
from robustlab.defenses import KNNClassifier, build_defense, knn_under_attack
from robustlab.labs.classification.task import ClassificationTask


@pytest.fixture(scope="module")
def circle_model(digits):
    model, _, fit = train(build_defense("circle"), digits[0], epochs=4, batch_size=128, lr=3e-3,
                          model=tiny_model(width=8, feature_dim=32))
    return model, fit


@pytest.mark.slow
def test_circle_then_knn_end_to_end(circle_model, digits):
    model, fit = circle_model
    train_set, test_set = digits
    assert fit.history[-1]["train_circle"] < fit.history[0]["train_circle"]
    knn = KNNClassifier(k=5).fit(model, train_set)
    acc = knn.accuracy(model, test_set)
    assert acc > 0.8, acc
    x, _ = first_batch(test_set, 50)
    model.train()
    pred = knn.predict(model, x)
    assert pred.shape == (50,) and pred.dtype == torch.long
    assert all(m.training for m in model.modules())  # embedding ran in eval mode, mode restored


@pytest.mark.slow
def test_knn_under_attack_reports_clean_and_adversarial(circle_model, digits):
    model, _ = circle_model
    train_set, test_set = digits
    knn = KNNClassifier(k=5).fit(model, train_set)
    res = knn_under_attack(model, knn, test_set, build_attack("fgsm", eps=0.2))
    assert {"clean", "adversarial", "head_clean", "head_adversarial", "count"} <= set(res)
    assert res["count"] == len(test_set)
    assert res["clean"] == pytest.approx(knn.accuracy(model, test_set))
    assert 0.0 <= res["adversarial"] < res["clean"]  # FGSM through the CE head transfers to the kNN
    assert res["head_adversarial"] < res["head_clean"]


def test_circle_loss_parts_and_embedding_hook(digits_small):
    x, y = first_batch(digits_small, 64)
    model = tiny_model()
    out = build_defense("circle", ce_weight=0.5).train_batch(model, x, y, ClassificationTask(10), lambda loss: None)
    assert out.loss.item() == pytest.approx(out.extras["circle"].item() + 0.5 * out.extras["ce"].item(), rel=1e-5)
    assert out.outputs.shape == (64, 10)
    assert not model.head._forward_pre_hooks  # the capture hook is removed


def test_knn_errors(digits_small):
    model = tiny_model()
    x, _ = first_batch(digits_small, 4)
    with pytest.raises(RobustlabError, match="not fitted"):
        KNNClassifier().predict(model, x)
    with pytest.raises(RobustlabError, match="k must be an integer"):
        KNNClassifier(k=0)
