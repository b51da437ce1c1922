"""Defenses from the command line, end to end on digits: fgsm-rs, circle, a frozen-backbone fine-tune,
and adversarial fine-tuning (pgd-at + init_from) in code."""

from __future__ import annotations

import json

import pytest
import yaml

from robustlab.cli import main
from robustlab.config import parse_config
from robustlab.core.errors import RobustlabError
from robustlab.experiment import train_experiment
from robustlab.labs.classification.transfer import fine_tune_config

SMALL = ["--dataset", "digits", "--model", "small_cnn", "--epochs", "1", "--set", "model.options.width=8",
         "--train-subset", "400"]


def run_cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.fixture(scope="module")
def fgsm_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "fgsm"
    code = run_cli(["train", *SMALL, "--defense", "fgsm-rs", "--eps", "0.1", "--out", str(out)])
    assert code == 0
    return out


@pytest.mark.slow
def test_cli_fgsm_rs_records_the_defense(fgsm_run):
    cfg = yaml.safe_load((fgsm_run / "config.yaml").read_text())
    assert cfg["defense"] == {"name": "fgsm-rs", "params": {"eps": 0.1}}
    results = json.loads((fgsm_run / "results.json").read_text())
    assert results["defense"]["name"] == "fgsm-rs" and results["defense"]["alpha"] == pytest.approx(0.125)
    metrics = [json.loads(line) for line in (fgsm_run / "metrics.jsonl").read_text().splitlines()]
    assert "guard_pgd_accuracy" in metrics[0]
    assert (fgsm_run / "checkpoints" / "best.pt").exists()


@pytest.mark.slow
def test_cli_circle(tmp_path):
    code = run_cli(["train", *SMALL, "--defense", "circle", "--out", str(tmp_path / "circle")])
    assert code == 0
    cfg = yaml.safe_load((tmp_path / "circle" / "config.yaml").read_text())
    assert cfg["defense"]["name"] == "circle"
    metrics = json.loads((tmp_path / "circle" / "metrics.jsonl").read_text().splitlines()[0])
    assert "train_circle" in metrics and "train_ce" in metrics


@pytest.mark.slow
def test_cli_frozen_backbone_fine_tune(fgsm_run, tmp_path):
    ckpt = fgsm_run / "checkpoints" / "best.pt"
    code = run_cli(["train", "--dataset", "digits", "--model", "small_cnn", "--epochs", "1",
                    "--set", "model.options.width=8", "--init-from", str(ckpt), "--freeze-backbone",
                    "--train-subset", "200", "--out", str(tmp_path / "ft")])
    assert code == 0
    cfg = yaml.safe_load((tmp_path / "ft" / "config.yaml").read_text())
    assert cfg["train"]["freeze_backbone"] is True and cfg["train"]["init_from"] == str(ckpt)
    assert cfg["data"]["train_subset"] == 200


@pytest.mark.slow
def test_adversarial_fine_tuning_is_pgd_at_plus_init_from(fgsm_run, tmp_path):
    """Adversarial fine-tuning (Adam 1e-4, PGD with 4 steps) as a config."""
    base = parse_config({"name": "adv-ft", "data": {"dataset": "digits", "batch_size": 64},
                         "model": {"name": "small_cnn", "options": {"width": 8}},
                         "defense": {"name": "pgd-at", "params": {"eps": 0.1, "steps": 4}}})
    cfg = fine_tune_config(base, fgsm_run / "checkpoints" / "best.pt", freeze_backbone=False, n_images=300,
                           epochs=1, lr=1e-4, optimizer="adam")
    assert cfg.train.init_from and not cfg.train.freeze_backbone and cfg.data.train_subset == 300
    run = train_experiment(cfg, tmp_path / "adv-ft")
    assert run.results()["defense"] == {"name": "pgd-at", "eps": 0.1, "alpha": pytest.approx(0.0625), "steps": 4,
                                        "norm": "linf", "attack": "pgd", "attack_params": {}}


def test_fine_tune_config_checks(tmp_path):
    base = parse_config({"data": {"dataset": "digits"}})
    with pytest.raises(RobustlabError, match="is not a file"):
        fine_tune_config(base, tmp_path / "missing.pt")
    (tmp_path / "w.pt").write_bytes(b"")
    with pytest.raises(RobustlabError, match="n_images must be an integer >= 1"):
        fine_tune_config(base, tmp_path / "w.pt", n_images=0)
    cfg = fine_tune_config(base, tmp_path / "w.pt")
    assert cfg.train.freeze_backbone and cfg.data.train_subset == 1000 and cfg.name == "run-finetune"
