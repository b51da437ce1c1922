"""End to end: the generative recipes under ``--smoke`` write every figure (the GIF included), and
:func:`study_recipe` tabulates a small grid. Small enough to run in ``make test``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustlab.cli import main

RECIPES = Path(__file__).resolve().parents[2] / "recipes"

VAE_FIGURES = ["loss_curves.png", "reconstructions.png", "prior_samples.png", "latent_scatter.png",
               "latent_manifold.png"]
CVAE_FIGURES = ["loss_curves.png", "reconstructions.png", "class_samples.png", "latent_scatter.png",
                "latent_manifold.png"]
VQ_FIGURES = ["loss_curves.png", "reconstructions.png", "codebook_plane.png", "code_usage.png", "codebook.gif"]


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def _check_figures(run: Path, names: list[str]) -> dict:
    res = json.loads((run / "results.json").read_text())
    for name in names:
        assert (run / "figures" / name).is_file(), f"{run.name}: {name} missing"
        assert f"figures/{name}" in res["figures"].values(), f"{run.name}: {name} not in results figures"
    assert (run / "report.html").is_file()
    return res


@pytest.mark.slow
def test_vae_cvae_mnist_recipe_smoke(tmp_path):
    out = tmp_path / "vae"
    assert _run(["run", str(RECIPES / "vae-cvae-mnist.yaml"), "--smoke", "--out", str(out), "--quiet"]) == 0
    vae = _check_figures(out / "vae", VAE_FIGURES)
    cvae = _check_figures(out / "cvae", CVAE_FIGURES)
    assert isinstance(vae["generative"]["elbo_nats"], float)
    assert 0 <= cvae["generative"]["label_following"]["accuracy"] <= 1
    assert (out / "compare.html").is_file()


@pytest.mark.slow
def test_vqvae_mnist_recipe_smoke(tmp_path):
    out = tmp_path / "vq"
    assert _run(["run", str(RECIPES / "vqvae-mnist.yaml"), "--smoke", "--out", str(out), "--quiet"]) == 0
    main_run = _check_figures(out / "k3-d2", [*VQ_FIGURES, "study.png"])
    _check_figures(out / "colour-k3-d2", VQ_FIGURES)
    gif = (out / "k3-d2" / "figures" / "codebook.gif").read_bytes()
    assert gif[:6] in (b"GIF87a", b"GIF89a")
    rows = main_run["study"]["rows"]
    assert {(r["K"], r["D"]) for r in rows} == {(3, 2), (10, 2), (50, 2), (3, 10), (3, 50)}
    assert all(r["recon_mse"] >= 0 and 1 <= r["used_codes"] <= r["K"] for r in rows)
    assert 1.0 <= main_run["generative"]["perplexity"] <= 3.0
    assert "study" not in json.loads((out / "colour-k3-d2" / "results.json").read_text())


def test_vq_study_tabulates_the_grid(tmp_path):
    from robustlab.config import parse_config
    from robustlab.labs.generative import study_recipe
    from robustlab.recipe import Recipe, run_recipe

    base = {
        "seed": 0, "device": "cpu", "task": "vqvae",
        "data": {"dataset": "digits", "val_fraction": 0.2, "batch_size": 64},
        "model": {"name": "conv_vqvae", "options": {"channels": [4], "codebook_size": 3, "code_dim": 2}},
        "train": {"epochs": 1, "monitor": "val_loss"},
    }
    raw = study_recipe(base, ks=[3, 4], ds=[2, 3])
    assert [r["name"] for r in raw["runs"]] == ["k4-d2", "k3-d3", "k3-d2"]  # the base point last
    summary = run_recipe(parse_config(raw, model=Recipe), tmp_path / "study", smoke=True)
    rows = summary["k3-d2"]["study"]["rows"]  # the last run's evaluation tabulates the whole group
    assert [(r["run"], r["K"], r["D"]) for r in rows] == [("k3-d2", 3, 2), ("k3-d3", 3, 3), ("k4-d2", 4, 2)]
    assert all(isinstance(r["seconds"], float) and r["perplexity"] >= 1 for r in rows)
    assert (tmp_path / "study" / "k3-d2" / "figures" / "study.png").is_file()
