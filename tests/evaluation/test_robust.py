"""evaluate_robustness on a small CNN trained on digits: consistency, early exit, resume, flags."""

from __future__ import annotations

import copy

import pytest
import torch
from evaluation_helpers import LabelLeakModel, QuantizedModel, RandomizedModel, attack_factory

from robustlab.config import EvalConfig
from robustlab.core.errors import RobustlabError
from robustlab.data import DatasetInfo, TensorImageDataset
from robustlab.evaluation import accuracy_under_noise, evaluate_robustness
from robustlab.evaluation.runner import accepts_active

FACTORY = attack_factory()
EPS = [0.0, 0.05, 0.1]


def run(model, data, **kw):
    """Evaluate with small settings: PGD-10, 60 sanity samples, Square with 300 queries."""
    opts = {k: kw.pop(k) for k in ("batch_size", "state_path", "on_batch_end", "amp") if k in kw}
    params = {"square": {"n_queries": 300}, **kw.pop("attack_params", {})}
    cfg = EvalConfig(**{"attacks": ["fgsm", "pgd"], "eps": EPS, "steps": 10, "attack_params": params, **kw})
    batch_size = opts.pop("batch_size", 50)
    return evaluate_robustness(model, data, cfg, batch_size=batch_size, attack_factory=FACTORY,
                               sanity_samples=60, **opts)


@pytest.fixture(scope="module")
def sound(digits_model, digits_small):
    return run(digits_model, digits_small, noise_sigma=[0.0, 0.2])


def codes(res) -> set[str]:
    return {f["code"] for f in res.to_json()["flags"]}


def test_sound_model_raises_no_flags(sound):
    j = sound.to_json()
    assert j["flags"] == [], j["flags"]
    assert j["sanity"]["blackbox"]["whitebox_robust"] > 0  # the black-box check did look at something


def test_json_schema_and_consistency(sound, digits_small):
    j = sound.to_json()
    n = len(digits_small)
    assert j["n_samples"] == n
    assert j["clean_accuracy"] > 0.9
    assert [(r["attack"], r["eps"]) for r in j["robust"]] == [(a, e) for a in ("fgsm", "pgd") for e in EPS]
    for r in j["robust"]:
        assert set(r) >= {"attack", "norm", "eps", "eps_255", "accuracy", "success_rate", "mean_norm",
                          "median_norm", "seconds"}
        assert r["eps_255"] == round(r["eps"] * 255, 2)
        if r["eps"] == 0:  # eps 0 is the clean accuracy
            assert r["accuracy"] == j["clean_accuracy"] and r["success_rate"] == 0
        if r["median_norm"] is not None:
            assert r["median_norm"] <= r["eps"] + 1e-5
    assert j["worst_case"][0]["accuracy"] == j["clean_accuracy"]
    assert j["noise"][0] == {"sigma": 0.0, "accuracy": j["clean_accuracy"]}
    # worst case <= every attack, per eps and per sample; accuracy falls with eps
    for m, e in enumerate(sound.eps):
        wc = sound.worst_case[e]
        assert j["worst_case"][m]["accuracy"] == pytest.approx(wc.double().mean().item())
        for a in sound.attacks:
            assert not (wc & ~sound.robust_correct[a][e]).any()
            assert j["worst_case"][m]["accuracy"] <= next(
                r["accuracy"] for r in j["robust"] if r["attack"] == a and r["eps"] == e)
        assert not (wc & ~sound.clean_correct).any()
    accs = [r["accuracy"] for r in j["worst_case"]]
    assert accs == sorted(accs, reverse=True) and accs[-1] < accs[0]
    # per-class and confusion agree with the clean accuracy
    clean = torch.tensor(j["confusion"]["clean"])
    assert clean.sum() == n and clean.trace().item() / n == pytest.approx(j["clean_accuracy"])
    adv = torch.tensor(j["confusion"]["adversarial"])
    assert adv.sum() == n and adv.trace().item() / n == pytest.approx(j["worst_case"][-1]["accuracy"])
    pc = j["per_class"]
    assert sum(v["clean"] * v["n"] for v in pc.values()) / n == pytest.approx(j["clean_accuracy"])
    wc_last = j["worst_case"][-1]["accuracy"]
    assert sum(v["robust"] * v["n"] for v in pc.values()) / n == pytest.approx(wc_last)
    assert j["superclass"] is None and j["min_perturbation"] == {}
    # figures: the first images with each attack's examples at the largest eps
    ex = sound.examples
    assert ex["x"].shape == (16, 1, 8, 8) and set(ex["x_adv"]) == {"fgsm", "pgd"}
    assert (ex["x_adv"]["pgd"] - ex["x"]).abs().max() <= 0.1 + 1e-6


