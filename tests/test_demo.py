"""The demo recipe (what `make demo` runs) end to end on fabricated data, and its embedded recipe."""

import json

from robustlab.cli import main
from robustlab.recipe import demo_recipe, run_configs


def test_demo_recipe_is_clean_then_fgsm_rs_on_fashion_mnist():
    recipe = demo_recipe()
    (clean, c1), (adv, c2) = run_configs(recipe)
    assert c1.data.dataset == "fashion-mnist" and c1.defense.name == "none"
    assert c2.defense.name == "fgsm-rs" and adv.init_from == "clean"
    assert demo_recipe("digits").base["data"]["dataset"] == "digits"


def test_demo_smoke_writes_reports(tmp_path):
    out = tmp_path / "demo"
    try:
        main(["demo", "--smoke", "--out", str(out), "--quiet"])
    except SystemExit as e:
        assert e.code in (0, None)
    for run in ("clean", "fgsm-rs"):
        assert (out / run / "report.html").exists()
        res = json.loads((out / run / "results.json").read_text())
        assert {"clean_accuracy", "robust", "worst_case", "flags"} <= set(res)
    assert (out / "compare.html").exists()
    # an interrupted demo continues; finished runs are skipped
    try:
        main(["demo", "--smoke", "--out", str(out), "--quiet", "--resume"])
    except SystemExit as e:
        assert e.code in (0, None)
