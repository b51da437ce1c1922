"""Shared setup of the language-model tests: no network for transformers, and a tiny GPT-2 fitted to
a few real Hafez ghazals."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from robustlab.labs.lm.corpus import Corpus, read_hafez  # noqa: E402
from robustlab.labs.lm.examples import collate_training, encode_pairs  # noqa: E402
from robustlab.labs.lm.models import tiny_gpt2  # noqa: E402
from robustlab.labs.lm.pairs import beyt_text, corpus_pairs, split_poems  # noqa: E402
from robustlab.labs.lm.perplexity import target_nll  # noqa: E402
from robustlab.labs.lm.tokenizer import train_bpe  # noqa: E402


def fit(model: torch.nn.Module, batch: dict, steps: int, lr: float = 1e-2,
        clip: float | None = None) -> torch.nn.Module:
    """``steps`` full-batch AdamW steps on the batch's target NLL; the model in eval mode after."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    for _ in range(steps):
        nll, n = target_nll(model, batch)
        (nll / n).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


def hafez_setup(steps: int, dropout: float, max_length: int, clip: float | None = None) -> dict:
    """12 Hafez ghazals split by poem (9 train, 3 test), a BPE of 400 tokens and a 2-layer GPT-2 fitted
    ``steps`` steps to the training pairs: ``{"corpus", "parts", "train", "test", "tok", "model"}``."""
    hafez = read_hafez()
    corpus = Corpus("hafez-12", "", hafez.poems[:12], hafez.rhyme_form)
    parts = split_poems(corpus, (0.75, 0.0, 0.25), seed=0)
    train, test = corpus_pairs(parts["train"]), corpus_pairs(parts["test"])
    tok = train_bpe([beyt_text(b) for p in parts["train"] for b in p.beyts], vocab_size=400)
    torch.manual_seed(0)
    model = tiny_gpt2(len(tok), n_positions=160, n_layer=2, n_embd=32, n_head=2, dropout=dropout,
                      bos_id=tok.bos_token_id, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    enc = encode_pairs(tok, [beyt_text(p.source) for p in train], [beyt_text(p.target) for p in train], max_length)
    batch = collate_training([enc[i] for i in range(len(enc))], tok.pad_token_id)
    return {"corpus": corpus, "parts": parts, "train": train, "test": test, "tok": tok,
            "model": fit(model, batch, steps, clip=clip)}


@pytest.fixture(scope="session")
def tiny_hafez():
    """:func:`hafez_setup`, for module fixtures that fit their own variant."""
    return hafez_setup
