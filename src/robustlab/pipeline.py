"""The stages after training: evaluate → explain → report, on a run folder.

Each stage reads what the previous ones left in the folder, so each can also run alone from the
CLI (``robustlab evaluate``, ``explain``, ``report``) on an existing run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from robustlab.config import EvalConfig
from robustlab.core.errors import RobustlabError
from robustlab.core.progress import log
from robustlab.core.runs import RunDir
from robustlab.core.seeding import resolve_device
from robustlab.experiment import load_run_config, load_run_model
from robustlab.tasks.registry import get_task_family


def evaluate_run(
    run_dir: str | Path, overrides: dict[str, Any] | None = None, device: str = "auto", checkpoint: str = "best"
) -> dict[str, Any]:
    """Run the robustness audit of ``run_dir``'s ``checkpoint`` (``best`` or ``last``) with its
    config's ``evaluate`` section updated by ``overrides``; merge the numbers into its ``results.json``,
    write the per-sample outcomes to ``per_sample.safetensors`` (see :mod:`robustlab.evaluation.samples`);
    return the results document.

    Under torchrun every rank evaluates whole batches of its own and the outcomes are gathered, so the
    numbers and per-sample outcomes are those of one process; rank 0 alone writes the folder (other
    ranks return the evaluation sections without the rest of ``results.json``).
    """
    from robustlab.core import distributed as D

    if checkpoint not in ("best", "last"):
        raise RobustlabError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    run = RunDir.open(run_dir)
    dev = resolve_device(device)
    D.init_from_env(dev.type)
    dev = D.local_device(dev)
    model, cfg, bundle = load_run_model(run, checkpoint, device=dev)
    smoke = load_run_config(run)[1]
    family = get_task_family(cfg.task)
    if family.evaluate is not None:
        if not D.is_main():  # task families with their own evaluation run it on rank 0 only
            return {}
        return run.update_results(**family.evaluate(run, model, cfg, bundle, dev))
    from robustlab.evaluation import evaluate_robustness
    from robustlab.evaluation.samples import FILENAME, save_per_sample

    ecfg = EvalConfig.model_validate({**cfg.evaluate.model_dump(), **(overrides or {})})
    if D.is_main():
        run.acquire_lock()
    try:
        result = evaluate_robustness(
            model, bundle.test, ecfg, device=dev, batch_size=cfg.data.eval_batch_size, seed=cfg.seed,
            amp=cfg.train.amp, state_path=run.path / "checkpoints" / "eval_state.pt",
            sanity_samples=ecfg.sanity_samples, n_examples=ecfg.n_examples,
        )
        sections = result.to_json()
        if not D.is_main():
            return sections
        if cfg.defense.name == "circle":
            sections["knn"] = knn_sections(model, cfg, bundle, ecfg)
        if ecfg.cross_domain:
            sections["cross_domain"] = cross_domain_accuracy(model, cfg, bundle, ecfg.cross_domain, dev, smoke)
        save_per_sample(result, run.path / FILENAME, ecfg.per_attack)
        sections["per_sample_file"] = FILENAME
        sections["eval_processes"] = D.world_size()
        sections["evaluated_checkpoint"] = checkpoint
        doc = run.update_results(**sections, evaluate_config=ecfg.model_dump(mode="json"))
    finally:
        if D.is_main():
            run.release_lock()
    for flag in doc.get("flags", []):
        log.warning("sanity flag [%s] %s — remedy: %s", flag["code"], flag["message"], flag["remedy"])
    return doc


def knn_sections(model: torch.nn.Module, cfg, bundle, ecfg: EvalConfig) -> list[dict[str, Any]]:
    """k-NN (k = 5) on training embeddings of a circle-loss run, clean and under each attack at each
    eps; the attacks are computed through the model's cross-entropy head (the kNN has no gradient)."""
    from robustlab import data as rdata
    from robustlab.attacks import build_attack
    from robustlab.defenses import KNNClassifier, knn_under_attack

    test = bundle.test if ecfg.n_samples is None else rdata.subset(bundle.test, min(ecfg.n_samples, len(bundle.test)))
    knn = KNNClassifier(k=5).fit(model, bundle.train)
    rows = []
    for name in [a for a in ecfg.attacks if a in ("fgsm", "pgd")]:
        for eps in ecfg.eps:
            params = {"eps": eps, "norm": ecfg.norm}
            if name == "pgd":
                params.update(steps=ecfg.steps, alpha=ecfg.alpha_ratio * eps)
            res = knn_under_attack(model, knn, test, build_attack(name, **params), batch_size=cfg.data.eval_batch_size)
            rows.append({"attack": name, "eps": eps, "knn_clean": res["clean"], "knn_adversarial": res["adversarial"],
                         "head_clean": res["head_clean"], "head_adversarial": res["head_adversarial"],
                         "note": "attack computed through the cross-entropy head on the same embeddings"})
    return rows


