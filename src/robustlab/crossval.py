"""k-fold cross-validation as a stage of its own: ``k`` complete runs under one parent folder
(``<parent>/fold-0`` …, each resumable like any run) and their aggregate in the parent's
``results.json`` — mean, standard deviation and per-fold values of every number the folds report,
plus what the lab computes from the pooled out-of-fold predictions.

A lab takes part when its data config has ``folds`` and ``fold`` (the test fold of this run).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from robustlab.core.config import ExperimentConfig
from robustlab.core.errors import RobustlabError
from robustlab.core.io import read_json, write_json, write_yaml

SKIP = ("figures",)


def fold_dir(parent: Path, fold: int) -> Path:
    """The run folder of ``fold`` under a cross-validation parent."""
    return parent / f"fold-{fold}"


def fold_configs(cfg: ExperimentConfig, folds: int) -> list[ExperimentConfig]:
    """``cfg`` once per fold (``data.folds = folds``, ``data.fold = i``, name ``<name>-fold-i``);
    a one-line error when the lab's data config has no folds."""
    data = cfg.data
    if not {"folds", "fold"} <= set(type(data).model_fields):
        raise RobustlabError(f"lab {cfg.task} does not split its data into folds (its data config has no "
                             "folds/fold); cross-validation needs one that does")
    if folds < 2:
        raise RobustlabError(f"cross-validation needs at least 2 folds, got {folds}")
    return [cfg.model_copy(update={"name": f"{cfg.name}-fold-{i}",
                                   "data": data.model_copy(update={"folds": folds, "fold": i})}) for i in range(folds)]


def flatten(doc: Any, prefix: str = "") -> dict[str, float]:
    """Every finite number of a nested results document by dotted key (lists by index; booleans and
    the figure index left out)."""
    out: dict[str, float] = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            if not prefix and k in SKIP:
                continue
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.update(flatten(v, f"{prefix}{i}."))
    elif isinstance(doc, int | float) and not isinstance(doc, bool) and math.isfinite(doc):
        out[prefix[:-1]] = float(doc)
    return out


def aggregate(fold_results: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sample standard deviation (0 for one fold) and per-fold values of every number that all
    folds report."""
    flat = [flatten(r) for r in fold_results]
    common = [k for k in flat[0] if all(k in f for f in flat[1:])] if flat else []
    values = {k: [f[k] for f in flat] for k in common}
    return {"folds": len(fold_results),
            "mean": {k: statistics.fmean(v) for k, v in values.items()},
            "std": {k: statistics.stdev(v) if len(v) > 1 else 0.0 for k, v in values.items()},
            "values": values}


def write_parent(
    parent: Path, cfg: ExperimentConfig, folds: int, pooled: dict[str, Any], smoke: bool
) -> dict[str, Any]:
    """Aggregate the finished folds of ``parent`` into its config.yaml and results.json; return the results."""
    results = []
    for i in range(folds):
        path = fold_dir(parent, i) / "results.json"
        if not path.is_file():
            raise RobustlabError(f"cross-validation {parent}: fold {i} has no results.json yet; resume the recipe")
        results.append(read_json(path))
    resolved = cfg.resolved()
    resolved["smoke"] = smoke
    resolved["data"].pop("fold", None)
    write_yaml(parent / "config.yaml", resolved)
    doc = {"name": cfg.name, "task": cfg.task,
           "cross_validation": {**aggregate(results), "runs": [f"fold-{i}" for i in range(folds)], "pooled": pooled}}
    write_json(parent / "results.json", doc)
    return doc
