"""The ``lm`` lab on the shared trainer: (beyt → next beyt) pairs of Persian classical poetry → a
GPT-2 (a small one built from a config, or a local pretrained directory such as gpt2-fa) →
token-weighted perplexity and bits per character beside n-gram baselines, poetry checks of sampled
beyts, rhyme-aware decoding and an orthographic-noise audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from robustlab.core import distributed as D
from robustlab.core.checkpoint import load_checkpoint
from robustlab.core.config import unset_variable
from robustlab.core.errors import RobustlabError
from robustlab.data.bundle import DataBundle
from robustlab.labs.base import Lab, RunContext
from robustlab.labs.lm import corpus as corpora
from robustlab.labs.lm.audit import audit, summary_line
from robustlab.labs.lm.config import LMConfig
from robustlab.labs.lm.examples import special_id
from robustlab.labs.lm.models import check_model_dir, fit_to_tokenizer, load_local_model, read_tokenizer, tiny_gpt2
from robustlab.labs.lm.prepare import (
    CoupletData,
    build_bundle,
    couplet_data,
    load_corpus,
    tokenizer_from_meta,
    tokenizer_meta,
)
from robustlab.labs.lm.task import CausalLMTask
from robustlab.report.section import Section
from robustlab.training.metrics import Metric


class LanguageModelLab(Lab):
    name = "lm"
    description = "GPT-2 on Persian couplets (beyt → next beyt): perplexity done right, poetry metrics, noise audit"
    config_model = LMConfig
    smoke_defaults = {  # noqa: RUF012 - a class-level constant of the lab
        "train": {"epochs": 1, "max_steps": 4, "val_every": 2, "patience": None},
        "model": {"n_layer": 1, "n_embd": 32, "n_head": 2, "n_positions": 96, "tokenizer": {"vocab_size": 320}},
        "evaluate": {"generate": 4, "samples": 2, "rhyme_candidates": 2, "batch_size": 4,
                     "decode": {"max_new_tokens": 8}},
    }

    def smoke_overrides(self, raw: dict[str, Any]) -> dict[str, Any]:
        """Smoke runs need no files: a pretrained-model run becomes a small GPT-2 on procedural poems."""
        model = dict(raw.get("model") or {})
        if model.get("name") == "pretrained":
            model.update({"name": "gpt2", "pretrained": None, "trust_pickle": False})
        data = dict(raw.get("data") or {})
        if data.get("dataset") in ("text", "ganjoor"):
            data.update({"dataset": "hafez", "path": None})
        model["n_positions"] = max(int(model.get("n_positions", 128)), int(data.get("max_length", 96)))
        return {**raw, "model": model, "data": data}

    def check(self, cfg: LMConfig) -> None:
        """The corpus readable and well-formed, the model directory complete and its tokenizer no larger
        than its embedding table — one-line errors before anything is written."""
        if cfg.data.dataset == "hafez":
            corpora.HAFEZ.path()
        elif not unset_variable(cfg.data.path):  # a recipe's ${VAR}: reported when the run starts
            if not Path(cfg.data.path or "").is_file():
                raise RobustlabError(f"data.path {cfg.data.path} does not exist (dataset {cfg.data.dataset} "
                                     "needs the corpus file)")
            load_corpus(cfg)
        if cfg.model.name == "pretrained" and not unset_variable(cfg.model.pretrained):
            folder = Path(cfg.model.pretrained or "")
            check_model_dir(folder, cfg.model.trust_pickle)
            vocab = _config_vocab(folder)
            size = len(read_tokenizer(folder))
            if vocab is not None and size > vocab:
                raise RobustlabError(f"the tokenizer in {folder} has {size} tokens but the model's config.json "
                                     f"declares vocab_size {vocab}; they do not belong together")
            if cfg.data.max_length > (_config_positions(folder) or cfg.data.max_length):
                raise RobustlabError(f"data.max_length ({cfg.data.max_length}) exceeds the model's context "
                                     f"({_config_positions(folder)} positions in {folder / 'config.json'})")

    def build_data(self, cfg: LMConfig, smoke: bool = False) -> DataBundle:
        return build_bundle(cfg, smoke)

    def model_meta(self, cfg: LMConfig, data: DataBundle) -> dict[str, Any]:
        couplets: CoupletData = data.extras["couplets"]
        meta = {"tokenizer": tokenizer_meta(couplets.tokenizer), "vocab": len(couplets.tokenizer),
                "rhyme_form": str(couplets.form), "corpus": couplets.corpus.name}
        if cfg.model.name == "pretrained" and cfg.model.pretrained:
            meta["hf_config"] = json.loads((Path(cfg.model.pretrained) / "config.json").read_text(encoding="utf-8"))
        return meta

    def build_model(self, cfg: LMConfig, meta: dict[str, Any]) -> nn.Module:
        tokenizer = tokenizer_from_meta(meta["tokenizer"])
        m = cfg.model
        if m.name == "pretrained":
            if m.pretrained:  # training: the directory's weights
                model, _ = load_local_model(m.pretrained, m.trust_pickle)
            else:  # a trained run: its architecture only (its own weights follow)
                from transformers import AutoConfig, AutoModelForCausalLM

                hf = dict(meta["hf_config"])
                model = AutoModelForCausalLM.from_config(AutoConfig.for_model(hf.pop("model_type"), **hf))
            fit_to_tokenizer(model, tokenizer)
            return model.train()
        return tiny_gpt2(meta["vocab"], m.n_positions, m.n_layer, m.n_embd, m.n_head, m.dropout,
                         bos_id=special_id(tokenizer, "bos"), eos_id=special_id(tokenizer, "eos"),
                         pad_id=special_id(tokenizer, "pad"))

    def build_task(self, cfg: LMConfig, meta: dict[str, Any]) -> CausalLMTask:
        return CausalLMTask()

    def metrics(self, cfg: LMConfig, meta: dict[str, Any]) -> list[Metric]:
        return []

    def training_results(
        self, cfg: LMConfig, data: DataBundle, test: dict[str, float], strategy: Any
    ) -> dict[str, Any]:
        couplets: CoupletData = data.extras["couplets"]
        poems = {part: len(p) for part, p in couplets.split.items()}
        pairs = {part: len(p) for part, p in couplets.pairs.items()}
        return {"dataset": cfg.data.dataset, "data": {
            "corpus": couplets.corpus.name, "description": couplets.corpus.description,
            "rhyme_form": str(couplets.form), "stage": cfg.data.stage, "poems": poems, "pairs": pairs,
            "beyts": couplets.corpus.n_beyts, "train_examples": len(data.train), "noise": cfg.data.noise,
            "tokenizer": _tokenizer_source(cfg), "vocabulary": len(couplets.tokenizer)},
            "model_source": _model_source(cfg), **test}

    def evaluate(self, ctx: RunContext) -> dict[str, Any]:
        if not D.is_main():
            return {}
        model = self.load_model(ctx)
        path = ctx.run.checkpoint(ctx.checkpoint)
        meta = load_checkpoint(path if path.exists() else ctx.run.checkpoint("last"))["meta"]
        tokenizer = tokenizer_from_meta(meta["tokenizer"])
        data = couplet_data(ctx.cfg, ctx.smoke, tokenizer=tokenizer)
        res = audit(model, tokenizer, data.pairs["train"], data.pairs["test"], data.radifs, data.form,
                    ctx.cfg.evaluate, ctx.cfg.data.max_length, ctx.device)
        return {"lm": res}

    def explain(self, ctx: RunContext) -> dict[str, str]:
        """No figures: the samples and tables of the audit are the report."""
        return {}

    def report_sections(self, run_dir: Path, config: dict[str, Any], results: dict[str, Any]) -> list[Section]:
        from robustlab.labs.lm.report import run_sections

        return run_sections(results.get("lm") or {}) if results.get("lm") else []

    def summary(self, results: dict[str, Any]) -> str:
        if isinstance(results.get("lm"), dict):
            return summary_line(results["lm"])
        if isinstance(results.get("test_perplexity"), float):
            return (f"test perplexity {results['test_perplexity']:.2f}, bits/char "
                    f"{results.get('test_bits_per_char', float('nan')):.3f} (not audited yet)")
        return "not evaluated"


def _config_vocab(folder: Path) -> int | None:
    value = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("vocab_size")
    return int(value) if isinstance(value, int) else None


def _config_positions(folder: Path) -> int | None:
    doc = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    value = doc.get("n_positions", doc.get("max_position_embeddings"))
    return int(value) if isinstance(value, int) else None


def _tokenizer_source(cfg: LMConfig) -> str:
    if cfg.model.name == "pretrained":
        return f"the pretrained model's own ({cfg.model.pretrained})"
    prose = " and the Hafez prose" if cfg.model.tokenizer.with_prose and cfg.data.dataset == "hafez" else ""
    return f"byte-level BPE ({cfg.model.tokenizer.vocab_size} tokens) trained on the training poems{prose}"


def _model_source(cfg: LMConfig) -> str:
    m = cfg.model
    if m.name == "pretrained":
        return f"pretrained causal LM from {m.pretrained}, fine-tuned"
    base = f"GPT-2 {m.n_layer} layers × {m.n_embd} (built from GPT2Config)"
    if cfg.train.init_from:
        return f"{base}, initialised from {cfg.train.init_from}"
    return f"{base}, trained from scratch (random initialisation)"


LAB = LanguageModelLab()
