"""The image-classification lab's report: the robustness tables and figures, the verdict and key
numbers, per-class / superclass / minimal-perturbation / cross-domain / noise sections and the
evaluation cost, from a run folder's ``config.yaml`` and ``results.json``.

Nothing here raises on a missing or partial section: every function returns what it can (empty
lists, ``None``) so a report of a half-finished run still renders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from robustlab.report.context import RunData, dataset_name, kv_text
from robustlab.report.format import MISSING, eps_label, is_number, norm_label, num, pct, seconds


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


def defense_label(run: RunData) -> str:
    """``"pgd_at (eps=0.03137, steps=4)"`` or ``"none"``."""
    name, params = defense_of(run)
    params = {k: v for k, v in params.items() if v is not None and v != {} and v != []}
    return f"{name} ({kv_text(params)})" if params else name


def model_name(run: RunData) -> str:
    return str(run.results.get("model") or run.section("model").get("name") or MISSING)


def config_rows(run: RunData) -> list[tuple[str, str]]:
    """The classifier's own configuration rows: model, defense and evaluation."""
    model, ev = run.section("model"), run.section("evaluate")
    rows: list[tuple[str, str]] = []
    m = model_name(run)
    opts = model.get("options") if isinstance(model.get("options"), dict) else {}
    mext = [kv_text(opts)] if opts else []
    if model.get("pretrained"):
        mext.append(f"pretrained from {model['pretrained']}")
    if model.get("batchnorm") is False:
        mext.append("no batch-norm")
    if m != MISSING or mext:
        rows.append(("Model", m + (f" ({'; '.join(mext)})" if mext else "")))
    rows.append(("Defense", defense_label(run)))
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
    """The robustness table: one row per (norm, eps), columns clean / each attack / worst case, as
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
    """What was trained, how accurate and how robust it is (the report shell adds the flags' warning)."""
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
    return parts[0] + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "")


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


