"""One self-contained HTML page comparing several classification runs: the robustness table (a row per
run; before/after a defense for runs that share dataset and model), overlaid robustness curves, every
run's sanity flags and training curves; and the same tables as Markdown."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robustlab.core.io import atomic_write_text
from robustlab.core.progress import log
from robustlab.labs.classification import figures as figs
from robustlab.labs.classification import report_data as rd
from robustlab.report import context as ctx
from robustlab.report.format import MISSING, eps_label, is_number, pct
from robustlab.report.html import data_uri, footer, inside, render, safe_figure
from robustlab.report.overview import load_runs
from robustlab.viz import training_curves

TEMPLATES = Path(__file__).parent / "templates"


def _columns(runs: Sequence[ctx.RunData]) -> tuple[list[tuple[str, str, float]], list[tuple[str, float]]]:
    """Union over runs of (attack, norm, eps) columns and of worst-case (norm, eps) columns."""
    attacks: dict[tuple[str, str, float], None] = {}
    order: dict[str, int] = {}
    budgets: dict[tuple[str, float], None] = {}
    for run in runs:
        for r in rd.robust_rows(run):
            a, n, e = str(r.get("attack", "?")), str(r.get("norm") or "linf"), rd.eps_key(r["eps"])
            order.setdefault(a, len(order))
            attacks.setdefault((a, n, e), None)
        for k in rd.worst_case(run):
            budgets.setdefault(k, None)
    att = sorted(attacks, key=lambda t: (t[1], t[2], order[t[0]]))
    return att, sorted(budgets)


def _run_values(run: ctx.RunData, att_cols, wc_cols) -> tuple[list[float | None], list[tuple[float, bool] | None]]:
    acc = {
        (str(r.get("attack", "?")), str(r.get("norm") or "linf"), rd.eps_key(r["eps"])): r["accuracy"]
        for r in rd.robust_rows(run)
    }
    wc = rd.worst_case(run)
    return [acc.get(c) for c in att_cols], [wc.get(c) for c in wc_cols]


def _is_baseline(run: ctx.RunData) -> bool:
    return rd.defense_of(run)[0].lower() in {"none", "", "standard", "clean"}


def _parent(run: ctx.RunData, runs: Sequence[ctx.RunData]) -> ctx.RunData | None:
    """The compared run whose checkpoint ``run`` was fine-tuned from (``train.init_from``), if any."""
    src = run.section("train").get("init_from")
    if not isinstance(src, str) or not src:
        return None
    for other in runs:
        if other is not run and inside(Path(src), other.path):
            return other
    return None


def pairings(runs: Sequence[ctx.RunData]) -> list[tuple[ctx.RunData, list[ctx.RunData]]]:
    """``[(before, [after, ...])]``: each run fine-tuned from another compared run is paired with
    it ("before/after adversarial training"); the remaining defended runs are paired
    with an undefended run of the same dataset and model."""
    groups: dict[int, tuple[ctx.RunData, list[ctx.RunData]]] = {}
    paired: set[int] = set()
    for run in runs:
        parent = _parent(run, runs)
        if parent is not None:
            groups.setdefault(id(parent), (parent, []))[1].append(run)
            paired.add(id(run))
    for run in runs:
        if id(run) in paired or id(run) in groups or _is_baseline(run):
            continue
        base = next(
            (
                b
                for b in runs
                if _is_baseline(b)
                and ctx.dataset_name(b) == ctx.dataset_name(run)
                and rd.model_name(b) == rd.model_name(run)
            ),
            None,
        )
        if base is not None:
            groups.setdefault(id(base), (base, []))[1].append(run)
    return list(groups.values())


def _delta(v: float | None, ref: float | None) -> dict[str, str]:
    if not (is_number(v) and is_number(ref)):
        return {"text": MISSING, "sign": ""}
    d = 100 * (v - ref)
    return {"text": f"{d:+.2f} pp", "sign": "pos" if d > 0 else "neg" if d < 0 else ""}


def before_after(runs: Sequence[ctx.RunData]) -> list[dict[str, Any]]:
    """Report 001's Table-2 shape for each pairing of :func:`pairings`: rows clean / attack@eps /
    worst case@eps, columns the run before and each run after, with the change in percentage points."""
    tables = []
    for before, after in pairings(runs):
        cols = [before, *after]
        att_cols, wc_cols = _columns(cols)
        clean = [r.results.get("clean_accuracy") if is_number(r.results.get("clean_accuracy")) else None for r in cols]
        metric_rows: list[tuple[str, list[float | None]]] = [("clean", clean)]
        values = [_run_values(r, att_cols, wc_cols) for r in cols]
        for i, (a, n, e) in enumerate(att_cols):
            metric_rows.append((f"{a} @ {eps_label(e, n)}", [v[0][i] for v in values]))
        for i, (n, e) in enumerate(wc_cols):
            worst = [v[1][i][0] if v[1][i] is not None else None for v in values]
            metric_rows.append((f"worst case @ {eps_label(e, n)}", worst))
        rows = [
            {"label": label, "cells": [pct(v) for v in vals], "deltas": [_delta(v, vals[0]) for v in vals[1:]]}
            for label, vals in metric_rows
        ]
        tables.append(
            {
                "title": f"{before.name} → {', '.join(r.name for r in after)}",
                "dataset": ctx.dataset_name(before),
                "model": rd.model_name(before),
                "headers": [f"before: {before.name} ({rd.defense_label(before)})"]
                + [f"after: {r.name} ({rd.defense_label(r)})" for r in after],
                "delta_headers": [f"Δ {r.name}" for r in after],
                "rows": rows,
            }
        )
    return tables


def compare_report(run_dirs: Sequence[str | Path], out: str | Path, title: str | None = None) -> Path:
    """Render one self-contained HTML page comparing ``run_dirs`` and write it to ``out`` atomically.

    It holds a table with a row per run (dataset, model, defense, clean, every attack@eps, worst case
    per eps, in %), before/after-defense tables for runs sharing dataset and model, overlaid
    robustness curves, every run's sanity flags and each run's training curves. Raises
    :class:`RobustlabError` when ``run_dirs`` is empty or names something that is not a folder.
    """
    runs = load_runs(run_dirs)
    att_cols, wc_cols = _columns(runs)
    rows = []
    for run in runs:
        acc, wc = _run_values(run, att_cols, wc_cols)
        rows.append(
            {
                "name": run.name,
                "dataset": ctx.dataset_name(run),
                "model": rd.model_name(run),
                "defense": rd.defense_label(run),
                "smoke": run.smoke,
                "clean": pct(run.results.get("clean_accuracy")),
                "cells": [pct(a) for a in acc],
                "worst": [(pct(w[0]) + ("" if w[1] else "*")) if w else MISSING for w in wc],
            }
        )
    with tempfile.TemporaryDirectory(prefix="robustlab-compare-") as tmp:
        tmpdir = Path(tmp)
        overlay = safe_figure(figs.robustness_overlay, [(r.name, r.results) for r in runs], tmpdir / "overlay.png")
        curves = []
        for i, run in enumerate(runs):
            p = safe_figure(training_curves, run.metrics, tmpdir / f"train_{i}.png", title=run.name)
            if p is not None:
                curves.append({"name": run.name, "uri": data_uri(p)})
        overlay_uri = data_uri(overlay) if overlay else None
    page = render(
        "compare.html", template_dir=TEMPLATES,
        title=title or f"Comparison of {len(runs)} run{'s' if len(runs) != 1 else ''}",
        attack_headers=[{"attack": a, "eps": eps_label(e, n)} for a, n, e in att_cols],
        worst_headers=[{"attack": "worst case", "eps": eps_label(e, n)} for n, e in wc_cols],
        rows=rows,
        any_approx=any(w.endswith("*") for r in rows for w in r["worst"]),
        before_after=before_after(runs),
        overlay=overlay_uri,
        flags=[{"name": r.name, "flags": ctx.flags(r), "smoke": r.smoke} for r in runs],
        curves=curves,
        footer=footer(),
    )
    out_path = atomic_write_text(Path(out), page)
    log.info("comparison written to %s", out_path)
    return out_path


def _md_pct(v: Any) -> str:
    return f"{100.0 * v:.2f}" if is_number(v) else MISSING


def _md_table(header: list[str], rows: list[list[str]], text_cols: int = 2) -> str:
    align = ["---"] * text_cols + ["---:"] * (len(header) - text_cols)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def compare_markdown(run_dirs: Sequence[str | Path], title: str | None = None) -> str:
    """The comparison as Markdown (accuracies in %, two decimals): a table with a row per run
    (defense, clean, every attack@eps, worst case per eps, Gaussian noise per sigma); then, where
    runs have them, cross-domain accuracy and circle-loss k-NN rows. Same errors as :func:`compare_report`."""
    runs = load_runs(run_dirs)
    att_cols, wc_cols = _columns(runs)
    sigmas = sorted({float(r["sigma"]) for run in runs for r in run.results.get("noise") or []
                     if is_number(r.get("sigma")) and r["sigma"] > 0})
    header = ["run", "defense", "clean"]
    header += [f"{a} {eps_label(e, n)}" for a, n, e in att_cols]
    header += [f"worst {eps_label(e, n)}" for n, e in wc_cols]
    header += [f"noise σ {s:g}" for s in sigmas]
    body = []
    for run in runs:
        acc, wc = _run_values(run, att_cols, wc_cols)
        noise = {float(r["sigma"]): r.get("accuracy") for r in run.results.get("noise") or []
                 if is_number(r.get("sigma"))}
        name = run.name + (" (smoke)" if run.smoke else "")
        body.append(
            [name, rd.defense_label(run), _md_pct(run.results.get("clean_accuracy"))]
            + [_md_pct(a) for a in acc]
            + [(_md_pct(w[0]) + ("" if w[1] else "*")) if w else MISSING for w in wc]
            + [_md_pct(noise.get(s)) for s in sigmas]
        )
    parts = [f"### {title}\n" if title else "", _md_table(header, body)]
    if any(not w[1] for run in runs for w in rd.worst_case(run).values()):
        parts.append("\n\\* worst case approximated from the per-attack rows (per-sample data missing).\n")
    domains = list(dict.fromkeys(row.get("dataset") for run in runs for row in run.results.get("cross_domain") or []))
    if domains:
        rows = []
        for run in runs:
            got = {row.get("dataset"): row.get("accuracy") for row in run.results.get("cross_domain") or []}
            if got:
                rows.append([run.name, rd.defense_label(run), *(_md_pct(got.get(d)) for d in domains)])
        parts.append("\nCross-domain test accuracy (the run's own dataset first):\n\n")
        parts.append(_md_table(["run", "defense", *map(str, domains)], rows))
    knn = [(run, row) for run in runs for row in run.results.get("knn") or []]
    if knn:
        rows = [[run.name, f"{row.get('attack')} {eps_label(row.get('eps'))}", _md_pct(row.get("knn_clean")),
                 _md_pct(row.get("knn_adversarial")), _md_pct(row.get("head_clean")),
                 _md_pct(row.get("head_adversarial"))] for run, row in knn]
        parts.append("\nk-NN (k = 5) on circle-loss embeddings; attacks computed through the cross-entropy head:\n\n")
        parts.append(_md_table(["run", "attack", "kNN clean", "kNN attacked", "head clean", "head attacked"], rows))
    return "".join(parts)
