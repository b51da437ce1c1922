"""Image classification as a lab: cross-entropy training with any defense, the robustness audit,
Grad-CAM / UMAP / adversarial-grid explanations, and the robustness report sections."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from robustlab.core.errors import RobustlabError
from robustlab.data.bundle import DataBundle
from robustlab.data.prepare import info_from_meta, info_meta, prepare_data
from robustlab.labs.base import Lab, RunContext
from robustlab.labs.classification.config import ClassificationConfig
from robustlab.labs.classification.task import ClassificationTask
from robustlab.report.section import Section
from robustlab.training.callbacks import Callback
from robustlab.training.metrics import Metric
from robustlab.training.step import StepStrategy


class ClassificationLab(Lab):
    """Image classifiers (pixels in [0, 1], normalisation inside the model) and their robustness."""

    name = "classification"
    description = "image classification (cross-entropy, accuracy); defenses, robustness audit, Grad-CAM, UMAP"
    config_model = ClassificationConfig
    smoke_defaults: ClassVar[dict[str, Any]] = {"evaluate": {"sanity_samples": 16, "n_examples": 4}}

    # -- checks -------------------------------------------------------------------------------------
    def check(self, cfg: ClassificationConfig) -> None:
        """Every registry name in ``cfg`` (dataset, model, defense and its parameters, augmentation,
        attacks, cross-domain datasets) exists, so a typo fails before any folder is created."""
        from robustlab import data as rdata
        from robustlab.defenses import DEFENSES, defense_params
        from robustlab.models.registry import MODELS

        rdata.dataset_info(cfg.data.dataset)
        MODELS.get(cfg.model.name)
        DEFENSES.get(cfg.defense.name)
        allowed = defense_params(cfg.defense.name)
        for p in cfg.defense.params:
            if p not in allowed:
                raise RobustlabError(
                    f"unknown parameter {p!r} for defense {DEFENSES.key(cfg.defense.name)}; "
                    f"allowed: {', '.join(allowed) or '(none)'}"
                )
        rdata.augmentation(cfg.data.augmentation)
        check_attack_names(cfg.evaluate.attacks)
        for name in cfg.evaluate.cross_domain:
            rdata.dataset_info(name)

    def check_evaluate_options(self, cfg: ClassificationConfig, options: dict[str, Any]) -> None:
        """``options`` (attacks, eps, norm, steps, ...) must make a valid ``evaluate`` section."""
        from robustlab.labs.classification.audit import eval_config

        check_attack_names(eval_config(cfg, options).attacks)

    def smoke_overrides(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Under --smoke a classifier becomes a width-8 ``small_cnn`` (same input shape and classes, same
        batch-norm/dropout switches, no pretrained file): the smoke run checks the recipe's wiring in
        seconds; every architecture is tested on its own in the model tests."""
        model = dict(raw.get("model", {}))
        raw = dict(raw)
        raw["model"] = {"name": "small_cnn", "options": {"width": 8},
                        **{k: model[k] for k in ("batchnorm", "dropout") if k in model}}
        return raw

    # -- training -----------------------------------------------------------------------------------
    def build_data(self, cfg: ClassificationConfig, smoke: bool = False) -> DataBundle:
        return prepare_data(cfg, smoke=smoke)

    def model_meta(self, cfg: ClassificationConfig, data: DataBundle) -> dict[str, Any]:
        return info_meta(data.info)

    def load_initial_weights(self, model: nn.Module, path: str) -> None:
        """A robustlab checkpoint (the head kept when it fits) or an upstream torchvision/timm state
        dict (its classification head dropped)."""
        from robustlab.models import load_pretrained

        load_pretrained(model, path)

    def build_model(self, cfg: ClassificationConfig, meta: dict[str, Any]) -> nn.Module:
        """The model ``cfg.model`` names, sized for the data (channels, image size, classes, mean/std)."""
        from robustlab.models import build_model

        info = info_from_meta(meta)
        m = cfg.model
        mean, std = info.mean, info.std
        if len(mean) != info.channels:  # channels were adapted: use the average statistics
            mean = (sum(mean) / len(mean),) * info.channels
            std = (sum(std) / len(std),) * info.channels
        return build_model(
            m.name, info.num_classes, in_channels=info.channels, image_size=info.image_size[0], mean=mean, std=std,
            batchnorm=m.batchnorm, dropout=m.dropout, pretrained=m.pretrained, **m.options,
        )

    def build_task(self, cfg: ClassificationConfig, meta: dict[str, Any]) -> ClassificationTask:
        """Cross-entropy with the config's label smoothing; accuracy, monitored upwards."""
        return ClassificationTask(int(meta["num_classes"]), label_smoothing=cfg.train.label_smoothing)

    def metrics(self, cfg: ClassificationConfig, meta: dict[str, Any]) -> list[Metric]:
        """None beyond the task's loss and accuracy (exact sums)."""
        return []

    def build_strategy(self, cfg: ClassificationConfig) -> StepStrategy:
        from robustlab.defenses import build_defense

        return build_defense(cfg.defense.name, **cfg.defense.params)

    def callbacks(self, cfg: ClassificationConfig, strategy: StepStrategy) -> list[Callback]:
        """PGD robust validation for adversarial defenses (``train.robust_val_samples`` images)."""
        eps = getattr(strategy, "eps", None)
        if not getattr(strategy, "robust_validation", False) or not cfg.train.robust_val_samples or not eps:
            return []
        from robustlab.defenses.robust_validation import RobustValidation

        return [RobustValidation(float(eps), getattr(strategy, "norm", "linf"), cfg.train.robust_val_samples)]

    def monitor(self, cfg: ClassificationConfig, strategy: StepStrategy) -> str | None:
        """The defense's preferred monitor (robust validation accuracy, or FGSM-RS's guard)."""
        return getattr(strategy, "preferred_monitor", None)

    def training_results(
        self, cfg: ClassificationConfig, data: DataBundle, test: dict[str, float], strategy: StepStrategy
    ) -> dict[str, Any]:
        """Dataset, model, defense, test loss and ``clean_accuracy`` (the test accuracy), test size."""
        test = dict(test)
        if "test_accuracy" in test:
            test["clean_accuracy"] = test.pop("test_accuracy")
        return {"dataset": data.info.name, "model": cfg.model.name, "defense": strategy.describe(), **test,
                "test_size": len(data.test)}

    # -- after training -----------------------------------------------------------------------------
    def evaluate(self, ctx: RunContext) -> dict[str, Any]:
        """The robustness audit (see :func:`robustlab.labs.classification.audit.robustness_audit`)."""
        from robustlab.labs.classification.audit import robustness_audit

        model = self.load_model(ctx)
        return robustness_audit(ctx, model, self.build_data(ctx.cfg, smoke=ctx.smoke))

    def explain(self, ctx: RunContext) -> dict[str, str]:
        """Grad-CAM on clean and adversarial images (beside ``options["other"]``'s model when given),
        UMAP of penultimate features and an adversarial-example grid, at the largest evaluated eps."""
        from robustlab.explain import explain_run

        cfg = ctx.cfg
        model = self.load_model(ctx)
        bundle = self.build_data(cfg, smoke=ctx.smoke)
        other = ctx.options.get("other")
        other_pair = None
        if other is not None:
            other_lab = other.options.get("lab", self)
            other_pair = (other.cfg.name, other_lab.load_model(other))
        eps = max(cfg.evaluate.eps) if cfg.evaluate.eps else 8 / 255
        n_images = int(ctx.options.get("n_images", 8))
        with torch.random.fork_rng():
            return explain_run(
                ctx.run.path, model, bundle.test, n_images=min(n_images, 4) if ctx.smoke else n_images, eps=eps,
                other=other_pair, name=cfg.name, train_dataset=bundle.train, umap_points=96 if ctx.smoke else 1500,
                attack_params={"steps": cfg.evaluate.steps, "alpha": cfg.evaluate.alpha_ratio * eps},
            )

    def report_sections(self, run_dir: Path, config: dict[str, Any], results: dict[str, Any]) -> list[Section]:
        from robustlab.labs.classification.report import robustness_sections

        return robustness_sections(run_dir, config, results)

    def compare(self, run_dirs: list[Path], out: Path, title: str | None = None) -> Path:
        """The robustness comparison: a row per run, before/after tables, overlaid curves (or the
        same tables as Markdown when ``out`` ends in ``.md``)."""
        from robustlab.core.io import atomic_write_text
        from robustlab.labs.classification.compare import compare_markdown, compare_report

        if out.suffix.lower() == ".md":
            return atomic_write_text(out, compare_markdown(run_dirs, title=title))
        return compare_report(run_dirs, out, title=title)

    def summary(self, results: dict[str, Any]) -> str:
        parts = []
        if isinstance(results.get("clean_accuracy"), float):
            parts.append(f"clean {results['clean_accuracy']:.4f}")
        rows = results.get("worst_case")
        for row in rows if isinstance(rows, list) else []:
            if isinstance(row, dict) and isinstance(row.get("eps"), int | float) and isinstance(
                    row.get("accuracy"), int | float):
                parts.append(f"worst-case@{row['eps']:.4g} {row['accuracy']:.4f}")
        flags = results.get("flags")
        parts.append(f"flags {len(flags) if isinstance(flags, list) else 0}")
        return ", ".join(parts)


def check_attack_names(names: list[str]) -> None:
    """Every name is a registered attack or ``torchattacks:<Class>``; else the one-line choice error."""
    from robustlab.attacks import attack_class

    for name in names:
        attack_class(name)


LAB = ClassificationLab()
