"""The CLI end to end, in process (robustlab.cli.main) and once through the installed entry point."""

import json
import subprocess
import sys

import pytest

from robustlab.cli import main


def run_cli(args, capsys):
    code = 0
    try:
        main(args)
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_listings_name_everything(capsys):
    code, out, _ = run_cli(["datasets"], capsys)
    assert code == 0
    for name in ["cifar10", "cifar100", "svhn", "mnist", "fashion-mnist", "flowers102", "digits", "imagefolder"]:
        assert f"\n{name} " in "\n" + out
    code, out, _ = run_cli(["models"], capsys)
    for name in ["small_cnn", "resnet18_cifar", "resnet18", "vit"]:
        assert f"\n{name} " in "\n" + out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--dataset", "nope"], "unknown dataset 'nope'; choose one of: cifar10, cifar100"),
        (["train", "--model", "nope", "--dataset", "digits"], "unknown model 'nope'; choose one of: resnet18"),
        (["train", "--dataset", "digits", "--set", "train.lrr=1"], "unknown key 'train.lrr'"),
        (["train", "--dataset", "digits", "--epochs", "-2"], "train.epochs"),
        (["train", "--no-such-flag"], "No such option"),
        (["evaluate", "/nonexistent/run"], "is not a run folder"),
        (["run", "/nonexistent.yaml"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, needle, capsys, tmp_path):
    code, out, err = run_cli(args, capsys)
    assert code == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_bad_yaml_and_unknown_key(tmp_path, capsys):
    (tmp_path / "bad.yaml").write_text("train: {epochs: 1\n")
    code, _, err = run_cli(["train", "--config", str(tmp_path / "bad.yaml")], capsys)
    assert code == 2 and "malformed YAML at line" in err
    (tmp_path / "typo.yaml").write_text("data:\n  datset: digits\n")
    code, _, err = run_cli(["train", "--config", str(tmp_path / "typo.yaml")], capsys)
    assert code == 2 and "unknown key 'data.datset'" in err


def test_debug_shows_the_traceback(capsys):
    with pytest.raises(Exception, match="unknown dataset"):
        main(["train", "--dataset", "nope", "--debug"])


def test_train_digits_one_epoch_end_to_end(tmp_path):
    """The real entry point in a subprocess: one epoch on digits writes a complete run folder."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "robustlab", "train", "--dataset", "digits", "--model", "small_cnn",
         "--epochs", "1", "--seed", "1", "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ["config.yaml", "metrics.jsonl", "results.json", "checkpoints/best.pt", "checkpoints/last.pt"]:
        assert (out / name).exists(), name
    res = json.loads((out / "results.json").read_text())
    assert 0.0 <= res["clean_accuracy"] <= 1.0
    assert f"clean {res['clean_accuracy']:.4f}" in proc.stdout  # the lab's summary line
    # a second run into the same folder is refused, not overwritten
    again = subprocess.run(
        [sys.executable, "-m", "robustlab", "train", "--dataset", "digits", "--epochs", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 2 and "already exists" in again.stderr
    # evaluate a chosen checkpoint; a bad choice is a one-line error
    ev = subprocess.run(
        [sys.executable, "-m", "robustlab", "evaluate", str(out), "--checkpoint", "last", "--attacks", "fgsm",
         "--eps", "0.1", "--n-samples", "64", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert ev.returncode == 0, ev.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["evaluated_checkpoint"] == "last" and res["n_samples"] == 64 and res["eval_processes"] == 1
    assert (out / "per_sample.safetensors").is_file()
    bad = subprocess.run([sys.executable, "-m", "robustlab", "evaluate", str(out), "--checkpoint", "first"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--checkpoint must be best or last" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_every_sanity_flag_is_documented():
    from pathlib import Path

    from robustlab.evaluation.flags import FLAG_DOCS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "sanity-flags.md").read_text()
    for code, entry in FLAG_DOCS.items():
        assert f"`{code}`" in doc and entry["remedy"] and entry["remedy"][:40] in doc


def test_unusable_amp_fails_before_anything_is_written(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = run_cli(["train", "--dataset", "digits", "--device", "cpu", "--amp", "fp16", "--out", str(out)],
                           capsys)
    assert code == 2 and err.strip() == "robustlab: error: --amp fp16 needs a CUDA GPU; use --amp bf16 on CPU"
    assert not out.exists()
