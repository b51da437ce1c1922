"""A lab defined outside ``src/`` (``tests/labs/toy_lab.py``) plugs in through the ``robustlab.labs``
entry-point group and runs the whole pipeline from a recipe: train, evaluate, explain, report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from robustlab.cli import main
from robustlab.core.checkpoint import load_checkpoint
from robustlab.core.io import read_jsonl
from robustlab.labs import LABS

SRC = Path(__file__).resolve().parents[2] / "src"
RECIPE = {
    "name": "toy",
    "base": {"task": "toy-parity", "seed": 0, "device": "cpu",
             "data": {"examples": 400, "batch_size": 32, "eval_batch_size": 64},
             "model": {"hidden": 16, "length": 5}, "train": {"epochs": 6, "lr": 0.02}},
    "runs": [{"name": "parity"}],
}


def _cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def _recipe(tmp_path: Path, recipe: dict) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    return path


def test_src_never_names_the_toy_lab():
    hits = [p for p in SRC.rglob("*") if p.is_file() and p.suffix in (".py", ".html", ".yaml", ".toml")
            and ("toy-parity" in p.read_text(encoding="utf-8") or "toy_lab" in p.read_text(encoding="utf-8"))]
    assert hits == []


def test_labs_lists_the_plugin_with_its_schema(toy_plugin, capsys):
    assert "toy-parity" in LABS
    assert _cli("labs") == 0
    out = capsys.readouterr().out
    assert "toy-parity" in out and "model.hidden = 16" in out and "data.examples = 600" in out
    for builtin in ("classification", "vae", "cvae", "vqvae"):
        assert builtin in out


def test_datasets_lists_every_kind(toy_plugin, capsys):
    assert _cli("datasets") == 0
    lines = capsys.readouterr().out.splitlines()
    kinds = {line.split()[1] for line in lines[1:]}
    assert {"image", "tokens"} <= kinds
    assert any(line.split()[:2] == ["bit-parity", "tokens"] for line in lines)


def test_recipe_trains_evaluates_explains_and_reports_the_plugin(toy_plugin, tmp_path, capsys):
    out = tmp_path / "out"
    assert _cli("run", str(_recipe(tmp_path, RECIPE)), "--out", str(out)) == 0
    assert "parity: test perplexity" in capsys.readouterr().out  # the lab's own summary line
    run = out / "parity"
    res = json.loads((run / "results.json").read_text())
    assert res["task"] == "toy-parity" and 0.5 < res["test_roc_auc"] <= 1.0  # the split-level metric
    assert res["test_perplexity"] == pytest.approx(float(torch.tensor(res["test_loss"]).exp()), rel=1e-6)
    assert res["toy"]["positions"] == 5 and res["figures"] == {"perplexity": "figures/perplexity.png"}
    assert (run / "figures" / "perplexity.png").is_file()
    html = (run / "report.html").read_text(encoding="utf-8")
    assert "Bit-flip audit" in html and "test perplexity" in html
    assert "robust" not in html.lower().replace("robustlab", "")  # no classification words for this lab

    # perplexity falls: best.pt is the epoch with the LOWEST validation perplexity (not the highest)
    rows = read_jsonl(run / "metrics.jsonl")
    ppl = [r["val_perplexity"] for r in rows]
    lowest, highest = 1 + ppl.index(min(ppl)), 1 + ppl.index(max(ppl))
    assert lowest != highest  # the test could tell the two directions apart
    assert load_checkpoint(run / "checkpoints" / "best.pt")["epoch"] == lowest
    assert res["training"]["best_epoch"] == lowest
    assert all("val_roc_auc" in r for r in rows)


@pytest.mark.parametrize(("task", "typo"), [
    ("toy-parity", {"model": {"hiden": 8}}),
    ("classification", {"model": {"name": "small_cnn", "batchnorn": False}}),
    ("classification", {"defense": {"name": "pgd-at", "params": {"epz": 0.1}}}),
    ("vae", {"model": {"options": {"latent_dims": 2}}}),
    ("vqvae", {"model": {"options": {"codebook_size": 0}}}),
])
def test_a_typo_in_the_last_run_fails_before_the_first_trains(toy_plugin, tmp_path, capsys, task, typo):
    base = {"toy-parity": RECIPE["base"],
            "classification": {"data": {"dataset": "digits"}, "device": "cpu", "train": {"epochs": 1}},
            "vae": {"task": "vae", "data": {"dataset": "digits"}, "train": {"epochs": 1}},
            "vqvae": {"task": "vqvae", "data": {"dataset": "digits"}, "train": {"epochs": 1}}}[task]
    recipe = {"name": "typo", "base": base, "runs": [{"name": "first"}, {"name": "last", "config": typo}]}
    out = tmp_path / "out"
    assert _cli("run", str(_recipe(tmp_path, recipe)), "--out", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run last" in err[0] and "Traceback" not in err[0]
    assert not out.exists()  # nothing trained, nothing written


def test_split_level_metric_is_exact_across_two_processes(toy_plugin, tmp_path):
    """ROC-AUC gathers every rank's rows: two processes (torchrun) give the one-process number exactly
    (one example per forward pass, so scores are bit-identical whichever rank computes them)."""
    from robustlab.config import parse_config
    from robustlab.experiment import train_experiment

    raw = {"task": "toy-parity", "seed": 3, "device": "cpu", "train": {"epochs": 0},
           "data": {"examples": 203, "eval_batch_size": 1}}
    one = train_experiment(parse_config(raw), tmp_path / "one").results()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ROBUSTLAB_QUIET": "1"}
    args = ["train", "--task", "toy-parity", "--epochs", "0", "--seed", "3", "--device", "cpu", "--quiet",
            "--set", "data.examples=203", "--set", "data.eval_batch_size=1", "--nproc", "2"]
    proc = subprocess.run([sys.executable, "-m", "robustlab", *args, "--out", str(tmp_path / "two")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert one["test_roc_auc"] == two["test_roc_auc"]
    assert one["test_pr_auc"] == two["test_pr_auc"]
    assert one["test_loss"] == pytest.approx(two["test_loss"], rel=1e-6)  # float32 sums in another order
