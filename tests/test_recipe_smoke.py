"""Every recipe in recipes/ runs end to end with --smoke (fabricated data of the same shape)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustlab.cli import main
from robustlab.recipe import load_recipe, run_configs

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))
# tests/generative/test_recipes.py smoke-runs these two and checks every figure; not run twice
SMOKED_ELSEWHERE = {"vae-cvae-mnist", "vqvae-mnist"}


def test_all_course_recipes_and_analogues_exist():
    names = {p.stem for p in RECIPES}
    course = {"cifar100-resnet18-noise", "flowers102-vit", "robustness-table", "fgsm-pgd-scratch-vs-library",
              "svhn-to-mnist-generalization", "cifar10-adversarial-circle"}
    analogues = {"fashion-noise", "fashion-robustness-table", "fashion-fgsm-pgd-scratch-vs-library",
                 "fontdigits-to-digits-generalization", "fashion-adversarial-circle", "vit-transfer-analogue"}
    assert course <= names and analogues <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_recipe_validates(path):
    recipe = load_recipe(path)
    assert recipe.runs and recipe.description
    for smoke in (False, True):
        assert len(run_configs(recipe, smoke=smoke)) == len(recipe.runs)


@pytest.mark.parametrize("path", [p for p in RECIPES if p.stem not in SMOKED_ELSEWHERE], ids=lambda p: p.stem)
def test_recipe_smoke_runs_end_to_end(path, tmp_path):
    out = tmp_path / "out"
    try:
        main(["run", str(path), "--smoke", "--out", str(out), "--quiet"])
    except SystemExit as e:
        assert e.code in (0, None), f"exit {e.code}"
    recipe = load_recipe(path)
    for run in recipe.runs:
        folder = out / run.name
        assert (folder / "report.html").exists(), run.name
        results = json.loads((folder / "results.json").read_text())
        if run.folds:  # a cross-validated run: complete fold runs and their aggregate
            assert results["cross_validation"]["folds"] == 2 and results["cross_validation"]["mean"]
            assert all((folder / f"fold-{i}" / "report.html").exists() for i in range(2))
            continue
        assert results.get("clean_accuracy") is not None or results.get("test_loss") is not None
        if run.evaluate and recipe.base.get("task", "classification") == "classification":
            assert "robust" in results or "cross_domain" in results, run.name
    if recipe.compare:
        assert (out / "compare.html").exists() and (out / "compare.md").exists()
        if recipe.base.get("task") == "molecules" and any(r.folds for r in recipe.runs):
            assert "compare-deciles.png" in (out / "compare.md").read_text()
            assert (out / "compare-deciles.png").stat().st_size > 1000
