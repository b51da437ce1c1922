"""The ``diffusion`` lab on the shared trainer: a text-conditional pixel-space diffusion model on the
digits trained for classifier-free guidance (condition dropout, EMA), its guidance-scale study, and
DreamBooth on a subject the base model never saw — with and without prior preservation — scored with
judges trained on real data (no downloads)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from robustlab.core import distributed as D
from robustlab.core.config import unset_variable
from robustlab.data.bundle import DataBundle
from robustlab.labs.base import Lab, RunContext
from robustlab.labs.diffusion.config import DiffusionConfig
from robustlab.labs.diffusion.model import build_diffusion
from robustlab.labs.diffusion.prepare import CHANNELS, IMAGE_SIZE, build_bundle, prompt_words
from robustlab.labs.diffusion.task import DiffusionTask
from robustlab.report.section import Section
from robustlab.training.callbacks import Callback
from robustlab.training.metrics import Metric


class DiffusionLab(Lab):
    name = "diffusion"
    description = ("text-conditional diffusion with classifier-free guidance (guidance-scale study) and DreamBooth "
                   "with/without prior preservation, judged without downloads")
    config_model = DiffusionConfig
    smoke_defaults = {  # noqa: RUF012 - a class-level constant of the lab
        "train": {"max_steps": 4, "val_every": None, "epochs": 1000, "ema": None},
        "model": {"channels": [8, 16], "text_dim": 16, "text_layers": 1, "text_heads": 2, "attention_head_dim": 4},
        "data": {"num_class_images": 8, "batch_size": 16},
        "evaluate": {"scales": [0.0, 1.0, 3.0], "rescaled": [3.0], "per_prompt": 4, "steps": 2, "judge_epochs": 1},
    }

    def check(self, cfg: DiffusionConfig) -> None:
        """The instance folder holds readable images and a model folder has every component, before
        anything is written."""
        if cfg.data.stage == "dreambooth" and cfg.data.instance == "folder" and not unset_variable(
                cfg.data.instance_dir):
            from robustlab.labs.diffusion.prepare import instance_images

            instance_images(cfg)
        if cfg.model.name == "stable-diffusion" and not unset_variable(cfg.model.pretrained):
            from robustlab.labs.diffusion.pipeline_parts import check_single_token
            from robustlab.labs.diffusion.prepare import load_components_tokenizer

            check_single_token(load_components_tokenizer(cfg.model.pretrained or ""), cfg.data.rare_token)

    def smoke_overrides(self, raw: dict[str, Any]) -> dict[str, Any]:
        """A Stable Diffusion smoke run needs no files: the model folder becomes a tiny randomly
        initialised Stable Diffusion and the instance folder a few fabricated images, both written
        once under ``<data root>/cache/diffusion/smoke/``."""
        model, data = dict(raw.get("model") or {}), dict(raw.get("data") or {})
        if model.get("name") != "stable-diffusion":
            return raw
        from robustlab.labs.diffusion.prepare import smoke_files

        folder, images = smoke_files()
        model["pretrained"], data["instance_dir"], data["resolution"] = str(folder), str(images), 64
        return {**raw, "model": model, "data": data}

    def build_data(self, cfg: DiffusionConfig, smoke: bool = False) -> DataBundle:
        return build_bundle(cfg, smoke)

    def model_meta(self, cfg: DiffusionConfig, data: DataBundle) -> dict[str, Any]:
        if cfg.model.name == "stable-diffusion":
            return {"model_folder": str(Path(cfg.model.pretrained or "").resolve()), "stage": cfg.data.stage,
                    "image_size": cfg.data.resolution, "channels": 3}
        return {"words": prompt_words(cfg), "image_size": IMAGE_SIZE, "channels": CHANNELS, "stage": cfg.data.stage}

    def build_model(self, cfg: DiffusionConfig, meta: dict[str, Any]) -> nn.Module:
        if cfg.model.name == "stable-diffusion":
            # the folder gives the architecture (and the frozen VAE); a trained run's checkpoint then
            # replaces the weights, so the folder named in the meta is read when the config's is cleared
            from robustlab.labs.diffusion.prepare import load_latent_model

            model = load_latent_model(cfg, cfg.model.pretrained or meta["model_folder"]).train()
        else:
            model = build_diffusion(cfg, meta["words"], meta["image_size"], meta["channels"])
        if cfg.data.stage == "dreambooth" and not cfg.model.train_text_encoder:
            model.text_encoder.requires_grad_(False)
        return model

    def callbacks(self, cfg: DiffusionConfig, strategy: Any) -> list[Callback]:
        """DreamBooth on the digits with ``train.val_every``: the overfitting curve."""
        if cfg.data.stage != "dreambooth" or cfg.model.name != "pixel-unet" or not cfg.train.val_every:
            return []
        from robustlab.labs.diffusion.curve import DreamBoothCurve
        from robustlab.labs.diffusion.prepare import instance_images

        return [DreamBoothCurve(cfg, instance_images(cfg))]

    def build_task(self, cfg: DiffusionConfig, meta: dict[str, Any]) -> DiffusionTask:
        if cfg.model.name == "stable-diffusion":
            from robustlab.labs.diffusion.prepare import load_components_tokenizer

            tok = load_components_tokenizer(cfg.model.pretrained or meta["model_folder"])
        else:
            from robustlab.labs.diffusion.model import build_tokenizer

            tok = build_tokenizer(meta["words"])
        uncond = tok([""], padding="max_length", max_length=tok.model_max_length, return_tensors="pt").input_ids[0]
        return DiffusionTask(uncond, cfg.data.p_uncond, cfg.data.stage == "dreambooth", cfg.data.prior_weight)

    def metrics(self, cfg: DiffusionConfig, meta: dict[str, Any]) -> list[Metric]:
        return []

    def training_results(self, cfg: DiffusionConfig, data: DataBundle, test: dict[str, float],
                         strategy: Any) -> dict[str, Any]:
        return {"dataset": cfg.data.dataset, "stage": cfg.data.stage, "data": data.info.description, **test}

    def evaluate(self, ctx: RunContext) -> dict[str, Any]:
        if not D.is_main():
            return {}
        from robustlab.labs.diffusion.audit import audit

        return audit(ctx, self.load_model(_final(ctx)))

    def explain(self, ctx: RunContext) -> dict[str, str]:
        from robustlab.labs.diffusion.audit import sample_grids

        return sample_grids(ctx, self.load_model(_final(ctx)))

    def report_sections(self, run_dir: Path, config: dict[str, Any], results: dict[str, Any]) -> list[Section]:
        from robustlab.labs.diffusion.report import run_sections

        return run_sections(run_dir, results)

    def summary(self, results: dict[str, Any]) -> str:
        g = results.get("guidance")
        if isinstance(g, dict) and g.get("rows"):
            rows = {r["scale"]: r for r in g["rows"] if not r.get("rescale")}
            best = g.get("balanced_scale")
            one = rows.get(1.0, {})
            top = rows.get(best, {})
            return (f"judge accuracy {one.get('judge_accuracy', float('nan')):.3f} unguided (scale 1), "
                    f"{top.get('judge_accuracy', float('nan')):.3f} at scale {best} "
                    f"(FD {top.get('fd', float('nan')):.2f}, recall {top.get('recall', float('nan')):.3f})")
        db = results.get("dreambooth")
        if isinstance(db, dict) and isinstance(db.get("after"), dict) and "measures" in db:
            a, b = db["after"], db.get("before") or {}
            return (f"instance distance {b.get('instance_distance', float('nan')):.3f} → "
                    f"{a.get('instance_distance', float('nan')):.3f}, class drift "
                    f"{a.get('class_drift', float('nan')):.3f}, copying {a.get('copy_fraction', float('nan')):.3f} "
                    "(pixel proxies)")
        if isinstance(db, dict) and db.get("after"):
            a, b = db["after"], db.get("before") or {}
            return (f"concept fidelity {b.get('concept_fidelity', float('nan')):.3f} → {a['concept_fidelity']:.3f}, "
                    f"language drift {a['language_drift']:.3f}, copying {a.get('copy_fraction', float('nan')):.3f}")
        if isinstance(results.get("test_loss"), float):
            return f"test loss {results['test_loss']:.4f} (not audited yet)"
        return "not evaluated"


def _final(ctx: RunContext) -> RunContext:
    """A DreamBooth run is judged at its last step: it has no validation data, and a "best" chosen on
    the training loss of a few instance images would be the most overfitted point."""
    return replace(ctx, checkpoint="last") if ctx.cfg.data.stage == "dreambooth" else ctx


LAB = DiffusionLab()
