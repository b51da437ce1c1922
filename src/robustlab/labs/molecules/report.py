"""The molecule lab's report sections, from a run's (or a cross-validation parent's) results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robustlab.report.section import Section, Table

METRICS = ("roc_auc", "pr_auc", "accuracy", "balanced_accuracy", "mcc", "brier", "ece")


def _f(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, int | float) and not isinstance(v, bool) else "–"


def _split_name(m: dict[str, Any]) -> str:
    return f"{m.get('split', '?')} folds (fold {m.get('fold', '?')} of {m.get('folds', '?')})"


def metric_rows(m: dict[str, Any]) -> list[list[str]]:
    """One row per model/input of a ``molecules`` section: the metrics of canonical and randomised
    inputs and of test-time averaging, and the baselines'."""
    rows = []

    def add(name: str, block: dict[str, Any] | None) -> None:
        if block:
            rows.append([name, *(_f(block.get(k)) for k in METRICS)])

    add(f"{m.get('model')} — canonical SMILES", m.get("canonical"))
    variants = m.get("invariance", {}).get("variants", "?")
    add(f"{m.get('model')} — test-time average of {variants} randomised", m.get("tta"))
    for name, b in (m.get("baselines") or {}).items():
        add(f"{name} — canonical", b.get("canonical"))
    return rows