def _numbers(res):
    """Everything early exit must not change (not: timings, work counters, which adversarial example
    of a fooled point is kept — early exit stops PGD at the first successful step)."""
    j = res.to_json()
    keep = ("clean_accuracy", "robust", "worst_case", "per_class", "noise", "min_perturbation")
    out = {k: copy.deepcopy(j[k]) for k in keep}
    for r in out["robust"]:
        for key in ("seconds", "attacked", "mean_norm", "median_norm"):
            del r[key]
    adv = torch.tensor(j["confusion"]["adversarial"])
    out["confusion"] = (j["confusion"]["clean"], adv.trace().item(), adv.sum(1).tolist())
    return out


def _assert_identical(a, b):
    assert _numbers(a) == _numbers(b)
    assert torch.equal(a.clean_correct, b.clean_correct)
    for e in a.eps:
        assert torch.equal(a.worst_case[e], b.worst_case[e])
        for name in a.attacks:
            assert torch.equal(a.robust_correct[name][e], b.robust_correct[name][e])


@pytest.mark.parametrize("per_attack", ["standalone", "cumulative"])
def test_early_exit_gives_identical_numbers_with_less_work(digits_model, digits_small, per_attack):
    kw = {"attacks": ["fgsm", "pgd", "uap", "deepfool"], "attack_params": {"pgd": {"random_start": False}},
          "sanity": False, "eps": [0.05, 0.1], "per_attack": per_attack}
    fast = run(digits_model, digits_small, early_exit=True, **kw)
    full = run(digits_model, digits_small, early_exit=False, **kw)
    _assert_identical(fast, full)
    ee_fast, ee_full = fast.to_json()["early_exit"], full.to_json()["early_exit"]
    assert ee_full["skipped_points"] == 0
    assert ee_fast["skipped_points"] > 0
    assert ee_fast["attacked_points"] + ee_fast["skipped_points"] == ee_full["attacked_points"]
    # minimal perturbations: accuracy at eps = share of points whose minimal norm exceeds it
    mp = fast.to_json()["min_perturbation"]["deepfool"]
    assert mp["norm"] == "linf" and 0 < mp["found"] <= 1 and mp["median"] > 0


def test_minimal_perturbation_accuracy_is_the_share_above_eps(digits_model, digits_small):
    res = run(digits_model, digits_small, attacks=["deepfool"], norm="l2", eps=[0.0, 0.5, 1.0, 2.0],
              sanity=False)
    norms = res.min_norms["deepfool"]
    assert torch.isnan(norms[~res.clean_correct]).all() and (norms[res.clean_correct] > 0).all()
    for e in res.eps:
        expected = res.clean_correct & ~(norms <= e)
        assert torch.equal(res.robust_correct["deepfool"][e], expected)
        assert torch.equal(res.worst_case[e], expected)
    mp = res.to_json()["min_perturbation"]["deepfool"]
    assert mp["norm"] == "l2" and mp["n"] == int(torch.isfinite(norms).sum())
    assert mp["median"] == pytest.approx(norms[torch.isfinite(norms)].double().median().item())


@pytest.mark.parametrize("per_attack", ["standalone", "cumulative"])
def test_early_exit_identical_with_random_attacks(digits_model, digits_small, per_attack):
    """Random starts and random searches: the attacks draw for the full batch (``active=``)."""
    assert accepts_active(FACTORY("pgd"))
    kw = {"attacks": ["gaussian-noise", "fgsm", "pgd", "square"], "sanity": False, "eps": [0.05, 0.1],
          "per_attack": per_attack,
          "n_samples": 60,
          "attack_params": {"pgd": {"random_start": True}, "square": {"n_queries": 40},
                            "gaussian-noise": {"sigma": 0.2}}}
    _assert_identical(run(digits_model, digits_small, early_exit=True, **kw),
                      run(digits_model, digits_small, early_exit=False, **kw))


def test_resume_after_interruption_gives_identical_results(digits_model, digits_small, tmp_path):
    state = tmp_path / "eval_state.pt"
    kw = {"attacks": ["fgsm", "pgd"], "sanity": False, "batch_size": 30, "noise_sigma": [0.1],
          "eps": [0.05, 0.1]}
    seen = []

    def crash_after_two(batch, total):
        seen.append(batch)
        if batch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(digits_model, digits_small, state_path=str(state), on_batch_end=crash_after_two, **kw)
    assert state.is_file() and seen == [0, 1]
    resumed_batches = []
    resumed = run(digits_model, digits_small, state_path=str(state),
                  on_batch_end=lambda b, total: resumed_batches.append(b), **kw)
    assert resumed_batches == [2, 3]  # batches 0 and 1 came from the state file
    fresh = run(digits_model, digits_small, **kw)
    _assert_identical(resumed, fresh)
    # a different config does not reuse the state
    other = []
    run(digits_model, digits_small, state_path=str(state), on_batch_end=lambda b, t: other.append(b),
        **{**kw, "noise_sigma": [0.2]})
    assert other == [0, 1, 2, 3]


