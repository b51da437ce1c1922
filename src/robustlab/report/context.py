"""Read a run folder and turn its files into the plain values the HTML templates show.

Nothing here raises on a missing or partial section: every function returns what it can (empty
lists, ``None``) so a report of a half-finished run still renders. Unreadable files become
report-level notes instead of exceptions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from robustlab.core.io import read_jsonl
from robustlab.report.format import MISSING, is_number, num

SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass
class RunData:
    """What a report needs from one run folder."""

    path: Path
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    results: dict[str, Any]
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The run's name: results.json ``name``, else config ``name``, else the folder name."""
        for v in (self.results.get("name"), self.config.get("name")):
            if isinstance(v, str) and v:
                return v
        return self.path.name

    @property
    def smoke(self) -> bool:
        """True when the run was made with ``--smoke`` (fabricated data)."""
        return bool(self.config.get("smoke") or self.results.get("smoke"))

    def section(self, key: str) -> dict[str, Any]:
        """``config[key]`` when it is a mapping, else ``{}``."""
        v = self.config.get(key)
        return v if isinstance(v, dict) else {}


def load_run(run_dir: str | Path) -> RunData:
    """Read ``config.yaml``, ``metrics.jsonl`` and ``results.json`` of ``run_dir``; unreadable or
    malformed files are recorded in ``problems`` and treated as empty."""
    path = Path(run_dir)
    problems: list[str] = []
    config: dict[str, Any] = {}
    results: dict[str, Any] = {}
    metrics: list[dict[str, Any]] = []
    cfg_path = path / "config.yaml"
    if cfg_path.exists():
        try:
            raw = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
            if isinstance(raw, dict):
                config = raw
            elif raw is not None:
                problems.append("config.yaml does not hold a mapping; the configuration is not shown")
        except (yaml.YAMLError, UnicodeDecodeError, OSError) as e:
            problems.append(f"config.yaml could not be read ({type(e).__name__}); the configuration is not shown")
    res_path = path / "results.json"
    if res_path.exists():
        try:
            raw = json.loads(res_path.read_text(encoding="utf-8"))
            if isinstance(raw, dict):
                results = raw
            else:
                problems.append("results.json does not hold an object; no results are shown")
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
            problems.append(f"results.json could not be read ({type(e).__name__}); no results are shown")
    try:
        metrics = [m for m in read_jsonl(path / "metrics.jsonl") if isinstance(m, dict)]
    except (UnicodeDecodeError, OSError) as e:
        problems.append(f"metrics.jsonl could not be read ({type(e).__name__}); no training curves")
    return RunData(path=path, config=config, metrics=metrics, results=results, problems=problems)


# -- flags ---------------------------------------------------------------------------------------
def normalise_severity(sev: Any) -> str:
    """Map free-form severities onto ``error`` / ``warning`` / ``info``."""
    s = str(sev or "").lower()
    if s in {"error", "critical", "high", "fatal", "severe"}:
        return "error"
    if s in {"warning", "warn", "medium", "moderate"}:
        return "warning"
    return "info"


def flags(run: RunData) -> list[dict[str, str]]:
    """The run's sanity flags (plus unreadable-file notes), most severe first, as plain strings."""
    out = []
    raw = run.results.get("flags")
    for f in raw if isinstance(raw, list) else []:
        if not isinstance(f, Mapping):
            continue
        out.append(
            {
                "severity": normalise_severity(f.get("severity")),
                "code": str(f.get("code") or ""),
                "message": str(f.get("message") or f.get("code") or "unnamed flag"),
                "remedy": str(f.get("remedy") or ""),
            }
        )
    for p in run.problems:
        out.append({"severity": "warning", "code": "unreadable_file", "message": p, "remedy": ""})
    out.sort(key=lambda f: SEVERITY_ORDER[f["severity"]])
    return out


# -- configuration -------------------------------------------------------------------------------
def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + kv_text(v) + "}"
    return str(v)


def kv_text(params: Mapping[str, Any]) -> str:
    """``"a=1, b=0.03137"``: parameters in one short line."""
    return ", ".join(f"{k}={_short(v)}" for k, v in params.items())


def dataset_name(run: RunData) -> str:
    """The run's dataset from results.json, else config.yaml."""
    return str(run.results.get("dataset") or run.section("data").get("dataset") or MISSING)


def config_rows(run: RunData, extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    """(label, value) pairs of the shared configuration (task, dataset, training, data loading, seed),
    with the lab's own rows ``extra`` after the dataset; only what is known is listed."""
    data, train = run.section("data"), run.section("train")
    training = run.results.get("training") if isinstance(run.results.get("training"), dict) else {}
    rows: list[tuple[str, str]] = []
    task = run.results.get("task") or run.config.get("task")
    if task and task != "classification":
        rows.append(("Task", str(task)))
    ds = dataset_name(run)
    extras = [f"{k}={data[k]}" for k in ("train_subset", "test_subset", "channels", "image_size") if data.get(k)]
    if is_number(run.results.get("test_size")):
        extras.append(f"{run.results['test_size']:,} test images")
    if ds != MISSING or extras:
        rows.append(("Dataset", ds + (f" ({', '.join(extras)})" if extras else "")))
    rows.extend(extra)
    if train or training:
        ep = []
        if train.get("max_steps"):
            ep.append(f"{train['max_steps']} steps planned")
        elif train.get("epochs") is not None:
            ep.append(f"{train['epochs']} planned")
        if training.get("epochs_run") is not None:
            ep.append(f"{training['epochs_run']} run")
        if training.get("best_epoch") is not None:
            ep.append(f"best epoch {training['best_epoch']}")
        if training.get("stopped_early"):
            ep.append("stopped early")
        if ep:
            rows.append(("Epochs", ", ".join(ep)))
    if train:
        opt = str(train.get("optimizer", MISSING))
        parts = [f"{opt}, lr {num(train.get('lr'))}"]
        if is_number(train.get("weight_decay")) and train["weight_decay"] > 0:
            parts.append(f"weight decay {num(train['weight_decay'])}")
        if train.get("schedule") and train.get("schedule") != "none":
            parts.append(f"schedule {train['schedule']}")
        if is_number(train.get("label_smoothing")) and train["label_smoothing"] > 0:
            parts.append(f"label smoothing {num(train['label_smoothing'])}")
        if train.get("patience"):
            parts.append(f"early stopping patience {train['patience']}")
        if is_number(train.get("accumulate")) and train["accumulate"] > 1:
            parts.append(f"gradient accumulation {train['accumulate']}")
        if isinstance(train.get("ema"), dict):
            parts.append(f"EMA decay {num(train['ema'].get('decay'))}")
        if train.get("amp") and train.get("amp") != "none":
            parts.append(f"AMP {train['amp']}")
        rows.append(("Optimizer", ", ".join(parts)))
    if data:
        parts = []
        if data.get("batch_size") is not None:
            parts.append(f"batch {data['batch_size']}")
        if data.get("augmentation") and data.get("augmentation") != "none":
            parts.append(f"augmentation {data['augmentation']}")
        if is_number(data.get("val_fraction")):
            parts.append(f"{100 * data['val_fraction']:.0f}% of train held out for validation")
        if parts:
            rows.append(("Data loading", ", ".join(parts)))
    return rows


def tail_rows(run: RunData) -> list[tuple[str, str]]:
    """The configuration rows that close the table: seed and the smoke-run warning."""
    rows = []
    if run.config.get("seed") is not None:
        rows.append(("Seed", str(run.config["seed"])))
    if run.smoke:
        rows.append(("Smoke run", "yes: fabricated data, numbers are meaningless"))
    return rows
