"""The ``frozen`` lab on the shared trainer: a frozen DINOv2-architecture backbone, one trained
attention layer on its cached tokens to detect solar panels in aerial tiles, panel area read from
that layer's attention, and the audit of both under attack. A ``pretrain`` stage trains the
backbone itself without panel labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustlab.core import distributed as D
from robustlab.core.checkpoint import load_model_state, read_state_dict
from robustlab.core.config import unset_variable
from robustlab.core.errors import RobustlabError
from robustlab.core.io import read_json
from robustlab.data.bundle import DataBundle
from robustlab.labs.base import Lab, RunContext
from robustlab.labs.frozen.config import PATCH, FrozenConfig
from robustlab.labs.frozen.head import AttentionHead
from robustlab.labs.frozen.model import DescriptorPretrainer, FrozenFeatureClassifier
from robustlab.labs.frozen.prepare import backbone_name, build_backbone, build_bundle, load_backbone, tile_data
from robustlab.labs.frozen.task import DescriptorTask, HeadTask
from robustlab.report.section import Section
from robustlab.training.metrics import Metric

PRETRAIN_OBJECTIVE = ("dense descriptor regression on panel-free tiles: each patch token predicts its patch's RGB "
                      "mean and standard deviation and mean |horizontal/vertical gradient| and |Laplacian| of the "
                      "luminance (hand-made targets as in MaskFeat, no masking, no labels)")


class FrozenFeaturesLab(Lab):
    name = "frozen"
    description = ("frozen DINOv2 tokens + one attention layer: solar panels in aerial tiles, panel area from "
                   "attention, attacks through the frozen backbone")
    config_model = FrozenConfig
    smoke_defaults = {  # noqa: RUF012 - a class-level constant of the lab
        "data": {"train_tiles": 48, "test_tiles": 32, "size": 56, "calibration_tiles": 8},
        "model": {"embed_dim": 48, "depth": 2, "heads": 3, "dim": 32, "head_heads": 2},
        "train": {"epochs": 2, "max_steps": None, "val_every": None, "patience": None},
        "evaluate": {"n_samples": 8, "steps": 2, "figures": 2},
    }

    def smoke_overrides(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Smoke runs need no files: the user's tiles become procedural ones and a local DINOv2
        file a random-init backbone of the same architecture."""
        data, model = dict(raw.get("data") or {}), dict(raw.get("model") or {})
        if data.get("dataset") == "folder":
            data = {k: v for k, v in data.items() if k not in ("images", "masks", "areas_csv", "gsd")}
            data["dataset"] = "procedural"
        if model.get("backbone") == "dinov2-local":
            model["backbone"], model["pretrained"] = "random-init", None
        return {**raw, "data": data, "model": model}

    def check(self, cfg: FrozenConfig) -> None:
        """The user's folders exist and a local weights file fits the architecture (read and
        converted before anything is written)."""
        d = cfg.data
        if d.dataset == "folder" and not (unset_variable(d.images) or unset_variable(d.masks)):
            from robustlab.labs.frozen.folders import check_tile_folder

            check_tile_folder(d.images or "", d.masks or "")
            if d.areas_csv and not unset_variable(d.areas_csv) and not Path(d.areas_csv).is_file():
                raise RobustlabError(f"data.areas_csv {d.areas_csv} does not exist")
        if cfg.model.backbone == "dinov2-local" and not unset_variable(cfg.model.pretrained):
            if not Path(cfg.model.pretrained or "").is_file():
                raise RobustlabError(f"model.pretrained {cfg.model.pretrained} does not exist (the local DINOv2 "
                                     "weights: the original .pth or a timm .safetensors)")
            build_backbone(cfg, with_init=False)

    def build_data(self, cfg: FrozenConfig, smoke: bool = False) -> DataBundle:
        return build_bundle(cfg, smoke)

    def model_meta(self, cfg: FrozenConfig, data: DataBundle) -> dict[str, Any]:
        tiles = data.extras["tiles"]
        meta: dict[str, Any] = {"stage": cfg.data.stage, "backbone": backbone_name(cfg), "gsd": tiles.gsd,
                                "patch_area_m2": tiles.patch_area_m2, "classes": ["no panels", "panels"]}
        if cfg.data.stage == "pretrain":
            meta["descriptor_mean"], meta["descriptor_std"] = data.extras["descriptor_stats"]
        return meta

    def build_model(self, cfg: FrozenConfig, meta: dict[str, Any]) -> nn.Module:
        backbone = build_backbone(cfg, with_init=False)
        if cfg.data.stage == "pretrain":
            return DescriptorPretrainer(backbone)
        m = cfg.model
        head = AttentionHead(backbone.layout, backbone.dim, m.dim, m.head_heads, m.mlp_ratio, m.dropout, 2,
                             m.attend_registers)
        return FrozenFeatureClassifier(backbone, head, arch=m.arch)

    def load_initial_weights(self, model: nn.Module, path: str) -> None:
        """A head run starts from another run's backbone (the pretrain stage's, or a head run's whole
        model when the file holds a head that fits); a pretrain run from a whole checkpoint."""
        if isinstance(model, FrozenFeatureClassifier):
            state = read_state_dict(path)
            if any(k.startswith("head.") for k in state):
                load_model_state(model, state, path)
            else:
                load_backbone(model.backbone, path)
            return
        super().load_initial_weights(model, path)

    def build_task(self, cfg: FrozenConfig, meta: dict[str, Any]) -> HeadTask | DescriptorTask:
        if cfg.data.stage == "pretrain":
            return DescriptorTask(meta["descriptor_mean"], meta["descriptor_std"], PATCH)
        return HeadTask()

    def metrics(self, cfg: FrozenConfig, meta: dict[str, Any]) -> list[Metric]:
        return []

    def training_results(self, cfg: FrozenConfig, data: DataBundle, test: dict[str, float],
                         strategy: Any) -> dict[str, Any]:
        tiles = data.extras["tiles"]
        out = {"dataset": cfg.data.dataset, "stage": cfg.data.stage, "backbone": backbone_name(cfg),
               "data": {"source": tiles.source, "sizes": {k: len(t) for k, t in tiles.splits.items()},
                        "positives": {k: int(t.labels.sum()) for k, t in tiles.splits.items()}}, **test}
        if cfg.data.stage == "pretrain":
            out["objective"] = PRETRAIN_OBJECTIVE
        else:
            out["feature_cache"] = data.extras.get("cache", {})
        return out

    def evaluate(self, ctx: RunContext) -> dict[str, Any]:
        if not D.is_main():
            return {}
        if ctx.cfg.data.stage == "pretrain":
            res = ctx.run.results()
            return {"frozen_pretrain": {"objective": PRETRAIN_OBJECTIVE, "test_loss": res.get("test_loss")}}
        from robustlab.labs.frozen.audit import audit

        model = self.load_model(ctx)
        return audit(ctx.run, model, ctx.cfg, tile_data(ctx.cfg, ctx.smoke), ctx.device)

    def explain(self, ctx: RunContext) -> dict[str, str]:
        if ctx.cfg.data.stage == "pretrain":
            return {}
        from robustlab.labs.frozen import figures
        from robustlab.labs.frozen.audit import attention_maps

        out: dict[str, str] = {}
        m = ctx.run.results().get("frozen") or {}
        area = m.get("area") or {}
        preds = area.get("predictions")
        if preds:
            figures.area_scatter(preds["true_m2"], {area.get("headline", "headline"): preds["headline_m2"],
                                                    "attention mass (count)": preds["mass_m2"]},
                                 ctx.run.figures / "area.png")
            out["area"] = "figures/area.png"
        if m.get("area_under_attack"):
            figures.area_under_attack(m["area_under_attack"], ctx.run.figures / "attack.png")
            out["attack"] = "figures/attack.png"
        n = ctx.cfg.evaluate.figures
        if n:
            model = self.load_model(ctx)
            test = tile_data(ctx.cfg, ctx.smoke).splits["test"]
            order = test.areas.argsort(descending=True)
            pick = order[: max(1, n // 2)].tolist() + (test.labels == 0).nonzero().squeeze(1)[: n - n // 2].tolist()
            tiles = test.subset(torch.as_tensor(pick[:n]))
            maps = attention_maps(model, tiles, ctx.device)
            titles = [f"{float(a):.0f} m²" if int(y) else "no panels" for a, y in zip(tiles.areas, tiles.labels,
                                                                                     strict=True)]
            figures.attention_tiles(tiles.images.numpy(), maps, tiles.masks.numpy(), titles,
                                    ctx.run.figures / "attention.png")
            out["attention"] = "figures/attention.png"
        return out

    def report_sections(self, run_dir: Path, config: dict[str, Any], results: dict[str, Any]) -> list[Section]:
        from robustlab.labs.frozen.report import run_sections

        return run_sections(run_dir, results)

    def compare(self, run_dirs: list[Path], out: Path, title: str | None = None) -> Path:
        """The default page; as Markdown (``out`` ending in ``.md``) the backbones × estimators table."""
        if out.suffix.lower() != ".md":
            return super().compare(run_dirs, out, title)
        from robustlab.core.io import atomic_write_text
        from robustlab.labs.frozen.report import comparison_markdown

        docs = [(d.name, read_json(d / "results.json") if (d / "results.json").is_file() else {}, {})
                for d in run_dirs]
        return atomic_write_text(out, comparison_markdown(docs, title))

    def summary(self, results: dict[str, Any]) -> str:
        m = results.get("frozen")
        if isinstance(m, dict):
            c = m.get("classification") or {}
            area = m.get("area") or {}
            head = (area.get("estimators") or {}).get(area.get("headline", ""), {})
            worst = results.get("worst_case") or []
            robust = ", ".join(f"robust {r['accuracy']:.3f} at {r['eps_255']:g}/255" for r in worst
                               if isinstance(r.get("accuracy"), float))
            sp, mae, base = head.get("spearman"), head.get("mae_m2"), head.get("baseline_mae_m2")
            area_text = (f"area Spearman {sp:.3f}, MAE {mae:.1f} vs {base:.1f} m² (mean baseline)"
                         if isinstance(sp, float) and isinstance(mae, float) and isinstance(base, float)
                         else "area –")
            return f"{m.get('backbone')}: accuracy {c.get('accuracy', float('nan')):.3f}, {area_text}" + (
                f", {robust}" if robust else "")
        if "frozen_pretrain" in results or results.get("stage") == "pretrain":
            return f"backbone pretraining: test descriptor loss {results.get('test_loss', float('nan')):.4f}"
        if isinstance(results.get("test_accuracy"), float):
            return f"test accuracy {results['test_accuracy']:.3f} (not audited yet)"
        return "not evaluated"


LAB = FrozenFeaturesLab()
