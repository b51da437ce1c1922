"""The frozen-features lab's report sections and its comparison table, from results alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robustlab.report.section import Section, Table

AREA_COLUMNS = ("spearman", "pearson", "mae_m2", "baseline_mae_m2", "mae_gain", "total_relative_error",
                "patch_jaccard")


ROBUSTNESS_KEYS = frozenset({"clean_accuracy", "n_samples", "norm", "attacks", "eps", "robust", "worst_case", "noise",
                             "per_class", "superclass", "confusion", "min_perturbation", "early_exit", "sanity",
                             "flags", "sanity_seconds", "eval_seconds"})
"""The attack engine's results keys, shown by the robustness section."""


def _f(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, int | float) and not isinstance(v, bool) else "–"


def robust_rows(results: dict[str, Any]) -> list[list[str]]:
    """Clean accuracy, each attack's robust accuracy per eps and the worst case (attack engine rows)."""
    rows = [["clean", "–", _f(results.get("clean_accuracy"))]]
    for r in results.get("robust") or []:
        rows.append([r.get("attack", "?"), _f(r.get("eps_255"), 1), _f(r.get("accuracy"))])
    for r in results.get("worst_case") or []:
        rows.append(["worst case", _f(r.get("eps_255"), 1), _f(r.get("accuracy"))])
    return rows


def run_sections(run_dir: Path, results: dict[str, Any]) -> list[Section]:
    """Sections of one trained and audited head run."""
    m = results.get("frozen")
    if not isinstance(m, dict):
        return []
    figures = {k: run_dir / v for k, v in (results.get("figures") or {}).items()}
    c = m.get("classification") or {}
    area = m.get("area") or {}
    head = (area.get("estimators") or {}).get(area.get("headline", ""), {})
    cards = [{"label": "test accuracy", "value": _f(c.get("accuracy")), "sub": m.get("backbone", "")},
             {"label": "area Spearman", "value": _f(head.get("spearman")), "sub": area.get("headline", "")},
             {"label": "area MAE (m²)", "value": _f(head.get("mae_m2"), 1),
              "sub": f"mean-area baseline {_f(head.get('baseline_mae_m2'), 1)}"}]
    out = [Section(
        title="Panel detection", key="frozen-detection", cards=cards,
        verdict=f"{m.get('backbone')} (frozen) + one attention layer on {m.get('data')}: accuracy "
                f"{_f(c.get('accuracy'))}, area Spearman {_f(head.get('spearman'))} ({area.get('headline', '–')})",
        kv=[(k, _f(v) if isinstance(v, float) else str(v)) for k, v in c.items()],
        note=f"Backbone: {m.get('backbone')} — frozen, {m.get('registers', 0)} register tokens "
             f"({'attended' if m.get('attend_registers') else 'not attended'} by the head). Tiles: {m.get('data')}, "
             f"{m.get('tile_px')} px, {_f(m.get('gsd_m'), 2)} m/px, one patch = {_f(m.get('patch_area_m2'), 1)} m².",
        figures=[("attention", figures["attention"])] if "attention" in figures else [],
        claims=frozenset({"frozen"}))]
    if area:
        rows = [[name, *(_f(row.get(k)) for k in AREA_COLUMNS)] for name, row in area.get("estimators", {}).items()]
        out.append(Section(
            title="Panel area from attention", key="frozen-area",
            table=Table(["estimator", *AREA_COLUMNS], rows, [False] + [True] * len(AREA_COLUMNS)),
            note=f"Scored on {area.get('test_positives')} positive test tiles (true mean "
                 f"{_f(area.get('true_mean_m2'), 1)} m²); calibrated on {area.get('calibration_tiles')} positive "
                 "training tiles of known area. The softmax sums to 1 over the patches, so post-softmax counts "
                 "cannot say how much panel a tile holds; the pre-softmax logits can. mae_gain: 1 − MAE / MAE of "
                 "predicting the calibration mean; total_relative_error: |Σ estimate − Σ true| / Σ true (the "
                 f"DeepSolar-style aggregate). Headline estimator (declared in advance): {area.get('headline')}.",
            figures=[("area", figures["area"])] if "area" in figures else []))
    attack = m.get("area_under_attack")
    if results.get("robust") or attack:
        note = "Attacks run through the frozen backbone and the head (L∞, pixel units)."
        if attack:
            note += " Area under attack (PGD on the positive tiles): " + "; ".join(
                f"eps {_f(r['eps_255'], 1)}/255: accuracy {_f(r['accuracy'])}, area MAE {_f(r['mae_m2'], 1)} m², "
                f"Spearman {_f(r['spearman'])}" for r in attack)
        flags = results.get("flags") or []
        if flags:
            note += " Flags: " + "; ".join(f"{f.get('code')}: {f.get('message')}" for f in flags)
        out.append(Section(title="Robustness", key="frozen-robustness",
                           table=Table(["attack", "eps (/255)", "accuracy"], robust_rows(results),
                                       [False, True, True]),
                           note=note, figures=[("attack", figures["attack"])] if "attack" in figures else [],
                           claims=ROBUSTNESS_KEYS))
    norms = m.get("token_norms")
    if norms:
        out.append(Section(title="Backbone tokens", key="frozen-tokens",
                           kv=[(k, _f(v)) for k, v in norms.items()],
                           note="High-norm patch tokens (far above their tile's median) are the artifacts that "
                                "register tokens absorb; they distort attention maps."))
    return out


def comparison_markdown(docs: list[tuple[str, dict[str, Any], dict[str, Any]]], title: str | None) -> str:
    """A Markdown table: one row per (run, estimator) with the backbone, accuracy, robust accuracy
    at each eps (worst case) and the area scores."""
    lines = [f"# {title or 'Frozen-features runs'}", ""]
    eps_cols: list[str] = []
    for _, res, _ in docs:
        for r in res.get("worst_case") or []:
            label = f"robust acc. {_f(r.get('eps_255'), 1)}/255"
            if label not in eps_cols:
                eps_cols.append(label)
    head = ["run", "backbone", "test acc.", *eps_cols, "high-norm tokens", "estimator", "Spearman", "MAE m²",
            "baseline MAE m²", "total rel. err.", "patch Jaccard"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res, _ in docs:
        m = res.get("frozen") or {}
        robust = {f"robust acc. {_f(r.get('eps_255'), 1)}/255": _f(r.get("accuracy")) for r in res.get("worst_case")
                  or []}
        first = [name, m.get("backbone", "–"), _f((m.get("classification") or {}).get("accuracy")),
                 *(robust.get(c, "–") for c in eps_cols), _f((m.get("token_norms") or {}).get("high_norm_fraction"))]
        for est, row in ((m.get("area") or {}).get("estimators") or {"–": {}}).items():
            lines.append("| " + " | ".join([*first, est, _f(row.get("spearman")), _f(row.get("mae_m2"), 1),
                                             _f(row.get("baseline_mae_m2"), 1), _f(row.get("total_relative_error")),
                                             _f(row.get("patch_jaccard"))]) + " |")
            first = ["", "", "", *([""] * len(eps_cols)), ""]
    return "\n".join(lines) + "\n"
