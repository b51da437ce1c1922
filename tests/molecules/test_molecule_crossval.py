"""Cross-validation as a recipe stage: every fold a complete run folder, the parent's aggregate equal
to the mean of the folds' own numbers, and a resumed recipe re-running only the unfinished fold."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

import yaml

from robustlab.cli import main
from robustlab.recipe import DONE_MARK

RECIPE = {
    "name": "cv-test", "description": "two-fold smoke CV of the molecule lab",
    "base": {"task": "molecules", "model": {"name": "lstm"}, "evaluate": {"attributions": 0}},
    "runs": [{"name": "lstm", "folds": 3}],
}


def _run(path, out, *extra):
    try:
        main(["run", str(path), "--smoke", "--out", str(out), "--quiet", *extra])
    except SystemExit as e:
        assert e.code in (0, None), f"exit {e.code}"


def test_folds_aggregate_and_resume(tmp_path):
    path = tmp_path / "cv.yaml"
    path.write_text(yaml.safe_dump(RECIPE), encoding="utf-8")
    out = tmp_path / "out"
    _run(path, out)
    parent = out / "lstm"
    folds = [json.loads((parent / f"fold-{i}" / "results.json").read_text()) for i in range(2)]  # smoke: 2 folds
    doc = json.loads((parent / "results.json").read_text())["cross_validation"]
    aucs = [f["molecules"]["canonical"]["roc_auc"] for f in folds]
    assert doc["folds"] == 2 and doc["values"]["molecules.canonical.roc_auc"] == aucs
    assert doc["mean"]["molecules.canonical.roc_auc"] == statistics.fmean(aucs)
    tests = [set(json.loads((parent / f"fold-{i}" / "predictions.json").read_text())["index"]) for i in range(2)]
    assert not tests[0] & tests[1] and doc["pooled"]["molecules"] == len(tests[0] | tests[1])
    assert (parent / "report.html").exists() and "Cross-validation: 2 folds" in (parent / "report.html").read_text()

    kept = (parent / "fold-0" / "results.json").stat().st_mtime_ns
    (parent / "fold-1" / DONE_MARK).unlink()
    (parent / DONE_MARK).unlink()
    _run(path, out, "--resume")
    assert (parent / "fold-0" / "results.json").stat().st_mtime_ns == kept  # finished fold not re-run
    assert (parent / "fold-1" / DONE_MARK).exists() and (parent / DONE_MARK).exists()


def _numbers(doc: dict) -> dict:
    """A fold's test numbers and audit (its timings left out)."""
    return {"molecules": doc["molecules"], **{k: v for k, v in doc.items() if k.startswith("test_")}}


def test_two_ranks_deal_the_folds_and_match_one_process(tmp_path):
    """`robustlab run --nproc 2`: each fold trains in one process on whichever rank is free; every
    fold's numbers equal the one-process run's, both ranks took folds, no claim is left behind."""
    recipe = {**RECIPE, "runs": [{"name": "lstm", "folds": 3}, {"name": "mlp", "folds": 3,
                                                                  "config": {"model": {"name": "onehot_mlp"}}}]}
    path = tmp_path / "cv.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    _run(path, tmp_path / "one")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ROBUSTLAB_QUIET": "0"}
    proc = subprocess.run([sys.executable, "-m", "robustlab", "--threads", "1", "run", str(path), "--smoke",
                           "--out", str(tmp_path / "two"), "--nproc", "2"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "on rank 0" in proc.stderr and "on rank 1" in proc.stderr
    for run in ("lstm", "mlp"):
        for i in range(2):
            one, two = (json.loads((tmp_path / d / run / f"fold-{i}" / "results.json").read_text())
                        for d in ("one", "two"))
            assert _numbers(two) == _numbers(one)
        parent = json.loads((tmp_path / "two" / run / "results.json").read_text())["cross_validation"]
        assert parent["folds"] == 2
        assert not list((tmp_path / "two" / run).glob(".claim-*"))