def invariance_rows(m: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, block in [(m.get("model", "model"), m), *((m.get("baselines") or {}).items())]:
        inv, rnd = block.get("invariance"), block.get("randomised") or {}
        if inv:
            rows.append([name, _f(block.get("canonical", {}).get("roc_auc")), _f(rnd.get("roc_auc")),
                         _f(block.get("tta", {}).get("roc_auc")), _f(inv["flip_rate"]), _f(inv["any_flip_rate"]),
                         _f(inv["probability_std"]), _f(rnd.get("worst_case_accuracy"))])
    return rows


def run_sections(run_dir: Path, results: dict[str, Any]) -> list[Section]:
    """Sections of one trained and audited run."""
    m = results.get("molecules")
    if not isinstance(m, dict):
        return []
    figures = results.get("figures", {}) or {}
    out = []
    canon = m.get("canonical", {})
    inv = m.get("invariance", {})
    cards = [{"label": "test ROC-AUC", "value": _f(canon.get("roc_auc")), "sub": _split_name(m)},
             {"label": "flip rate", "value": _f(inv.get("flip_rate")),
              "sub": f"{inv.get('variants', '?')} randomised SMILES per molecule"}]
    out.append(Section(
        title="Test metrics", key="molecule-metrics", cards=cards,
        verdict=f"{m.get('model')} on {_split_name(m)}: ROC-AUC {_f(canon.get('roc_auc'))} canonical, "
                f"{_f((m.get('randomised') or {}).get('roc_auc'))} on randomised SMILES, "
                f"flip rate {_f(inv.get('flip_rate'))}",
        table=Table(["model / input", *METRICS], metric_rows(m), [False] + [True] * len(METRICS)),
        note=f"Split: {_split_name(m)}; tokenizer {m.get('tokenizer')}, vocabulary {m.get('vocabulary')} tokens, "
             f"{m.get('test_unknown_tokens', 0)} unknown tokens in the test fold; training augmentation "
             f"{m.get('augment', 0)} randomised SMILES per molecule.",
        claims=frozenset({"molecules"})))
    out.append(Section(
        title="SMILES-enumeration invariance", key="molecule-invariance",
        table=Table(["model", "AUROC canonical", "AUROC randomised", "AUROC TTA", "flip rate", "any-flip rate",
                     "prob. std", "worst-case acc."], invariance_rows(m), [False] + [True] * 7),
        note="One molecule has many valid SMILES; a sound model gives them one answer. Flip rate: share of "
             "(molecule, randomised SMILES) pairs whose decision differs from the canonical string's; any-flip: "
             "molecules with at least one flipping variant (an enumeration attack's success); worst-case accuracy: "
             "molecules classified right under every variant. A fingerprint model's flip rate is 0 by construction."))
    deciles = m.get("deciles") or []
    if deciles:
        models = [k[: -len("_gain")] for k in deciles[0] if k.endswith("_gain")]
        cols = ["bin", "n", "max length", "positive rate", "majority acc.",
                *(f"{name} acc. − maj." for name in models)]
        rows = [[r["bin"], r["n"], r["max_length"], _f(r["positive_rate"]), _f(r["majority_accuracy"]),
                 *(_f(r.get(f"{name}_gain")) for name in models)] for r in deciles]
        figs = [("accuracy gain per length decile", run_dir / figures["deciles"])] if "deciles" in figures else []
        out.append(Section(title="Per-length deciles", key="molecule-deciles", table=Table(cols, rows),
                           figures=figs, note="Accuracy alone is confounded by each bin's base rate (the label "
                           "depends on the length); the gain over the bin's majority-class accuracy is what a "
                           "model adds."))
    d = results.get("data") or {}
    if d:
        kv = [("source", str(d.get("source"))), ("molecules (cleaned)", str(d.get("molecules"))),
              ("positive rate", _f(d.get("positive_rate"))), ("invalid SMILES dropped", str(d.get("invalid_dropped"))),
              ("duplicates merged", str(d.get("duplicates_merged"))),
              ("conflicting duplicate groups dropped", str(d.get("conflicting_groups_dropped"))),
              ("split sizes", ", ".join(f"{k} {v}" for k, v in (d.get("sizes") or {}).items())),
              ("SMILES length (chars)", ", ".join(f"{k} {_f(v, 1)}" for k, v in (d.get("length_chars") or {}).items()))]
        tokens = d.get("tokens") or []
        out.append(Section(title="Data", key="molecule-data", kv=kv,
                           table=Table(["token", "count in training"], tokens, [False, True]) if tokens else None,
                           note=f"{d.get('distinct_tokens', '?')} distinct tokens in the training split "
                                f"({m.get('tokenizer')} tokenizer; the 30 most frequent shown)."))
    figs = [(title, run_dir / figures[key]) for key, title in
            (("lengths", "SMILES length by class"), ("calibration", "reliability diagram (canonical SMILES)"),
             ("attributions", "integrated gradients on the tokens, drawn on the atoms")) if key in figures]
    ext = m.get("external")
    if ext:
        rows = [[name, *(_f(ext[name].get(k)) for k in METRICS)] for name in ("model", "rf_morgan") if name in ext]
        out.append(Section(title=f"External test: {ext['table']} molecules not in the training data",
                           key="molecule-external",
                           table=Table(["model", *METRICS], rows),
                           note=f"{ext['molecules']} molecules ({ext['overlap_removed']} shared structures removed, "
                                f"{ext['with_unknown_tokens']} with tokens unseen in training)."))
    if figs:
        out.append(Section(title="Figures", key="molecule-figures", figures=figs))
    return out


def cv_sections(results: dict[str, Any]) -> list[Section]:
    """The aggregate of a cross-validation parent: mean ± std over folds of the headline numbers of
    the model and of the baselines on the same folds, and the pooled out-of-fold deciles."""
    cv = results.get("cross_validation")
    if not isinstance(cv, dict):
        return []
    mean, std = cv.get("mean", {}), cv.get("std", {})

    def ms(key: str) -> str:
        return f"{mean[key]:.3f} ± {std.get(key, 0.0):.3f}" if key in mean else "–"

    columns = [("canonical.roc_auc", "AUROC"), ("randomised.roc_auc", "AUROC randomised"), ("tta.roc_auc", "AUROC TTA"),
               ("canonical.pr_auc", "PR-AUC"), ("canonical.accuracy", "accuracy"),
               ("canonical.balanced_accuracy", "balanced acc."), ("canonical.ece", "ECE"),
               ("invariance.flip_rate", "flip rate")]
    rows = []
    for name, prefix in (("model", "molecules."), ("rf_morgan", "molecules.baselines.rf_morgan."),
                         ("length_lr", "molecules.baselines.length_lr.")):
        if f"{prefix}canonical.roc_auc" in mean:
            rows.append([name, *(ms(prefix + k) for k, _ in columns)])
    pooled_inv = (cv.get("pooled") or {}).get("invariance") or {}
    out = [Section(title=f"Cross-validation: {cv.get('folds')} folds", key="molecule-cv",
                   verdict=f"{cv.get('folds')}-fold mean ROC-AUC {ms('molecules.canonical.roc_auc')}, flip rate "
                           f"{ms('molecules.invariance.flip_rate')}",
                   table=Table(["model", *(t for _, t in columns)], rows, [False] + [True] * len(columns)),
                   note="Mean ± sample standard deviation over folds; each fold is a complete run folder (fold-0 …) "
                        "and the final number is the mean over folds. Pooled over all folds' test molecules: flip "
                        f"rate {_f(pooled_inv.get('flip_rate'))}, any-flip rate {_f(pooled_inv.get('any_flip_rate'))}. "
                        "Every per-fold number is in results.json (cross_validation.values).",
                   claims=frozenset({"cross_validation"}))]
    values = cv.get("values", {})
    per_fold = [("molecules.canonical.roc_auc", "AUROC"), ("molecules.tta.roc_auc", "AUROC TTA"),
                ("molecules.invariance.flip_rate", "flip rate"),
                ("molecules.baselines.rf_morgan.canonical.roc_auc", "RF-Morgan AUROC")]
    per_fold = [(k, t) for k, t in per_fold if k in values]
    if per_fold:
        rows = [[i, *(_f(values[k][i]) for k, _ in per_fold)] for i in range(int(cv.get("folds", 0)))]
        out.append(Section(title="Per-fold numbers", key="molecule-folds",
                           table=Table(["fold", *(t for _, t in per_fold)], rows)))
    pooled = cv.get("pooled") or {}
    if pooled.get("deciles"):
        deciles = pooled["deciles"]
        models = [k[: -len("_gain")] for k in deciles[0] if k.endswith("_gain")]
        rows = [[r["bin"], r["n"], r["max_length"], _f(r["positive_rate"]), _f(r["majority_accuracy"]),
                 *(_f(r.get(f"{name}_gain")) for name in models)] for r in deciles]
        out.append(Section(title="Per-length deciles (pooled out-of-fold predictions)", key="molecule-cv-deciles",
                           table=Table(["bin", "n", "max length", "positive rate", "majority acc.",
                                        *(f"{name} acc. − maj." for name in models)], rows)))
    return out


COMPARE_COLUMNS = (("canonical.roc_auc", "AUROC"), ("randomised.roc_auc", "AUROC randomised"),
                   ("tta.roc_auc", "AUROC TTA"), ("canonical.pr_auc", "PR-AUC"),
                   ("canonical.balanced_accuracy", "balanced acc."), ("invariance.flip_rate", "flip rate"),
                   ("baselines.rf_morgan.canonical.roc_auc", "RF-Morgan AUROC"),
                   ("baselines.length_lr.canonical.roc_auc", "length-only AUROC"))


def comparison_markdown(docs: list[tuple[str, dict[str, Any], dict[str, Any]]], title: str | None = None) -> str:
    """A Markdown table of runs ``(name, results, config)``: model, split, augmentation and the
    headline numbers, mean ± std over folds for cross-validated runs, a single fold's value otherwise."""
    lines = [f"# {title or 'Molecule runs'}", "",
             "| run | model | split | folds | augment | " + " | ".join(t for _, t in COMPARE_COLUMNS) + " |",
             "|---|---|---|---:|---:|" + "---:|" * len(COMPARE_COLUMNS)]
    for name, doc, config in docs:
        cv = doc.get("cross_validation")
        if isinstance(cv, dict):
            mean, std = cv.get("mean", {}), cv.get("std", {})
            values = [f"{mean[f'molecules.{k}']:.3f} ± {std.get(f'molecules.{k}', 0):.3f}"
                      if f"molecules.{k}" in mean else "–" for k, _ in COMPARE_COLUMNS]
            folds = str(cv.get("folds"))
        else:
            m = doc.get("molecules") or {}
            values = []
            for k, _ in COMPARE_COLUMNS:
                v: Any = m
                for part in k.split("."):
                    v = v.get(part) if isinstance(v, dict) else None
                values.append(_f(v))
            folds = f"fold {m.get('fold', '?')} of {m.get('folds', '?')}"
        data, model = config.get("data") or {}, config.get("model") or {}
        lines.append(f"| {name} | {model.get('name', '?')} | {data.get('split', '?')} ({data.get('dataset', '?')}) "
                     f"| {folds} | {data.get('augment', 0)} | " + " | ".join(values) + " |")
        ext = (doc.get("molecules") or {}).get("external")
        if ext:
            lines.append("")
            lines.append(f"External test of {name}: {ext['molecules']} {ext['table']} molecules not in the training "
                         f"data — model AUROC {_f(ext['model'].get('roc_auc'))}"
                         + (f", RF-Morgan AUROC {_f(ext['rf_morgan'].get('roc_auc'))}" if "rf_morgan" in ext else ""))
            lines.append("")
    return "\n".join(lines) + "\n"