def test_planted_label_leak_fires_robust_above_clean(digits_model, digits_small):
    res = run(LabelLeakModel(digits_model), digits_small, eps=[0.1])
    j = res.to_json()
    assert j["clean_accuracy"] < 0.2
    assert "robust_above_clean" in codes(res)
    flag = next(f for f in j["flags"] if f["code"] == "robust_above_clean")
    assert flag["severity"] == "error" and "%" in flag["message"] and flag["remedy"]
    # the main table itself never counts a clean-misclassified point as robust
    assert all(r["accuracy"] <= j["clean_accuracy"] for r in j["robust"])


def test_planted_gradient_masking_fires_vanishing_gradients(digits_model, digits_small):
    res = run(QuantizedModel(digits_model), digits_small, eps=[0.1], n_samples=60)
    j = res.to_json()
    assert j["clean_accuracy"] > 0.9
    assert j["sanity"]["gradients"]["zero_fraction"] == 1.0
    assert "vanishing_gradients" in codes(res)
    assert "blackbox_beats_whitebox" in codes(res)


def test_planted_randomized_model_fires(digits_model, digits_small):
    res = run(RandomizedModel(digits_model), digits_small, eps=[0.1], attacks=["fgsm"])
    assert "randomized_model" in codes(res)


def test_model_mode_and_weights_untouched(digits_model, digits_small):
    digits_model.train()
    before = {k: v.clone() for k, v in digits_model.state_dict().items()}
    try:
        run(digits_model, digits_small, eps=[0.1], sanity=False, n_samples=20)
        assert digits_model.training
        assert all(torch.equal(before[k], v) for k, v in digits_model.state_dict().items())
        assert all(p.grad is None for p in digits_model.parameters())
    finally:
        digits_model.eval()


def test_bf16_autocast_runs(digits_model, digits_small):
    res = run(digits_model, digits_small, eps=[0.1], sanity=False, n_samples=40, amp="bf16")
    j = res.to_json()
    assert j["n_samples"] == 40 and 0.8 <= j["clean_accuracy"] <= 1.0
    assert j["worst_case"][0]["accuracy"] <= j["clean_accuracy"]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"attacks": ["fgsm", "fgsm"]}, "listed twice"),
        ({"attack_params": {"pgd": {"eps": 0.3}}}, "evaluate.eps"),
        ({"attack_params": {"pgd": {"targeted": True}}}, "untargeted"),
        ({"attack_params": {"fgsm": {"norm": "l2"}}}, "one threat model"),
        ({"attack_params": {"cw-l2": {}}}, "neither in evaluate.attacks"),
        ({"attacks": ["square"], "norm": "l2"}, "linf norm only"),
    ],
)
def test_bad_settings_are_one_line_errors(digits_model, digits_small, kw, match):
    with pytest.raises(RobustlabError, match=match):
        run(digits_model, digits_small, **kw)


def test_every_registered_attack_runs_in_one_evaluation(digits_model, digits_small):
    params = {"apgd-ce": {"steps": 5}, "apgd-dlr": {"steps": 5}, "square": {"n_queries": 50},
              "cw-l2": {"steps": 10, "binary_search_steps": 2}, "gaussian-noise": {"sigma": 0.1}}
    attacks = ["gaussian-noise", "fgsm", "uap", "apgd-ce", "apgd-dlr", "square", "deepfool", "cw-l2"]
    res = run(digits_model, digits_small, attacks=attacks, eps=[0.05, 0.1], attack_params=params,
              n_samples=30, sanity=False, per_attack="cumulative")
    j = res.to_json()
    assert [r["attack"] for r in j["robust"][::2]] == attacks
    for m, e in enumerate(res.eps):
        accs = [r["accuracy"] for r in j["robust"] if r["eps"] == e]
        assert accs == sorted(accs, reverse=True)  # cumulative over the list
        assert accs[-1] == j["worst_case"][m]["accuracy"]
    assert set(j["min_perturbation"]) == {"deepfool", "cw-l2"}
    assert j["min_perturbation"]["cw-l2"]["norm"] == "l2"
    assert set(res.examples["x_adv"]) == set(attacks)


def test_standalone_rows_are_each_attack_alone(digits_model, digits_small):
    kw = {"attacks": ["fgsm", "pgd"], "eps": [0.05, 0.1], "sanity": False, "n_samples": 60}
    both = run(digits_model, digits_small, **kw)
    alone = {a: run(digits_model, digits_small, **{**kw, "attacks": [a]}) for a in ("fgsm", "pgd")}
    for e in both.eps:
        for a in ("fgsm", "pgd"):
            assert torch.equal(both.robust_correct[a][e], alone[a].robust_correct[a][e])
        assert torch.equal(both.worst_case[e], both.robust_correct["fgsm"][e] & both.robust_correct["pgd"][e])


