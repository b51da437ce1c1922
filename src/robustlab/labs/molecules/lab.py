"""The ``molecules`` lab on the shared trainer: SMILES → tokens → one-hot MLP / LSTM / BiLSTM →
binary property, audited for SMILES-enumeration invariance beside fingerprint baselines."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from robustlab.core import distributed as D
from robustlab.core.errors import RobustlabError
from robustlab.core.io import read_json
from robustlab.data.bundle import DataBundle
from robustlab.labs.base import Lab, RunContext
from robustlab.labs.molecules import figures, sources
from robustlab.labs.molecules.audit import PREDICTIONS, audit
from robustlab.labs.molecules.config import MoleculesConfig
from robustlab.labs.molecules.measures import decile_rows, invariance
from robustlab.labs.molecules.models import OneHotMLP, SmilesLSTM
from robustlab.labs.molecules.prepare import MoleculeData, build_bundle, load_table, molecule_data, register_datasets
from robustlab.labs.molecules.report import cv_sections, run_sections
from robustlab.labs.molecules.task import BinarySequenceTask
from robustlab.labs.molecules.tokens import tokenize
from robustlab.report.section import Section
from robustlab.training.metrics import BinaryROCAUC, Metric


class MoleculeLab(Lab):
    name = "molecules"
    description = "SMILES sequence classifiers (one-hot MLP, LSTM, BiLSTM) with k-fold CV and an enumeration audit"
    config_model = MoleculesConfig
    smoke_defaults = {  # noqa: RUF012 - a class-level constant of the lab
        "train": {"epochs": 2, "patience": None},
        "model": {"embed": 16, "hidden": 16, "fc": 16},
        "evaluate": {"variants": 2, "rf_trees": 20, "attributions": 2, "ig_steps": 4},
    }

    def check(self, cfg: MoleculesConfig) -> None:
        """Packaged tables installed; a user's table read and validated in full (columns, labels,
        SMILES, lengths) before anything is written."""
        if cfg.data.dataset == "csv":
            if not Path(cfg.data.path or "").is_file():
                raise RobustlabError(f"data.path {cfg.data.path} does not exist (dataset csv needs the CSV/TSV file)")
            load_table(cfg)
        if cfg.data.dataset in sources.PACKAGED:
            sources.PACKAGED[cfg.data.dataset].path()
        if cfg.data.external:
            sources.PACKAGED[cfg.data.external].path()

    def build_data(self, cfg: MoleculesConfig, smoke: bool = False) -> DataBundle:
        return build_bundle(cfg, smoke)

    def model_meta(self, cfg: MoleculesConfig, data: DataBundle) -> dict[str, Any]:
        mol: MoleculeData = data.extras["molecules"]
        return {"vocab": len(mol.vocab), "tokens": list(mol.vocab.tokens), "tokenizer": mol.tokenizer,
                "positive_rate": float(mol.labels("train").mean())}

    def build_model(self, cfg: MoleculesConfig, meta: dict[str, Any]) -> nn.Module:
        m = cfg.model
        if m.name == "onehot_mlp":
            return OneHotMLP(meta["vocab"], m.max_tokens, 2 * m.hidden, m.dropout)
        return SmilesLSTM(meta["vocab"], m.embed, m.hidden, m.fc, m.dropout, m.name == "bilstm", m.pooling, m.layers)

    def build_task(self, cfg: MoleculesConfig, meta: dict[str, Any]) -> BinarySequenceTask:
        rate = meta.get("positive_rate", 0.5)
        return BinarySequenceTask((1 - rate) / rate if cfg.model.class_weights and 0 < rate < 1 else None)

    def metrics(self, cfg: MoleculesConfig, meta: dict[str, Any]) -> list[Metric]:
        return [BinaryROCAUC()]

    def training_results(
        self, cfg: MoleculesConfig, data: DataBundle, test: dict[str, float], strategy: Any
    ) -> dict[str, Any]:
        mol: MoleculeData = data.extras["molecules"]
        sizes = {part: int(len(idx)) for part, idx in mol.split.items()}
        counts = Counter(t for s in mol.smiles("train") for t in tokenize(s, mol.tokenizer))
        lengths = np.asarray([len(s) for s in mol.table.smiles])
        stats = {"tokens": [[t, n] for t, n in counts.most_common(30)], "distinct_tokens": len(counts),
                 "length_chars": {"mean": float(lengths.mean()), "median": float(np.median(lengths)),
                                  "max": int(lengths.max()), "min": int(lengths.min())}}
        return {"dataset": cfg.data.dataset, "data": {**mol.table.cleaning(), "split": cfg.data.split,
                                                       "fold": cfg.data.fold, "folds": cfg.data.folds, "sizes": sizes,
                                                       "vocabulary": len(mol.vocab), **stats}, **test}

    def evaluate(self, ctx: RunContext) -> dict[str, Any]:
        if not D.is_main():
            return {}
        model = self.load_model(ctx)
        data = molecule_data(ctx.cfg, ctx.smoke)  # the fold and vocabulary only: no training tensors
        return audit(ctx.run, model, ctx.cfg, data, ctx.device, ctx.smoke)

    def explain(self, ctx: RunContext) -> dict[str, str]:
        from robustlab.labs.molecules.attribution import atom_weights, draw_attributions, integrated_gradients

        data = molecule_data(ctx.cfg, ctx.smoke)
        out: dict[str, str] = {}
        lengths = np.asarray([len(s) for s in data.table.smiles])
        figures.length_histogram(lengths, data.table.labels, ctx.run.figures / "lengths.png")
        out["lengths"] = "figures/lengths.png"
        m = ctx.run.results().get("molecules") or {}
        if m.get("deciles"):
            models = [k[: -len("_gain")] for k in m["deciles"][0] if k.endswith("_gain")]
            figures.decile_gains(m["deciles"], models, ctx.run.figures / "deciles.png")
            out["deciles"] = "figures/deciles.png"
        if m.get("calibration"):
            figures.reliability_diagram(m["calibration"], ctx.run.figures / "calibration.png")
            out["calibration"] = "figures/calibration.png"
        n = ctx.cfg.evaluate.attributions
        if n:
            model = self.load_model(ctx)
            test = data.smiles("test")[:n]
            ids, lens, _ = data.encode(test, "attributions")
            attr = integrated_gradients(model, ids.to(ctx.device), lens.to(ctx.device), ctx.cfg.evaluate.ig_steps).cpu()
            weights = [atom_weights(s, attr[i, : int(lens[i])].tolist(), data.tokenizer) for i, s in enumerate(test)]
            titles = [f"label {int(y)}" for y in data.labels("test")[:n]]
            draw_attributions(test, weights, titles, ctx.run.figures / "attributions.png")
            out["attributions"] = "figures/attributions.png"
        return out

    def report_sections(self, run_dir: Path, config: dict[str, Any], results: dict[str, Any]) -> list[Section]:
        return cv_sections(results) + run_sections(run_dir, results)

    def pooled_folds(self, fold_dirs: list[Path]) -> dict[str, Any]:
        """Per-length deciles and the invariance numbers over the pooled out-of-fold predictions."""
        preds = [read_json(d / PREDICTIONS) for d in fold_dirs if (d / PREDICTIONS).is_file()]
        if len(preds) != len(fold_dirs):
            return {}
        y = np.concatenate([p["label"] for p in preds]).astype(np.int64)
        lengths = np.concatenate([p["length"] for p in preds])
        probs = {name: np.concatenate([p[name] for p in preds]) for name in ("model", "rf_morgan", "length_lr")
                 if all(name in p for p in preds)}
        pooled: dict[str, Any] = {"molecules": int(len(y)), "deciles": decile_rows(y, probs, lengths)}
        variants = np.concatenate([np.asarray(p["model_variants"]) for p in preds])
        pooled["invariance"] = invariance(probs["model"], variants)
        return pooled

    def compare(self, run_dirs: list[Path], out: Path, title: str | None = None) -> Path:
        """The default one-row-per-run page; as Markdown (``out`` ending in ``.md``) a table of the
        headline numbers (mean ± std over folds for cross-validated runs) with the split named."""
        if out.suffix.lower() != ".md":
            return super().compare(run_dirs, out, title)
        import yaml

        from robustlab.core.io import atomic_write_text
        from robustlab.labs.molecules.report import comparison_markdown

        docs = []
        for d in run_dirs:
            path = d / "config.yaml"
            cfg = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}
            docs.append((d.name, read_json(d / "results.json") if (d / "results.json").is_file() else {}, cfg or {}))
        figure = _pooled_decile_figure(docs, out.with_name(f"{out.stem}-deciles.png"))
        text = comparison_markdown(docs, title)
        if figure is not None:
            text += f"\n![accuracy minus majority-class accuracy per length decile]({figure.name})\n"
        return atomic_write_text(out, text)

    def summary(self, results: dict[str, Any]) -> str:
        cv = results.get("cross_validation")
        if isinstance(cv, dict):
            mean, std = cv.get("mean", {}), cv.get("std", {})

            def ms(key: str) -> str:
                return f"{mean[key]:.3f} ± {std.get(key, 0):.3f}" if key in mean else "–"

            parts = [f"{cv.get('folds')}-fold ROC-AUC {ms('molecules.canonical.roc_auc')}",
                     f"randomised {ms('molecules.randomised.roc_auc')}", f"TTA {ms('molecules.tta.roc_auc')}",
                     f"flip rate {ms('molecules.invariance.flip_rate')}"]
            if "molecules.baselines.rf_morgan.canonical.roc_auc" in mean:
                parts.append(f"RF-Morgan {ms('molecules.baselines.rf_morgan.canonical.roc_auc')}")
                parts.append(f"length-only {ms('molecules.baselines.length_lr.canonical.roc_auc')}")
            return ", ".join(parts)
        m = results.get("molecules")
        if isinstance(m, dict):
            c, inv = m.get("canonical", {}), m.get("invariance", {})
            return (f"{m.get('split')} fold {m.get('fold')}: ROC-AUC {c.get('roc_auc', float('nan')):.3f}, "
                    f"randomised {(m.get('randomised') or {}).get('roc_auc') or float('nan'):.3f}, "
                    f"flip rate {inv.get('flip_rate', float('nan')):.3f}")
        if isinstance(results.get("test_roc_auc"), float):
            return f"test ROC-AUC {results['test_roc_auc']:.3f} (not audited yet)"
        return "not evaluated"


def _pooled_decile_figure(docs: list[tuple[str, dict[str, Any], dict[str, Any]]], path: Path) -> Path | None:
    """One line per cross-validated run (its pooled out-of-fold deciles), plus the RF and length-only
    baselines of the first run that has them, when all runs share the same bins; None otherwise."""
    runs = [(name, ((res.get("cross_validation") or {}).get("pooled") or {}).get("deciles") or [])
            for name, res, _ in docs]
    runs = [(name, rows) for name, rows in runs if rows]
    if not runs or len({tuple(r["n"] for r in rows) for _, rows in runs}) != 1:
        return None
    merged = [{"bin": r["bin"], "positive_rate": r["positive_rate"]} for r in runs[0][1]]
    names = []
    for name, rows in runs:
        for m, r in zip(merged, rows, strict=True):
            m[f"{name}_gain"] = r["model_gain"]
        names.append(name)
    with_baselines = next((rows for _, rows in runs if "rf_morgan_gain" in rows[0]), None)
    if with_baselines:
        for m, r in zip(merged, with_baselines, strict=True):
            m["RF-Morgan_gain"], m["length-only_gain"] = r["rf_morgan_gain"], r["length_lr_gain"]
        names += ["RF-Morgan", "length-only"]
    return figures.decile_gains(merged, names, path)


LAB = MoleculeLab()
register_datasets()
