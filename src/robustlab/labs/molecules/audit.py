"""The molecule lab's audit of a trained run, on its test fold: canonical metrics, the
SMILES-enumeration invariance test (AUROC on randomised strings, flip rate, spread, test-time
averaging), per-length deciles, calibration, the fingerprint/length baselines on the same fold and
an optional external table. Out-of-fold predictions are saved for pooled cross-validation views."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from robustlab.core.io import write_json
from robustlab.core.modes import eval_mode
from robustlab.core.runs import RunDir
from robustlab.labs.molecules import chem, sources
from robustlab.labs.molecules.baselines import LengthOnly, MorganForest
from robustlab.labs.molecules.config import MoleculesConfig
from robustlab.labs.molecules.measures import binary_metrics, decile_rows, invariance, reliability
from robustlab.labs.molecules.prepare import MoleculeData
from robustlab.labs.molecules.tokens import tokenize

PREDICTIONS = "predictions.json"


def predict(model: nn.Module, data: MoleculeData, smiles: list[str], device: torch.device,
            batch_size: int = 256) -> np.ndarray:
    """Positive-class probability of each SMILES ``(N,)`` float64, batched by length (the order of
    ``smiles`` is kept)."""
    ids, lengths, _ = data.encode(smiles, "audit")
    order = torch.argsort(lengths)
    out = torch.empty(len(smiles), dtype=torch.float64)
    with eval_mode(model), torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            longest = int(lengths[idx].max())
            logits = model(ids[idx, :longest].to(device), lengths[idx].to(device))
            out[idx] = logits.float().sigmoid().double().cpu()
    return out.numpy()


def variant_probabilities(
    predict_fn, smiles: list[str], variants: int, seed: int
) -> tuple[np.ndarray, list[list[str]]]:
    """``(N, V)`` probabilities of ``variants`` randomised SMILES per molecule (seeded) and the strings."""
    strings = chem.randomised(chem.parse(smiles), variants, seed)
    flat = [s for row in strings for s in row]
    return predict_fn(flat).reshape(len(smiles), variants), strings


def _scored(y: np.ndarray, p: np.ndarray, pv: np.ndarray, bins: int) -> dict[str, Any]:
    per_variant = [binary_metrics(y, pv[:, k], bins) for k in range(pv.shape[1])]
    aucs = [m["roc_auc"] for m in per_variant if "roc_auc" in m]
    return {"canonical": binary_metrics(y, p, bins),
            "randomised": {"roc_auc": float(np.mean(aucs)) if aucs else None,
                           "accuracy": float(np.mean([m["accuracy"] for m in per_variant])),
                           "worst_case_accuracy": float(((pv >= 0.5) == y[:, None]).all(1).mean())},
            "tta": binary_metrics(y, pv.mean(1), bins),
            "invariance": invariance(p, pv)}


def audit(
    run: RunDir, model: nn.Module, cfg: MoleculesConfig, data: MoleculeData, device: torch.device, smoke: bool = False
) -> dict[str, Any]:
    """The ``molecules`` section of results.json for the run's test fold (and its predictions file);
    under ``smoke`` the external table is procedural too."""
    a = cfg.evaluate
    test, y = data.smiles("test"), data.labels("test")
    fit_idx = np.concatenate([data.split["train"], data.split.get("val", np.empty(0, dtype=np.int64))])
    fit_smiles, fit_y = [data.table.smiles[i] for i in fit_idx], data.table.labels[fit_idx]

    def model_fn(smiles: list[str]) -> np.ndarray:
        return predict(model, data, smiles, device, cfg.data.eval_batch_size)

    p = model_fn(test)
    pv, _ = variant_probabilities(model_fn, test, a.variants, a.variant_seed)
    lengths = np.asarray([len(s) for s in test])
    _, _, unknown = data.encode(test, "test split")
    section: dict[str, Any] = {
        "model": cfg.model.name, "split": cfg.data.split, "fold": cfg.data.fold, "folds": cfg.data.folds,
        "augment": cfg.data.augment, "tokenizer": cfg.data.tokenizer, "vocabulary": len(data.vocab),
        "test_unknown_tokens": int(unknown), **_scored(y, p, pv, a.bins),
        "calibration": reliability(y, p, a.bins),
    }
    probs = {"model": p, "model_tta": pv.mean(1)}
    preds: dict[str, Any] = {"index": data.split["test"].tolist(), "label": y.tolist(), "length": lengths.tolist(),
                             "model": p.tolist(), "model_variants": pv.tolist()}
    rf = None
    if a.baselines:
        rf = MorganForest(a.rf_trees, a.morgan_bits, cfg.seed).fit(fit_smiles, fit_y)
        prf = rf.predict(test)
        pvrf, _ = variant_probabilities(rf.predict, test, a.variants, a.variant_seed)
        lr = LengthOnly().fit(fit_smiles, fit_y)
        plr = lr.predict(test)
        section["baselines"] = {"rf_morgan": _scored(y, prf, pvrf, a.bins),
                                "length_lr": {"canonical": binary_metrics(y, plr, a.bins)}}
        probs.update(rf_morgan=prf, length_lr=plr)
        preds.update(rf_morgan=prf.tolist(), rf_morgan_variants=pvrf.tolist(), length_lr=plr.tolist())
    section["deciles"] = decile_rows(y, probs, lengths, a.deciles)
    if cfg.data.external:
        section["external"] = external(cfg, data, model_fn, rf, smoke)
    write_json(run.path / PREDICTIONS, preds)
    return {"molecules": section}


def external(
    cfg: MoleculesConfig, data: MoleculeData, model_fn, rf: MorganForest | None, smoke: bool = False
) -> dict[str, Any]:
    """Metrics on the external table's molecules whose structure (stereo stripped) is nowhere in the
    training dataset — an out-of-distribution test — beside the fold's forest baseline when fitted."""
    table = (sources.procedural(80, cfg.seed + 1) if smoke
             else sources.load_packaged(sources.PACKAGED[cfg.data.external], allow_invalid=True))
    seen = set(chem.canonical(chem.parse(data.table.smiles), stereo=False))
    keys = chem.canonical(chem.parse(table.smiles), stereo=False)
    keep = [i for i, k in enumerate(keys) if k not in seen]
    tokens = [tokenize(table.smiles[i], data.tokenizer) for i in keep]
    fits = [j for j, t in enumerate(tokens) if len(t) <= data.max_length]
    smiles, y = [table.smiles[keep[j]] for j in fits], table.labels[[keep[j] for j in fits]]
    known = set(data.vocab.tokens)
    out: dict[str, Any] = {"table": cfg.data.external, "molecules": len(smiles),
                           "overlap_removed": len(table) - len(keep), "too_long_dropped": len(keep) - len(fits),
                           "with_unknown_tokens": sum(any(t not in known for t in tokens[j]) for j in fits),
                           "model": binary_metrics(y, model_fn(smiles), cfg.evaluate.bins)}
    if rf is not None:
        out["rf_morgan"] = binary_metrics(y, rf.predict(smiles), cfg.evaluate.bins)
    return out
