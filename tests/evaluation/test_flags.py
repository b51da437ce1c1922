"""Each sanity check, on hand-made evaluation JSON: fires on the bad case, stays quiet on the good one."""

from __future__ import annotations

import copy

import pytest

from robustlab.evaluation import FLAG_DOCS, run_checks
from robustlab.evaluation import flags as F

GOOD = {
    "clean_accuracy": 0.9,
    "norm": "linf",
    "robust": [
        {"attack": "fgsm", "norm": "linf", "eps": 0.05, "accuracy": 0.6},
        {"attack": "fgsm", "norm": "linf", "eps": 0.1, "accuracy": 0.3},
        {"attack": "pgd", "norm": "linf", "eps": 0.05, "accuracy": 0.5},
        {"attack": "pgd", "norm": "linf", "eps": 0.1, "accuracy": 0.1},
    ],
    "worst_case": [{"eps": 0.05, "accuracy": 0.5}, {"eps": 0.1, "accuracy": 0.1}],
    "sanity": {
        "samples": 100,
        "clean_accuracy": 0.9,
        "standalone": [
            {"attack": "fgsm", "norm": "linf", "eps": 0.05, "accuracy": 0.6, "raw_accuracy": 0.6},
            {"attack": "fgsm", "norm": "linf", "eps": 0.1, "accuracy": 0.3, "raw_accuracy": 0.31},
            {"attack": "pgd", "norm": "linf", "eps": 0.05, "accuracy": 0.5, "raw_accuracy": 0.5},
            {"attack": "pgd", "norm": "linf", "eps": 0.1, "accuracy": 0.1, "raw_accuracy": 0.1},
        ],
        "large_eps": {"attack": "pgd", "norm": "linf", "eps": 0.5, "n": 100, "accuracy": 0.0},
        "gradients": {"n": 100, "zero_fraction": 0.0},
        "randomness": {"n": 100, "max_rel_diff": 0.0, "disagreement": 0.0},
        "blackbox": {"attack": "square", "norm": "linf", "eps": 0.1, "whitebox": ["fgsm", "pgd"],
                     "whitebox_robust": 10, "fooled": 0},
    },
}


def bad(path: str, value) -> dict:
    """GOOD with the value at a dotted path (list indices allowed) replaced."""
    doc = copy.deepcopy(GOOD)
    *keys, last = path.split(".")
    cur = doc
    for k in keys:
        cur = cur[int(k)] if k.isdigit() else cur[k]
    cur[int(last) if last.isdigit() else last] = value
    return doc


def test_good_result_has_no_flags():
    assert run_checks(GOOD) == []
    assert run_checks({"clean_accuracy": 0.5}) == []  # sanity off, nothing to compare


@pytest.mark.parametrize(
    ("doc", "code"),
    [
        (bad("sanity.standalone.0.raw_accuracy", 0.95), "robust_above_clean"),  # label leaking
        (bad("robust.0.accuracy", 0.95), "robust_above_clean"),  # evaluation bug
        (bad("sanity.standalone.3.accuracy", 0.4), "pgd_weaker_than_fgsm"),
        (bad("sanity.standalone.1.accuracy", 0.7), "not_monotonic_in_eps"),
        (bad("worst_case.1.accuracy", 0.6), "not_monotonic_in_eps"),
        (bad("sanity.large_eps.accuracy", 0.3), "not_zero_at_large_eps"),
        (bad("sanity.gradients.zero_fraction", 0.9), "vanishing_gradients"),
        (bad("sanity.randomness.max_rel_diff", 0.2), "randomized_model"),
        (bad("sanity.blackbox.fooled", 6), "blackbox_beats_whitebox"),
    ],
)
def test_each_check_fires(doc, code):
    flags = run_checks(doc)
    assert [f.code for f in flags] == [code]
    f = flags[0]
    assert f.severity == FLAG_DOCS[code]["severity"] and f.remedy == FLAG_DOCS[code]["remedy"]
    assert any(ch.isdigit() for ch in f.message)
    assert set(f.to_json()) == {"code", "severity", "message", "remedy"}


def test_tolerances_for_sampled_numbers():
    # one more point correct under PGD than FGSM on 100 samples is noise, not a flag
    assert run_checks(bad("sanity.standalone.3.accuracy", 0.31)) == []
    # Square fooling 2 of 10 white-box-robust points is below the minimum count
    assert run_checks(bad("sanity.blackbox.fooled", 2)) == []
    # the main table is exact: any rise with eps is flagged
    assert [f.code for f in run_checks(bad("robust.3.accuracy", 0.5 + 1e-6))] == ["not_monotonic_in_eps"]


def test_one_flag_per_code_with_a_count():
    doc = bad("sanity.standalone.0.raw_accuracy", 0.95)
    doc["sanity"]["standalone"][2]["raw_accuracy"] = 0.99
    (flag,) = F.check_robust_above_clean(doc)
    assert "pgd" in flag.message and "99.0%" in flag.message and "1 more case" in flag.message


def test_flag_docs_cover_every_code():
    assert set(FLAG_DOCS) == {
        "robust_above_clean", "pgd_weaker_than_fgsm", "not_monotonic_in_eps", "not_zero_at_large_eps",
        "vanishing_gradients", "randomized_model", "blackbox_beats_whitebox",
    }
    for doc in FLAG_DOCS.values():
        assert doc["severity"] in ("warning", "error") and doc["meaning"] and doc["remedy"]


def test_real_world_robust_above_clean_table_is_flagged():
    """A real-world table (ResNet clean-trained after adversarial training): clean 4.81 %,
    FGSM 44.57 %, PGD 24.23 % at eps 8/255 — robust above clean is impossible for a sound evaluation."""
    doc = {"clean_accuracy": 0.0481, "norm": "linf",
           "robust": [{"attack": "fgsm", "norm": "linf", "eps": 8 / 255, "accuracy": 0.4457},
                      {"attack": "pgd", "norm": "linf", "eps": 8 / 255, "accuracy": 0.2423}]}
    codes = [f.code for f in run_checks(doc)]
    assert "robust_above_clean" in codes
    assert "pgd_weaker_than_fgsm" not in codes  # PGD below FGSM is as it should be
