"""The ``captioning`` lab on the shared trainer: images → an encoder grid → an attention LSTM
("Show, Attend and Tell") → captions in English or Persian, validated by free-running BLEU-4; the
audit decodes greedily and with beams, scores BLEU/CIDEr-D honestly (cross-checked), scores the
attention against the scenes' ground truth and attacks the captioner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from robustlab.core import distributed as D
from robustlab.core.checkpoint import load_checkpoint, read_state_dict
from robustlab.core.config import unset_variable
from robustlab.core.errors import RobustlabError
from robustlab.data.bundle import DataBundle
from robustlab.labs.base import Lab, RunContext
from robustlab.labs.captioning.config import CaptioningConfig
from robustlab.labs.captioning.decoder import AttentionDecoder
from robustlab.labs.captioning.encoders import Encoder
from robustlab.labs.captioning.model import Captioner, CellClassifier
from robustlab.labs.captioning.prepare import (
    build_bundle,
    build_encoder,
    caption_corpus,
    encoder_description,
    load_encoder_from,
    reads_features,
)
from robustlab.labs.captioning.task import (
    AdversarialCaptionTraining,
    CaptionTask,
    CellTask,
    FreeRunningBleu,
    ScheduledSampling,
)
from robustlab.labs.captioning.text import length_histogram, top_words
from robustlab.report.section import Section
from robustlab.training.metrics import Metric
from robustlab.training.step import StepStrategy


class CaptioningLab(Lab):
    name = "captioning"
    description = "attention LSTM captioner (EN/FA): free-running BLEU, beam search, scored attention, attacks"
    config_model = CaptioningConfig
    smoke_defaults = {  # noqa: RUF012 - a class-level constant of the lab
        "data": {"size": 32, "batch_size": 16, "eval_batch_size": 16},
        "model": {"width": 16, "attention_dim": 16, "embed_dim": 16, "decoder_dim": 24},
        "train": {"epochs": 1, "max_steps": None, "val_every": None, "patience": None},
        "evaluate": {"beams": [2], "max_length": 12, "eps": [4 / 255], "steps": 2, "n_samples": 6, "figures": 2},
    }

    def smoke_overrides(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Smoke runs need no files: user captions become procedural scenes and a local encoder the
        small CNN."""
        data = dict(raw.get("data") or {})
        if data.get("dataset") in ("coco", "fashion"):
            data.update({"dataset": "shapes", "captions": None, "images": None})
        model = dict(raw.get("model") or {})
        if model.get("weights") == "local" or model.get("encoder", "small-cnn") != "small-cnn":
            model.update({"encoder": "small-cnn", "weights": "random", "pretrained": None})
        return {**raw, "data": data, "model": model}

    def check(self, cfg: CaptioningConfig) -> None:
        """The caption file and image folder readable, the local encoder weights present and fitting —
        one-line errors before anything is written."""
        d = cfg.data
        if d.dataset == "coco" and not (unset_variable(d.captions) or unset_variable(d.images)):
            from robustlab.labs.captioning.coco import read_caption_file

            if not Path(d.images or "").is_dir():
                raise RobustlabError(f"data.images {d.images} is not a folder (the images the captions describe)")
            read_caption_file(d.captions or "", d.images or "")
        if d.dataset == "fashion":
            from robustlab.data.registry import default_data_root
            from robustlab.labs.captioning.prepare import _fashion_items

            try:
                _fashion_items(False)
            except RobustlabError as e:
                raise RobustlabError(f"dataset fashion needs the Fashion-MNIST files (under {default_data_root()} "
                                     f"or Debian's dataset-fashion-mnist): {e}") from None
        m = cfg.model
        if m.weights == "local" and not unset_variable(m.pretrained):
            if not Path(m.pretrained or "").is_file():
                raise RobustlabError(f"model.pretrained {m.pretrained} does not exist (the encoder's local weights: "
                                     "a torchvision state dict .pth or .safetensors)")
            build_encoder(cfg, with_init=False)

    def build_data(self, cfg: CaptioningConfig, smoke: bool = False) -> DataBundle:
        return build_bundle(cfg, smoke)

    def model_meta(self, cfg: CaptioningConfig, data: DataBundle) -> dict[str, Any]:
        corpus = data.extras["corpus"]
        meta: dict[str, Any] = {"stage": cfg.data.stage, "encoder": encoder_description(cfg),
                                "language": corpus.language, "normaliser": corpus.normaliser}
        if cfg.data.stage == "encoder":
            meta["scene_vocabulary"] = data.extras["scene_vocabulary"]
        else:
            meta.update({"vocabulary": list(data.extras["vocabulary"].itos), "lexicon": list(data.extras["lexicon"]),
                         "min_count": cfg.data.min_count})
        return meta

    def build_model(self, cfg: CaptioningConfig, meta: dict[str, Any]) -> nn.Module:
        m = cfg.model
        tune = "all" if meta["stage"] == "encoder" else m.fine_tune  # the encoder stage trains the encoder
        encoder = Encoder(m.encoder, m.width, tune, m.encoder_seed)
        if m.weights == "local" and m.pretrained:  # training; a trained run's own weights follow
            encoder = build_encoder(cfg, with_init=False)
        if meta["stage"] == "encoder":
            sv = meta["scene_vocabulary"]
            return CellClassifier(encoder, sv["grid"], len(sv["shapes"]), len(sv["colours"]))
        decoder = AttentionDecoder(len(meta["vocabulary"]), encoder.channels, m.embed_dim, m.decoder_dim,
                                   m.attention_dim, m.attention, m.gate, m.dropout)
        return Captioner(encoder, decoder, reads_features=reads_features(cfg))

    def load_initial_weights(self, model: nn.Module, path: str) -> None:
        """A captioner with ``weights: self-pretrained`` takes the encoder of ``path`` (a stage encoder
        run); otherwise every tensor must fit."""
        if isinstance(model, Captioner) and not any(k.startswith("decoder.") for k in read_state_dict(path)):
            load_encoder_from(model.encoder, path)
            return
        super().load_initial_weights(model, path)

    def build_task(self, cfg: CaptioningConfig, meta: dict[str, Any]) -> CaptionTask | CellTask:
        if meta["stage"] == "encoder":
            return CellTask()
        return CaptionTask(cfg.model.alpha_c, cfg.evaluate.max_length, reads_features(cfg))

    def metrics(self, cfg: CaptioningConfig, meta: dict[str, Any]) -> list[Metric]:
        if meta["stage"] == "encoder":
            return []
        return [FreeRunningBleu(tuple(meta["vocabulary"]), tuple(meta["lexicon"]))]

    def build_strategy(self, cfg: CaptioningConfig) -> StepStrategy:
        t = cfg.train
        if cfg.data.stage == "caption" and t.adversarial_eps is not None:
            return AdversarialCaptionTraining(t.adversarial_eps, t.adversarial_steps, t.teacher_forcing,
                                              t.teacher_forcing_min, t.teacher_forcing_k, cfg.seed)
        if cfg.data.stage == "caption" and t.teacher_forcing != "always":
            return ScheduledSampling(t.teacher_forcing, t.teacher_forcing_min, t.teacher_forcing_k)
        return StepStrategy()

    def training_results(self, cfg: CaptioningConfig, data: DataBundle, test: dict[str, float],
                         strategy: Any) -> dict[str, Any]:
        corpus = data.extras["corpus"]
        sizes = {k: len(s) for k, s in corpus.splits.items()}
        out: dict[str, Any] = {"dataset": cfg.data.dataset, "stage": cfg.data.stage,
                               "encoder": encoder_description(cfg), **test}
        info: dict[str, Any] = {"source": corpus.source, "images": sizes, "language": corpus.language,
                                "normaliser": corpus.normaliser}
        if cfg.data.stage == "caption":
            vocab = data.extras["vocabulary"]
            train_caps = [r for refs in corpus.splits["train"].tokens for r in refs]
            info.update({"references": {k: sum(len(r) for r in s.tokens) for k, s in corpus.splits.items()},
                         "vocabulary": len(vocab), "min_count": cfg.data.min_count,
                         "lexicon": len(data.extras["lexicon"]),
                         "coverage": {k: vocab.coverage(r for refs in s.tokens for r in refs)
                                      for k, s in corpus.splits.items() if len(s)},
                         "length_histogram": {str(k): v for k, v in length_histogram(train_caps).items()},
                         "top_words": top_words(train_caps, 20)})
            out["feature_cache"] = data.extras.get("cache", {})
            out["decoder"] = {"attention": cfg.model.attention, "gate": cfg.model.gate, "alpha_c": cfg.model.alpha_c,
                              "teacher_forcing": cfg.train.teacher_forcing}
            out["training_strategy"] = strategy.describe()
        out["data"] = info
        return out

    def evaluate(self, ctx: RunContext) -> dict[str, Any]:
        if not D.is_main():
            return {}
        if ctx.cfg.data.stage == "encoder":
            res = ctx.run.results()
            return {"captioning_encoder": {"test_cell_accuracy": res.get("test_cell_accuracy"),
                                           "test_loss": res.get("test_loss")}}
        from robustlab.labs.captioning.audit import audit

        model = self.load_model(ctx)
        path = ctx.run.checkpoint(ctx.checkpoint)
        meta = load_checkpoint(path if path.exists() else ctx.run.checkpoint("last"))["meta"]
        corpus = caption_corpus(ctx.cfg, ctx.smoke)
        return {"captioning": audit(model, corpus, meta, ctx.cfg, ctx.device)}

    def explain(self, ctx: RunContext) -> dict[str, str]:
        if ctx.cfg.data.stage == "encoder":
            return {}
        from robustlab.labs.captioning.figures import run_figures

        results = ctx.run.results()
        audited = results.get("captioning") or {}
        if not audited:
            return {}
        test = caption_corpus(ctx.cfg, ctx.smoke).splits["test"]
        grid = (audited.get("faithfulness") or {}).get("grid")
        if grid is None:
            grid = list(self.load_model(ctx).grid_shape(ctx.cfg.data.size))
        lengths = (results.get("data") or {}).get("length_histogram")
        return run_figures(ctx.run, audited, test.images.numpy(), (int(grid[0]), int(grid[1])), lengths)

    def report_sections(self, run_dir: Path, config: dict[str, Any], results: dict[str, Any]) -> list[Section]:
        from robustlab.labs.captioning.report import run_sections

        return run_sections(run_dir, results)

    def summary(self, results: dict[str, Any]) -> str:
        c = results.get("captioning")
        if isinstance(c, dict):
            g = (c.get("decoding") or {}).get("greedy") or {}
            bleu = g.get("bleu") or [float("nan")] * 4
            return (f"{c.get('encoder')}: greedy BLEU-1 {bleu[0]:.3f}, BLEU-4 {bleu[3]:.3f}, CIDEr-D "
                    f"{g.get('cider_d', float('nan')):.3f} on {g.get('images')} test images ({c.get('language')})")
        if results.get("stage") == "encoder":
            acc = results.get("test_cell_accuracy")
            return f"encoder pretraining: test cell accuracy {acc:.3f}" if isinstance(acc, float) else "encoder stage"
        if isinstance(results.get("test_bleu4"), float):
            return f"test free-running BLEU-4 {results['test_bleu4']:.3f} (not audited yet)"
        return "not evaluated"


LAB = CaptioningLab()
