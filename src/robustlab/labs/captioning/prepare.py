"""The captions and images of a run and the streams made from them.

A run's corpus is cleaned once (:func:`clean_caption`, the same for references and hypotheses), a
:class:`Vocabulary` is built on the training captions, and every word of every split goes into the
*lexicon* the references are stored in, so a reference never holds ``<unk>``. Training rows are
(image, reference) pairs; validation and test rows are images (the loss is teacher-forced on the
first reference, BLEU scored against all of them). With a frozen encoder the rows carry the
encoder's cached grids ``(C, h, w)`` in float16 instead of pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from robustlab.core.checkpoint import load_submodule_state
from robustlab.core.config import require_set
from robustlab.core.errors import RobustlabError
from robustlab.core.seeding import resolve_device
from robustlab.data.batches import BatchTensors, whole_batch
from robustlab.data.bundle import DataBundle
from robustlab.data.frozen_features import cached_features
from robustlab.data.registry import default_data_root
from robustlab.data.spec import DataInfo
from robustlab.labs.captioning.config import CaptioningConfig
from robustlab.labs.captioning.encoders import Encoder, describe_encoder, load_encoder_weights
from robustlab.labs.captioning.scenes import CaptionScenes, SceneObject, fashion_scenes, generate_scenes
from robustlab.labs.captioning.text import PAD, SPECIALS, Vocabulary, clean_caption, resolve_normaliser

SMOKE_IMAGES = (48, 16)
"""Training and test scenes of a smoke run."""


@dataclass(frozen=True)
class CaptionInfo(DataInfo):
    """Captioned images (kind ``captions``): ``size`` px squares with several references each."""

    name: str
    description: str
    train_size: int
    test_size: int
    splits: tuple[str, ...]
    size: int = 64
    language: str = "en"

    kind = "captions"

    @property
    def shape_text(self) -> str:
        return f"3x{self.size}x{self.size} images, captions in {self.language}"


@dataclass
class CaptionSplit:
    """One split: ``images`` uint8 ``(N, 3, S, S)``, per image its ``raw`` references and their
    cleaned ``tokens``, and the scene ground truth ``objects`` (``None`` for user data)."""

    images: Tensor
    raw: list[list[str]]
    tokens: list[list[list[str]]]
    objects: list[list[SceneObject]] | None

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass
class CaptionCorpus:
    """The run's splits (``train``, ``val`` — possibly empty —, ``test``), the scene ``grid`` side
    (``None`` for user data), where the data came from, the language and the normaliser that ran
    (``hazm``, ``builtin`` or ``english``)."""

    splits: dict[str, CaptionSplit]
    grid: int | None
    source: str
    language: str
    normaliser: str

    def training_captions(self) -> set[tuple[str, ...]]:
        """Every cleaned training reference (for the copied-from-training share)."""
        return {tuple(r) for refs in self.splits["train"].tokens for r in refs}


def _seeded_order(n: int, seed: int) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def _clean_split(images: Tensor, raw: list[list[str]], objects: list[list[SceneObject]] | None, language: str,
                 normaliser: str, where: str) -> CaptionSplit:
    tokens = [[t for t in (clean_caption(r, language, normaliser) for r in refs) if t] for refs in raw]  # type: ignore[arg-type]
    empty = [i for i, refs in enumerate(tokens) if not refs]
    if empty:
        raise RobustlabError(f"{where}: {len(empty)} images have no caption left after cleaning (first: image "
                             f"{empty[0]}, raw {raw[empty[0]][:1]}); every image needs a non-empty reference")
    return CaptionSplit(images, raw, tokens, objects)


def _from_scenes(scenes: CaptionScenes, language: str, normaliser: str, where: str) -> CaptionSplit:
    return _clean_split(scenes.images, scenes.references[language], scenes.objects, language, normaliser, where)


def _split_pool(pool: CaptionSplit, fraction: float, seed: int) -> tuple[CaptionSplit, CaptionSplit]:
    order = _seeded_order(len(pool), seed)
    n_val = round(fraction * len(pool)) if fraction > 0 else 0
    return _subset(pool, order[n_val:]), _subset(pool, order[:n_val])


def _subset(split: CaptionSplit, index: Tensor) -> CaptionSplit:
    picks = index.tolist()
    return CaptionSplit(split.images[index], [split.raw[i] for i in picks], [split.tokens[i] for i in picks],
                        None if split.objects is None else [split.objects[i] for i in picks])


def _fashion_items(train: bool) -> tuple[Tensor, Tensor]:
    from robustlab.data.mnist import load_fashion_mnist

    ds = load_fashion_mnist("train" if train else "test", default_data_root())
    return ds.data[:, 0], ds.targets


def caption_corpus(cfg: CaptioningConfig, smoke: bool = False) -> CaptionCorpus:
    """The run's cleaned corpus: procedural scenes (training pool and test from their own seeds;
    ``val_fraction`` of the pool validates) or the user's caption file over its image folder (its
    own splits, else seeded ones)."""
    d = cfg.data
    normaliser = resolve_normaliser(d.normaliser) if d.language == "fa" else "english"
    norm = normaliser if normaliser != "english" else "builtin"
    base = cfg.seed * 1000
    n_train, n_test = SMOKE_IMAGES if smoke else (d.train_images, d.test_images)
    if d.dataset == "coco":
        from robustlab.labs.captioning.coco import assign_splits, load_images, read_caption_file, records_by_split

        require_set(d.captions, "data.captions")
        require_set(d.images, "data.images")
        records = assign_splits(read_caption_file(d.captions or "", d.images or ""), d.test_fraction, d.val_fraction,
                                base + 7)
        parts = records_by_split(records)
        if not parts.get("train") or not parts.get("test"):
            raise RobustlabError(f"{d.captions}: needs images in both a train and a test split (found "
                                 f"{', '.join(f'{k} {len(v)}' for k, v in parts.items())})")
        if smoke:
            parts = {k: v[: SMOKE_IMAGES[0] if k == "train" else SMOKE_IMAGES[1]] for k, v in parts.items()}
        splits = {k: _clean_split(load_images(v, d.size), [list(r.captions) for r in v], None, d.language, norm,
                                  f"{d.captions} ({k})") for k, v in parts.items() if k in ("train", "val", "test")}
        splits.setdefault("val", _subset(splits["train"], torch.empty(0, dtype=torch.long)))
        return CaptionCorpus(splits, None, f"caption file {d.captions} over {d.images}", d.language, normaliser)
    if d.dataset == "fashion":
        pool_scenes = fashion_scenes(*_fashion_items(True), n_train, d.size, base + 1, d.references)
        test_scenes = fashion_scenes(*_fashion_items(False), n_test, d.size, base + 2, d.references)
    else:
        pool_scenes = generate_scenes(n_train, d.size, base + 1, d.references, d.max_objects)
        test_scenes = generate_scenes(n_test, d.size, base + 2, d.references, d.max_objects)
    pool = _from_scenes(pool_scenes, d.language, norm, "training scenes")
    train, val = _split_pool(pool, d.val_fraction, base + 5)
    test = _from_scenes(test_scenes, d.language, norm, "test scenes")
    return CaptionCorpus({"train": train, "val": val, "test": test}, pool_scenes.grid, pool_scenes.source,
                         d.language, normaliser)


# ----------------------------------------------------------------------------------- tensors


def lexicon(corpus: CaptionCorpus) -> tuple[str, ...]:
    """Every cleaned word of every split after the special tokens (ids as in a vocabulary), sorted."""
    words = {w for s in corpus.splits.values() for refs in s.tokens for r in refs for w in r}
    return SPECIALS + tuple(sorted(words - set(SPECIALS)))


def reference_tensor(tokens: list[list[list[str]]], words: tuple[str, ...], n_refs: int, length: int) -> Tensor:
    """References ``(N, n_refs, length)`` as lexicon ids (PAD after a reference's end and for missing
    references); longer references are cut at ``length`` words."""
    index = {w: i for i, w in enumerate(words)}
    out = torch.full((len(tokens), n_refs, length), PAD, dtype=torch.long)
    for i, refs in enumerate(tokens):
        for j, r in enumerate(refs[:n_refs]):
            ids = [index[w] for w in r[:length]]
            out[i, j, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


def reference_words(refs: Tensor, words: tuple[str, ...]) -> list[list[list[str]]]:
    """The inverse of :func:`reference_tensor`: per image its non-empty references as word lists."""
    out = []
    for image in refs.tolist():
        out.append([[words[i] for i in r if i != PAD] for r in image if any(r)])
    return out


def caption_tensor(captions: list[list[str]], vocab: Vocabulary, max_length: int) -> tuple[Tensor, Tensor]:
    """``(ids (M, L), lengths (M,))``: ``<sos>`` + at most ``max_length`` words + ``<eos>``, PAD after;
    lengths count ``<sos>`` and ``<eos>``."""
    encoded = [vocab.encode(c[:max_length]) for c in captions]
    lengths = torch.tensor([len(e) for e in encoded], dtype=torch.long)
    ids = torch.full((len(encoded), int(lengths.max()) if encoded else 2), PAD, dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, : len(e)] = torch.tensor(e, dtype=torch.long)
    return ids, lengths


class CaptionRows(Dataset):
    """Rows served as whole batches ``(source (B, ...), captions (B, L), lengths (B,), references
    (B, R, Lr))``: row ``k`` is image ``image[k]`` of ``source`` (pixels uint8 ``(3, S, S)`` or a
    cached float16 grid ``(C, h, w)``) with caption ``k`` and that image's references."""

    def __init__(self, source: Tensor, image: Tensor, captions: Tensor, lengths: Tensor, references: Tensor) -> None:
        if not (image.shape[0] == captions.shape[0] == lengths.shape[0]):
            raise ValueError("image, captions and lengths need one row each per example")
        self.source, self.image, self.captions, self.lengths, self.references = (source, image, captions, lengths,
                                                                                  references)

    def __len__(self) -> int:
        return int(self.image.shape[0])

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        return self.__getitems__([i])

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, ...]:
        k = torch.as_tensor(indices, dtype=torch.long)
        img = self.image[k]
        return self.source[img], self.captions[k], self.lengths[k], self.references[img]


