"""The smaller sections of a run's report: per-class, superclass, minimal perturbation,
cross-domain, attacks alone, noise, evaluation cost, and whatever else results.json holds.

Like :mod:`robustlab.report.context`, nothing here raises on a missing or malformed section.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from robustlab.report.context import RunData
from robustlab.report.format import MISSING, eps_label, is_number, norm_label, num, pct, seconds


# -- smaller tables ------------------------------------------------------------------------------
def per_class_rows(run: RunData) -> list[dict[str, str]]:
    """Per-class clean and robust accuracy (and image count when recorded)."""
    pc = run.results.get("per_class")
    if not isinstance(pc, Mapping):
        return []
    return [
        {"name": str(k), "clean": pct(v.get("clean")), "robust": pct(v.get("robust")), "n": num(v.get("n"))}
        for k, v in pc.items()
        if isinstance(v, Mapping)
    ]


def superclass(run: RunData) -> dict[str, Any] | None:
    """Superclass accuracy (CIFAR-100's 20 coarse labels), or ``None``."""
    sc = run.results.get("superclass")
    if not isinstance(sc, Mapping):
        return None
    per = sc.get("per_superclass") if isinstance(sc.get("per_superclass"), Mapping) else {}
    return {
        "clean": pct(sc.get("clean_accuracy")),
        "robust": pct(sc.get("robust_accuracy")),
        "rows": [
            {"name": str(k), "clean": pct(v.get("clean")), "robust": pct(v.get("robust")), "n": num(v.get("n"))}
            for k, v in per.items()
            if isinstance(v, Mapping)
        ],
    }


def _quantile_label(q: str) -> str:
    try:
        return f"{100 * float(q):g}th pct."
    except ValueError:
        return q


def min_perturbation(run: RunData) -> dict[str, Any] | None:
    """The smallest successful perturbation per minimal-perturbation attack: norm, share found,
    mean, median and quantiles (``quantiles: {"0.1": v, ...}`` or legacy ``q25``/``q75``)."""
    mp = run.results.get("min_perturbation")
    if not isinstance(mp, Mapping) or not mp:
        return None
    qkeys: dict[str, None] = {}
    for v in mp.values():
        if isinstance(v, Mapping) and isinstance(v.get("quantiles"), Mapping):
            for q in v["quantiles"]:
                qkeys.setdefault(str(q), None)
    legacy = [k for k in ("q25", "q75") if any(isinstance(v, Mapping) and k in v for v in mp.values())]
    quantiles = sorted(qkeys, key=lambda q: float(q) if is_number(_to_float(q)) else 0.0)
    rows = []
    for k, v in mp.items():
        if not isinstance(v, Mapping):
            continue
        qs = v.get("quantiles") if isinstance(v.get("quantiles"), Mapping) else {}
        rows.append(
            {
                "attack": str(k),
                "norm": norm_label(v["norm"]) if v.get("norm") else MISSING,
                "found": pct(v.get("found")),
                "mean": num(v.get("mean")),
                "median": num(v.get("median")),
                "quantiles": [num(qs.get(q)) for q in quantiles] + [num(v.get(q)) for q in legacy],
            }
        )
    headers = [_quantile_label(q) for q in quantiles] + [{"q25": "25th pct.", "q75": "75th pct."}[q] for q in legacy]
    return {"rows": rows, "quantile_headers": headers}


def _to_float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def cross_domain(run: RunData) -> list[dict[str, str]]:
    """Accuracy on other datasets (the source dataset first when recorded with ``role``)."""
    cd = run.results.get("cross_domain")
    if not isinstance(cd, list):
        return []
    return [
        {"dataset": str(r.get("dataset", "?")), "role": str(r.get("role") or ""), "accuracy": pct(r.get("accuracy"))}
        for r in cd
        if isinstance(r, Mapping)
    ]


def standalone(run: RunData) -> dict[str, Any] | None:
    """How each attack does alone on the sanity sample (``sanity.standalone``), or ``None``."""
    san = run.results.get("sanity")
    rows = san.get("standalone") if isinstance(san, Mapping) else None
    if not isinstance(rows, list) or not rows:
        return None
    out = []
    for r in rows:
        if not isinstance(r, Mapping):
            continue
        norm = str(r.get("norm") or "linf")
        out.append(
            {
                "attack": str(r.get("attack", "?")),
                "norm": norm_label(norm),
                "eps": eps_label(r.get("eps"), norm),
                "accuracy": pct(r.get("accuracy")),
            }
        )
    return {"samples": num(san.get("samples")), "rows": out} if out else None


def noise_rows(run: RunData) -> list[dict[str, str]]:
    nz = run.results.get("noise")
    if not isinstance(nz, list):
        return []
    return [{"sigma": num(r.get("sigma")), "accuracy": pct(r.get("accuracy"))} for r in nz if isinstance(r, Mapping)]


def evaluation_cost(run: RunData) -> list[tuple[str, str]]:
    """Early-exit statistics, evaluation and training time as (label, value) pairs."""
    res = run.results
    rows: list[tuple[str, str]] = []
    ee = res.get("early_exit")
    if isinstance(ee, Mapping):
        attacked, skipped = ee.get("attacked_points"), ee.get("skipped_points")
        rows.append(("Early exit", "on" if ee.get("enabled") else "off"))
        if is_number(attacked) and is_number(skipped):
            total = attacked + skipped
            share = f" ({pct(skipped / total)} of attack work saved)" if total > 0 else ""
            rows.append(("Points attacked / skipped", f"{int(attacked):,} / {int(skipped):,}{share}"))
    if is_number(res.get("n_samples")):
        rows.append(("Images attacked", f"{int(res['n_samples']):,}"))
    if is_number(res.get("eval_seconds")):
        rows.append(("Evaluation time", seconds(res["eval_seconds"])))
    training = res.get("training")
    if isinstance(training, Mapping) and is_number(training.get("seconds")):
        rows.append(("Training time", seconds(training["seconds"])))
    return rows


# -- anything else in results.json ----------------------------------------------------------------
KNOWN_KEYS = {
    "name", "dataset", "model", "defense", "clean_accuracy", "test_size", "training", "n_samples", "robust",
    "worst_case", "noise", "per_class", "superclass", "confusion", "min_perturbation", "flags", "eval_seconds",
    "early_exit", "cross_domain", "figures", "norm", "attacks", "eps", "sanity", "sanity_seconds",
    "evaluate_config", "smoke", "class_names", "task", "test_loss",
}  # fmt: skip
_MAX_LIST = 12


def _value(key: str, v: Any) -> str:
    """A value of an unknown section: accuracies as %, numbers short, short lists inline."""
    if isinstance(v, bool) or v is None:
        return MISSING if v is None else ("yes" if v else "no")
    if is_number(v):
        return pct(v) if "accuracy" in key.lower() and 0 <= v <= 1 else num(v)
    if isinstance(v, list):
        if len(v) <= _MAX_LIST and all(not isinstance(x, dict | list) for x in v):
            return ", ".join(_value(key, x) for x in v)
        return f"[{len(v)} values]"
    if isinstance(v, dict):
        return f"{{{len(v)} entries}}"
    return str(v)


def _kv_rows(d: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping) and not prefix:
            rows += _kv_rows(v, prefix=f"{key}.")
        else:
            rows.append((key, _value(str(k), v)))
    return rows


def _table(rows: list[Any], columns: list[str] | None = None) -> dict[str, Any] | None:
    dict_rows = [r for r in rows if isinstance(r, Mapping)]
    if not dict_rows:
        return None
    if columns is None:
        seen: dict[str, None] = {}
        for r in dict_rows:
            for k in r:
                seen.setdefault(str(k), None)
        columns = list(seen)
    return {
        "columns": columns,
        "rows": [[_value(c, r.get(c)) for c in columns] for r in dict_rows],
        "numeric": [all(is_number(r.get(c)) or r.get(c) is None for r in dict_rows) for c in columns],
    }


def other_sections(run: RunData) -> list[dict[str, Any]]:
    """Sections of results.json the report has no dedicated place for (e.g. a generative model's
    numbers or a study table), shown generically: ``{title, kv: [(key, value)]}`` or
    ``{title, table: {columns, rows, numeric}}``."""
    out: list[dict[str, Any]] = []
    scalars: list[tuple[str, str]] = []
    for key, v in run.results.items():
        if key in KNOWN_KEYS:
            continue
        if not isinstance(v, Mapping | list):
            scalars.append((key, _value(key, v)))
            continue
        title = key.replace("_", " ")
        if isinstance(v, Mapping) and isinstance(v.get("rows"), list):
            cols = [str(c) for c in v["columns"]] if isinstance(v.get("columns"), list) else None
            table = _table(v["rows"], cols)
            if table:
                extra = ", ".join(f"{k}: {_value(k, x)}" for k, x in v.items() if k not in ("rows", "columns"))
                out.append({"title": title + (f" ({extra})" if extra else ""), "table": table})
                continue
        if isinstance(v, list) and v and all(isinstance(r, Mapping) for r in v):
            table = _table(v)
            if table:
                out.append({"title": title, "table": table})
                continue
        if isinstance(v, Mapping):
            out.append({"title": title, "kv": _kv_rows(v)})
        else:
            scalars.append((key, _value(key, v)))
    if scalars:
        out.insert(0, {"title": "other results", "kv": scalars})
    return out
