"""The image classifier's audit of a trained run: the robustness evaluation, k-NN on metric-learning
embeddings, and accuracy on other datasets (cross-domain)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from robustlab import data as rdata
from robustlab.core import distributed as D
from robustlab.core.errors import RobustlabError
from robustlab.data.bundle import DataBundle
from robustlab.data.prepare import fabricated_dataset
from robustlab.evaluation import evaluate_robustness
from robustlab.evaluation.config import EvalConfig
from robustlab.evaluation.samples import FILENAME, save_per_sample
from robustlab.labs.base import RunContext
from robustlab.models.inference import dataset_accuracy


def eval_config(cfg: Any, overrides: dict[str, Any] | None) -> EvalConfig:
    """The run's ``evaluate`` section updated by stage ``overrides`` (validated, one-line errors)."""
    from robustlab.core.config import validate_model

    return validate_model(EvalConfig, {**cfg.evaluate.model_dump(), **(overrides or {})}, where="evaluate options")


def robustness_audit(ctx: RunContext, model: torch.nn.Module, bundle: DataBundle) -> dict[str, Any]:
    """Clean, noise, attacks, eps sweep, worst case and sanity flags on the test split (DDP-aware:
    ranks share the batches); writes ``per_sample.safetensors`` on rank 0. Returns results sections."""
    cfg = ctx.cfg
    ecfg = eval_config(cfg, ctx.options.get("evaluate"))
    result = evaluate_robustness(
        model, bundle.test, ecfg, device=ctx.device, batch_size=cfg.data.eval_batch_size, seed=cfg.seed,
        amp=cfg.train.amp, state_path=ctx.run.path / "checkpoints" / "eval_state.pt",
        sanity_samples=ecfg.sanity_samples, n_examples=ecfg.n_examples,
    )
    sections = result.to_json()
    if not D.is_main():
        return sections
    if cfg.defense.name == "circle":
        sections["knn"] = knn_sections(model, cfg, bundle, ecfg)
    if ecfg.cross_domain:
        sections["cross_domain"] = cross_domain_accuracy(model, cfg, bundle, ecfg.cross_domain, ctx.device, ctx.smoke)
    save_per_sample(result, ctx.run.path / FILENAME, ecfg.per_attack)
    sections["per_sample_file"] = FILENAME
    sections["eval_processes"] = D.world_size()
    sections["evaluated_checkpoint"] = ctx.checkpoint
    sections["evaluate_config"] = ecfg.model_dump(mode="json")
    return sections


def knn_sections(model: torch.nn.Module, cfg: Any, bundle: DataBundle, ecfg: EvalConfig) -> list[dict[str, Any]]:
    """k-NN (k = 5) on training embeddings of a circle-loss run, clean and under each attack at each
    eps; the attacks are computed through the model's cross-entropy head (the kNN has no gradient)."""
    from robustlab.attacks import build_attack
    from robustlab.defenses import KNNClassifier, knn_under_attack

    test = bundle.test if ecfg.n_samples is None else rdata.subset(bundle.test, min(ecfg.n_samples, len(bundle.test)))
    knn = KNNClassifier(k=5).fit(model, bundle.train)
    rows = []
    for name in [a for a in ecfg.attacks if a in ("fgsm", "pgd")]:
        for eps in ecfg.eps:
            params: dict[str, Any] = {"eps": eps, "norm": ecfg.norm}
            if name == "pgd":
                params.update(steps=ecfg.steps, alpha=ecfg.alpha_ratio * eps)
            res = knn_under_attack(model, knn, test, build_attack(name, **params), batch_size=cfg.data.eval_batch_size)
            rows.append({"attack": name, "eps": eps, "knn_clean": res["clean"], "knn_adversarial": res["adversarial"],
                         "head_clean": res["head_clean"], "head_adversarial": res["head_adversarial"],
                         "note": "attack computed through the cross-entropy head on the same embeddings"})
    return rows


def cross_domain_accuracy(
    model: torch.nn.Module, cfg: Any, bundle: DataBundle, names: list[str], device: torch.device, smoke: bool = False
) -> list[dict[str, Any]]:
    """Test accuracy of ``model`` on other datasets' test splits, converted to the model's input
    (channels by repetition or luminance, size by bilinear resizing); the source dataset first."""
    c, h, _ = bundle.info.shape
    bs = cfg.data.eval_batch_size
    rows = [{"dataset": bundle.info.name, "accuracy": dataset_accuracy(model, bundle.test, bs, device),
             "role": "source"}]
    for name in names:
        info = rdata.dataset_info(name)
        if info.num_classes != bundle.info.num_classes:
            raise RobustlabError(
                f"cross-domain dataset {name} has {info.num_classes} classes, the model {bundle.info.num_classes}"
            )
        if smoke:
            test = fabricated_dataset(info, 64, cfg.seed, "test")
        else:
            root = Path(cfg.data.root) if cfg.data.root else None
            test = rdata.load_dataset(name, "test", root=root, download=cfg.data.download)
            if cfg.data.test_subset:
                test = rdata.subset(test, cfg.data.test_subset, seed=cfg.seed)
        test = rdata.adapt(test, c, (h, h))
        rows.append({"dataset": name, "accuracy": dataset_accuracy(model, test, bs, device), "role": "target"})
    return rows