def rows_for(split: CaptionSplit, source: Tensor, vocab: Vocabulary, words: tuple[str, ...], n_refs: int,
             ref_length: int, max_length: int, pairs: bool) -> CaptionRows:
    """Training rows (``pairs``: every (image, reference)) or evaluation rows (one per image, the
    first reference as the teacher-forced caption)."""
    if pairs:
        image = torch.tensor([i for i, refs in enumerate(split.tokens) for _ in refs], dtype=torch.long)
        captions = [r for refs in split.tokens for r in refs]
    else:
        image = torch.arange(len(split), dtype=torch.long)
        captions = [refs[0] for refs in split.tokens]
    ids, lengths = caption_tensor(captions, vocab, max_length)
    return CaptionRows(source, image, ids, lengths, reference_tensor(split.tokens, words, n_refs, ref_length))


# ----------------------------------------------------------------------------------- encoder


def build_encoder(cfg: CaptioningConfig, with_init: bool = True) -> Encoder:
    """The run's encoder: seeded random weights, then the local weights file (``weights: local``) or,
    when ``with_init``, the ``encoder.*`` tensors of ``train.init_from`` (``self-pretrained``)."""
    m = cfg.model
    encoder = Encoder(m.encoder, m.width, m.fine_tune, m.encoder_seed)
    if m.weights == "local":
        require_set(m.pretrained, "model.pretrained")
        load_encoder_weights(encoder, m.pretrained or "")
    if with_init and m.weights == "self-pretrained" and cfg.data.stage == "caption":
        if not cfg.train.init_from:
            raise RobustlabError("weights self-pretrained needs train.init_from (the stage encoder run's checkpoint; "
                                 "in a recipe: init_from: <encoder run>)")
        load_encoder_from(encoder, cfg.train.init_from)
    return encoder