def cross_domain_accuracy(
    model: torch.nn.Module, cfg, bundle, names: list[str], device: torch.device, smoke: bool = False
) -> list[dict[str, Any]]:
    """Test accuracy of ``model`` on other datasets' test splits, converted to the model's input
    (channels by repetition or luminance, size by bilinear resizing); the source dataset first."""
    from robustlab import data as rdata
    from robustlab.experiment import accuracy, fabricated_dataset

    c, h, _ = bundle.info.shape
    rows = [{"dataset": bundle.info.name, "accuracy": accuracy(model, bundle.test, cfg.data.eval_batch_size, device),
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
        rows.append({"dataset": name, "accuracy": accuracy(model, test, cfg.data.eval_batch_size, device),
                     "role": "target"})
    return rows


def explain_run_dir(
    run_dir: str | Path, other: str | Path | None = None, n_images: int = 8, device: str = "auto"
) -> dict[str, str]:
    """Grad-CAM (clean and adversarial, optionally beside a second run's model), UMAP and an
    adversarial-example grid into ``run_dir/figures``; record them under ``results.json["figures"]``."""
    run = RunDir.open(run_dir)
    dev = resolve_device(device)
    model, cfg, bundle = load_run_model(run, device=dev)
    family = get_task_family(cfg.task)
    if family.explain is not None:
        figures = family.explain(run, model, cfg, bundle, dev)
        run.update_results(figures={**run.results().get("figures", {}), **figures})
        return figures
    from robustlab.explain import explain_run

    other_pair = None
    if other is not None:
        other_run = RunDir.open(other)
        other_model, other_cfg, _ = load_run_model(other_run, device=dev)
        other_pair = (other_cfg.name, other_model)
    eps = max(cfg.evaluate.eps) if cfg.evaluate.eps else 8 / 255
    smoke = load_run_config(run)[1]
    with torch.random.fork_rng():
        figures = explain_run(
            run.path, model, bundle.test, n_images=min(n_images, 4) if smoke else n_images, eps=eps,
            other=other_pair, name=cfg.name, train_dataset=bundle.train, umap_points=96 if smoke else 1500,
            attack_params={"steps": cfg.evaluate.steps, "alpha": cfg.evaluate.alpha_ratio * eps},
        )
    doc = run.results()
    merged = {**doc.get("figures", {}), **figures}
    run.update_results(figures=merged)
    return merged


def report_run(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` from what the folder holds."""
    from robustlab.report import build_report

    return build_report(Path(run_dir))


def compare_runs(run_dirs: list[str | Path], out: str | Path, title: str | None = None) -> Path:
    """One report across several run folders: HTML, or Markdown tables when ``out`` ends in ``.md``."""
    from robustlab.core.io import atomic_write_text
    from robustlab.report import compare_markdown, compare_report

    for r in run_dirs:
        RunDir.open(r)
    if Path(out).suffix.lower() == ".md":
        return atomic_write_text(out, compare_markdown([Path(r) for r in run_dirs], title=title))
    return compare_report([Path(r) for r in run_dirs], Path(out), title=title)
