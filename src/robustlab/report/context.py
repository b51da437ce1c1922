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
from robustlab.report.format import MISSING, eps_label, is_number, norm_label, num, pct, seconds

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


# -- defense / config ----------------------------------------------------------------------------
def defense_of(run: RunData) -> tuple[str, dict[str, Any]]:
    """``(name, params)`` of the run's defense from results.json, else config.yaml; ``("none", {})``."""
    d = run.results.get("defense")
    if isinstance(d, Mapping) and d.get("name"):
        return str(d["name"]), {k: v for k, v in d.items() if k != "name"}
    if isinstance(d, str) and d:
        return d, {}
    cd = run.section("defense")
    params = cd.get("params") if isinstance(cd.get("params"), dict) else {}
    return str(cd.get("name") or "none"), dict(params)


def _kv(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in params.items())


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_short(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + _kv(v) + "}"
    return str(v)


def defense_label(run: RunData) -> str:
    """``"pgd_at (eps=0.03137, steps=4)"`` or ``"none"``."""
    name, params = defense_of(run)
    params = {k: v for k, v in params.items() if v is not None and v != {} and v != []}
    return f"{name} ({_kv(params)})" if params else name


def dataset_name(run: RunData) -> str:
    return str(run.results.get("dataset") or run.section("data").get("dataset") or MISSING)


def model_name(run: RunData) -> str:
    return str(run.results.get("model") or run.section("model").get("name") or MISSING)


def config_rows(run: RunData) -> list[tuple[str, str]]:
    """(label, value) pairs summarising how the run was made; only what is known is listed."""
    data, model, train, ev = (
        run.section("data"),
        run.section("model"),
        run.section("train"),
        run.section("evaluate"),
    )
    training = run.results.get("training") if isinstance(run.results.get("training"), dict) else {}
    rows: list[tuple[str, str]] = []
    ds = dataset_name(run)
    extras = [f"{k}={data[k]}" for k in ("train_subset", "test_subset", "channels", "image_size") if data.get(k)]
    if is_number(run.results.get("test_size")):
        extras.append(f"{run.results['test_size']:,} test images")
    if ds != MISSING or extras:
        rows.append(("Dataset", ds + (f" ({', '.join(extras)})" if extras else "")))
    m = model_name(run)
    opts = model.get("options") if isinstance(model.get("options"), dict) else {}
    mext = [_kv(opts)] if opts else []
    if model.get("pretrained"):
        mext.append(f"pretrained from {model['pretrained']}")
    if model.get("batchnorm") is False:
        mext.append("no batch-norm")
    if m != MISSING or mext:
        rows.append(("Model", m + (f" ({'; '.join(mext)})" if mext else "")))
    rows.append(("Defense", defense_label(run)))
    if train or training:
        ep = []
        if train.get("epochs") is not None:
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
    if ev:
        norm = str(ev.get("norm") or "linf")
        eps = ev.get("eps") if isinstance(ev.get("eps"), list) else []
        parts = [
            "attacks " + ", ".join(map(str, ev.get("attacks") or [])),
            f"{norm_label(norm)} eps " + ", ".join(eps_label(e, norm) for e in eps),
        ]
        if ev.get("steps") is not None:
            parts.append(f"{ev['steps']} steps")
        if ev.get("restarts") and ev["restarts"] > 1:
            parts.append(f"{ev['restarts']} restarts")
        if ev.get("n_samples"):
            parts.append(f"first {ev['n_samples']} test images")
        rows.append(("Evaluation", "; ".join(parts)))
    task = run.results.get("task") or run.config.get("task")
    if task and task != "classification":
        rows.insert(0, ("Task", str(task)))
    if run.config.get("seed") is not None:
        rows.append(("Seed", str(run.config["seed"])))
    if run.smoke:
        rows.append(("Smoke run", "yes: fabricated data, numbers are meaningless"))
    return rows


# -- robustness numbers ----------------------------------------------------------------------------
def robust_rows(run: RunData) -> list[dict[str, Any]]:
    """results' ``robust`` entries that carry an eps and an accuracy."""
    raw = run.results.get("robust")
    return [
        r
        for r in (raw if isinstance(raw, list) else [])
        if isinstance(r, Mapping) and is_number(r.get("eps")) and is_number(r.get("accuracy"))
    ]


def eps_key(eps: float) -> float:
    """eps rounded so that budgets computed in different ways (8/255 vs 0.0313725...) match."""
    return round(float(eps), 8)


def worst_case(run: RunData) -> dict[tuple[str, float], tuple[float, bool]]:
    """``{(norm, eps): (accuracy, exact)}``: the per-sample worst case from results' ``worst_case``
    (``exact=True``), else the lowest single-attack accuracy at that eps (an upper bound, ``False``)."""
    rows = robust_rows(run)
    norms_by_eps: dict[float, set[str]] = {}
    for r in rows:
        norms_by_eps.setdefault(eps_key(r["eps"]), set()).add(str(r.get("norm") or "linf"))
    out: dict[tuple[str, float], tuple[float, bool]] = {}
    raw = run.results.get("worst_case")
    for w in raw if isinstance(raw, list) else []:
        if isinstance(w, Mapping) and is_number(w.get("eps")) and is_number(w.get("accuracy")):
            norm = w.get("norm") or next(iter(sorted(norms_by_eps.get(eps_key(w["eps"]), {"linf"}))))
            out[(str(norm), eps_key(w["eps"]))] = (float(w["accuracy"]), True)
    for r in rows:
        k = (str(r.get("norm") or "linf"), eps_key(r["eps"]))
        if k in out and out[k][1]:
            continue
        acc = float(r["accuracy"])
        if k not in out or acc < out[k][0]:
            out[k] = (acc, False)
    return out


def attack_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Attack names in first-seen order."""
    seen: dict[str, None] = {}
    for r in rows:
        seen.setdefault(str(r.get("attack", "?")), None)
    return list(seen)


def attack_table(run: RunData) -> dict[str, Any] | None:
    """Report 001's table: one row per (norm, eps), columns clean / each attack / worst case, as
    percentages. ``None`` when the run has no robust accuracy."""
    rows = robust_rows(run)
    if not rows:
        return None
    attacks = attack_names(rows)
    wc = worst_case(run)
    budgets: dict[tuple[str, float], dict[str, Any]] = {}
    for r in rows:
        norm = str(r.get("norm") or "linf")
        b = budgets.setdefault((norm, eps_key(r["eps"])), {"eps": r["eps"], "eps_255": r.get("eps_255"), "acc": {}})
        b["acc"][str(r.get("attack", "?"))] = r["accuracy"]
    table_rows = []
    approx = False
    for (norm, e), b in sorted(budgets.items()):
        w = wc.get((norm, e))
        approx |= w is not None and not w[1]
        table_rows.append(
            {
                "norm": norm_label(norm),
                "eps": eps_label(b["eps"], norm, b["eps_255"]),
                "clean": pct(run.results.get("clean_accuracy")),
                "cells": [pct(b["acc"].get(a)) for a in attacks],
                "worst": (pct(w[0]) + ("*" if not w[1] else "")) if w else MISSING,
            }
        )
    return {"attacks": attacks, "rows": table_rows, "approx_worst": approx}


def attack_details(run: RunData) -> list[dict[str, str]]:
    """One row per attack × eps with success rate, perturbation norms and time."""
    out = []
    for r in robust_rows(run):
        norm = str(r.get("norm") or "linf")
        out.append(
            {
                "attack": str(r.get("attack", "?")),
                "norm": norm_label(norm),
                "eps": eps_label(r["eps"], norm, r.get("eps_255")),
                "accuracy": pct(r.get("accuracy")),
                "success_rate": pct(r.get("success_rate")),
                "mean_norm": num(r.get("mean_norm")),
                "median_norm": num(r.get("median_norm")),
                "seconds": seconds(r.get("seconds")),
            }
        )
    return out


def key_numbers(run: RunData) -> list[dict[str, str]]:
    """Headline cards: clean accuracy and worst-case robust accuracy per eps."""
    res = run.results
    cards = []
    if is_number(res.get("clean_accuracy")):
        sub = f"on {res['test_size']:,} test images" if is_number(res.get("test_size")) else "test set"
        if is_number(res.get("test_loss")):
            sub += f", loss {num(res['test_loss'])}"
        cards.append({"label": "clean accuracy", "value": pct(res["clean_accuracy"]), "sub": sub})
    for (norm, eps), (acc, exact) in sorted(worst_case(run).items()):
        label = "worst-case robust accuracy" if exact else "lowest robust accuracy (single attack)"
        sub = f"{norm_label(norm)} eps {eps_label(eps, norm)}"
        if is_number(res.get("n_samples")):
            sub += f", {res['n_samples']:,} images"
        cards.append({"label": label, "value": pct(acc), "sub": sub})
    return cards


def verdict(run: RunData) -> str:
    """One line: what was trained, how accurate and how robust it is, and whether flags need attention."""
    res = run.results
    model, data, defense = model_name(run), dataset_name(run), defense_of(run)[0]
    subject = " on ".join(v for v in (model, data) if v != MISSING) or "This run"
    subject += ", no defense" if defense.lower() in {"none", ""} else f", defense {defense}"
    parts = [subject]
    if is_number(res.get("clean_accuracy")):
        parts.append(f"{pct(res['clean_accuracy'])} clean accuracy")
    wc = worst_case(run)
    if wc:
        (norm, eps), (acc, exact) = max(wc.items(), key=lambda kv: kv[0][1])
        word = "worst-case robust" if exact else "robust (strongest single attack)"
        parts.append(f"{pct(acc)} {word} at {norm_label(norm)} eps {eps_label(eps, norm)}")
    elif res:
        parts.append("no robustness evaluation yet")
    text = parts[0] + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "")
    fl = flags(run)
    serious = [f for f in fl if f["severity"] in ("error", "warning")]
    if serious:
        plural = "s" if len(serious) > 1 else ""
        text += f". {len(serious)} sanity flag{plural}: read them before trusting these numbers."
    else:
        text += "."
    if run.smoke:
        text = "Smoke run on fabricated data (numbers are meaningless). " + text
    return text