def load_encoder_from(encoder: Encoder, path: str | Path) -> None:
    """Load the ``encoder.*`` tensors of the checkpoint ``path`` (an encoder or captioning run) exactly."""
    load_submodule_state(encoder, path, "encoder", "a stage encoder or captioning run's")


def encoder_description(cfg: CaptioningConfig) -> str:
    """How results name the encoder, e.g. ``"self-pretrained encoder small-cnn (frozen)"``."""
    m = cfg.model
    if cfg.data.stage == "encoder":
        return f"{m.encoder} trained from a seeded random init on per-cell shape and colour labels"
    return describe_encoder(m.encoder, m.weights, m.fine_tune, m.pretrained)


def cache_dir(cfg: CaptioningConfig) -> Path:
    """Where frozen grids are cached: ``data.cache``, else ``<data root>/cache/captioning``."""
    return Path(cfg.data.cache) if cfg.data.cache else default_data_root() / "cache" / "captioning"


def reads_features(cfg: CaptioningConfig) -> bool:
    """Whether training reads cached encoder grids (a frozen encoder, no adversarial training) rather
    than pixels."""
    return cfg.model.fine_tune == "none" and cfg.train.adversarial_eps is None


# ----------------------------------------------------------------------------------- bundles


def cell_labels(objects: list[list[SceneObject]], grid: int, shapes: tuple[str, ...], colours: tuple[str, ...]
                ) -> tuple[Tensor, Tensor]:
    """Per image and cell ``(N, grid²)`` the shape and colour index (0 = empty cell, then 1 + the
    index in ``shapes``/``colours``)."""
    shape = torch.zeros(len(objects), grid * grid, dtype=torch.long)
    colour = torch.zeros_like(shape)
    for i, objs in enumerate(objects):
        for o in objs:
            shape[i, o.cell] = shapes.index(o.shape) + 1
            colour[i, o.cell] = colours.index(o.colour) + 1
    return shape, colour


