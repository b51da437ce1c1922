"""Cross-validation as a recipe stage: every fold a complete run folder, the parent's aggregate equal
to the mean of the folds' own numbers, and a resumed recipe re-running only the unfinished fold."""

from __future__ import annotations

import json
import statistics

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