def test_no_attacks_or_no_eps(digits_model, digits_small):
    res = run(digits_model, digits_small, attacks=[], eps=[0.1], n_samples=20, attack_params={})
    j = res.to_json()
    assert j["robust"] == [] and j["worst_case"][0]["accuracy"] == j["clean_accuracy"]
    res = run(digits_model, digits_small, eps=[], n_samples=20, sanity=False)
    j = res.to_json()
    assert j["worst_case"] == [] and j["confusion"]["adversarial"] is None
    assert all(v["robust"] is None for v in j["per_class"].values())


def test_noise_rows_match_accuracy_under_noise(sound, digits_model, digits_small):
    direct = accuracy_under_noise(digits_model, digits_small, [0.0, 0.2], batch_size=50, seed=0)
    assert sound.to_json()["noise"] == direct


def test_superclasses_from_coarse_labels():
    """4 fine classes in 2 superclasses; the class is the brightest quadrant of a 4×4 image."""
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(80) % 4
    x = torch.rand(80, 1, 4, 4, generator=gen) * 0.3
    rows, cols = (y // 2) * 2, (y % 2) * 2
    for dr in (0, 1):
        for dc in (0, 1):
            x[torch.arange(80), 0, rows + dr, cols + dc] += 0.6
    info = DatasetInfo("quadrants", 4, 1, (4, 4), (0.3,), (0.3,), 80, 80, "test", ("a", "b", "c", "d"))
    ds = TensorImageDataset(x, y, info, coarse_targets=y // 2, coarse_classes=["top", "bottom"])
    model = torch.nn.Sequential(torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4, 4))
    with torch.no_grad():
        model[2].weight.copy_(torch.eye(4) * 10)
        model[2].bias.zero_()
    res = evaluate_robustness(model, ds, EvalConfig(attacks=["fgsm"], eps=[0.3], sanity=False), batch_size=32,
                              attack_factory=FACTORY)
    sc = res.to_json()["superclass"]
    assert sc["clean_accuracy"] >= res.clean_accuracy == 1.0
    assert set(sc["per_superclass"]) == {"top", "bottom"} and sc["per_superclass"]["top"]["n"] == 40
    assert sc["robust_accuracy"] >= res.to_json()["worst_case"][0]["accuracy"]


def test_per_sample_file_round_trips_and_matches_the_summary(sound, tmp_path):
    from robustlab.evaluation.samples import load_per_sample, save_per_sample

    path = save_per_sample(sound, tmp_path / "per_sample.safetensors")
    t, meta = load_per_sample(path)
    doc = sound.to_json()
    assert meta["attacks"] == doc["attacks"] and meta["eps"] == doc["eps"] and meta["norm"] == "linf"
    n = doc["n_samples"]
    assert t["robust"].shape == (len(doc["attacks"]), len(doc["eps"]), n) and t["robust"].dtype == torch.uint8
    assert float((t["clean_pred"] == t["labels"]).double().mean()) == pytest.approx(doc["clean_accuracy"])
    for row in doc["robust"]:
        k, m = doc["attacks"].index(row["attack"]), doc["eps"].index(row["eps"])
        assert float(t["robust"][k, m].double().mean()) == pytest.approx(row["accuracy"])
    for m, row in enumerate(doc["worst_case"]):
        assert float(t["worst_case"][m].double().mean()) == pytest.approx(row["accuracy"])
    for s, row in enumerate(doc["noise"]):
        assert float(t["noise_correct"][s].double().mean()) == pytest.approx(row["accuracy"])
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(RobustlabError, match="not a valid per-sample file"):
        load_per_sample(path)
    with pytest.raises(RobustlabError, match="no per-sample file"):
        load_per_sample(tmp_path / "missing.safetensors")


def test_library_pgd_is_evaluated_at_our_steps_and_alpha():
    from robustlab.evaluation.runner import make_plans

    plans = make_plans(EvalConfig(attacks=["pgd", "torchattacks:PGD", "torchattacks:FGSM"], eps=[0.1], steps=20,
                                  alpha_ratio=0.25), FACTORY)
    ours, lib, fgsm = (p.params(0.1, 0, early_exit=False) for p in plans)
    assert (lib["steps"], lib["alpha"], lib["eps"]) == (ours["steps"], ours["alpha"], 0.1) == (20, 0.025, 0.1)
    assert "steps" not in fgsm and fgsm["eps"] == 0.1
    user = make_plans(EvalConfig(attacks=["torchattacks:PGD"], eps=[0.1],
                                 attack_params={"torchattacks:PGD": {"steps": 3}}), FACTORY)[0]
    assert user.params(0.1, 0, early_exit=False)["steps"] == 3  # the user's choice wins