def scene_vocabulary(cfg: CaptioningConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The shape and colour names the encoder stage classifies per cell."""
    from robustlab.labs.captioning.scenes import COLOURS, FASHION_CLASSES, SHAPES

    return tuple(FASHION_CLASSES if cfg.data.dataset == "fashion" else SHAPES), tuple(COLOURS)


def build_bundle(cfg: CaptioningConfig, smoke: bool = False) -> DataBundle:
    """Stage ``encoder``: rows ``(images uint8 (B, 3, S, S), shape (B, g²), colour (B, g²))`` of the
    scenes. Stage ``caption``: caption rows (:class:`CaptionRows`) over pixels or cached grids;
    ``extras`` hold the corpus, vocabulary, lexicon, reference layout and the cache files used."""
    corpus = caption_corpus(cfg, smoke)
    info = CaptionInfo(cfg.data.dataset, corpus.source, len(corpus.splits["train"]), len(corpus.splits["test"]),
                       tuple(k for k, s in corpus.splits.items() if len(s)), cfg.data.size, cfg.data.language)
    extras: dict[str, Any] = {"corpus": corpus}
    streams: dict[str, Dataset] = {}
    if cfg.data.stage == "encoder":
        shapes, colours = scene_vocabulary(cfg)
        assert corpus.grid is not None
        for name, split in corpus.splits.items():
            if len(split):
                assert split.objects is not None
                streams[name] = BatchTensors(split.images, *cell_labels(split.objects, corpus.grid, shapes, colours))
        extras["scene_vocabulary"] = {"shapes": list(shapes), "colours": list(colours), "grid": corpus.grid}
        return DataBundle(info, streams, collate=whole_batch, extras=extras)
    vocab = Vocabulary.build((r for refs in corpus.splits["train"].tokens for r in refs), cfg.data.min_count)
    words = lexicon(corpus)
    n_refs = max(len(refs) for s in corpus.splits.values() for refs in s.tokens)
    ref_length = max(len(r) for s in corpus.splits.values() for refs in s.tokens for r in refs)
    extras.update({"vocabulary": vocab, "lexicon": words, "n_refs": n_refs, "ref_length": ref_length, "cache": {}})
    encoder = build_encoder(cfg) if reads_features(cfg) else None
    device = resolve_device(cfg.device)
    if encoder is not None:
        encoder.to(device)
    for name, split in corpus.splits.items():
        if not len(split):
            continue
        source = split.images
        if encoder is not None:
            source, path, hit = cached_features(encoder, split.images, cache_dir(cfg), cfg.data.eval_batch_size, device)
            extras["cache"][name] = {"file": str(path), "was_cached": hit, "grid": list(source.shape[1:])}
        streams[name] = rows_for(split, source, vocab, words, n_refs, ref_length, cfg.data.max_length,
                                 pairs=name == "train")
    return DataBundle(info, streams, collate=whole_batch, extras=extras)
