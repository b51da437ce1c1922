"""From a config to the run's molecule data: the cleaned table, this fold's train/val/test indices,
the training split's vocabulary, and padded token tensors (randomised training variants when
augmenting) — a function of the config alone, so ``evaluate`` rebuilds exactly what training saw."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robustlab.core.errors import RobustlabError
from robustlab.data.bundle import DataBundle
from robustlab.data.registry import DATASETS, register_specs
from robustlab.data.spec import DatasetSpec, TokenSequenceInfo
from robustlab.labs.molecules import chem, sources
from robustlab.labs.molecules.batching import LengthBuckets, SequenceSet, collate_batch
from robustlab.labs.molecules.config import MoleculesConfig
from robustlab.labs.molecules.splits import split_fold, split_groups
from robustlab.labs.molecules.tokens import Vocabulary, tokenize

SMOKE_MOLECULES = 160


@dataclass
class MoleculeData:
    """What the lab's stages share: the table, split indices into it, the vocabulary and tokenizer."""

    table: sources.MoleculeTable
    split: dict[str, np.ndarray]
    vocab: Vocabulary
    tokenizer: str
    max_length: int

    def smiles(self, part: str) -> list[str]:
        return [self.table.smiles[i] for i in self.split[part]]

    def labels(self, part: str) -> np.ndarray:
        return self.table.labels[self.split[part]]

    def encode(self, smiles: list[str], where: str = "input") -> tuple[torch.Tensor, torch.Tensor, int]:
        """Padded ids, lengths and the unknown-token count of ``smiles`` with this run's vocabulary."""
        toks = [tokenize(s, self.tokenizer) for s in smiles]
        too_long = [i for i, t in enumerate(toks) if len(t) > self.max_length]
        if too_long:
            raise RobustlabError(f"{where}: a SMILES has {len(toks[too_long[0]])} tokens, more than "
                                 f"data.max_length {self.max_length}")
        return self.vocab.encode(toks, self.max_length)

    def sequence_set(self, smiles: list[str], labels: np.ndarray, where: str) -> SequenceSet:
        ids, lengths, _ = self.encode(smiles, where)
        return SequenceSet(ids, lengths, torch.as_tensor(labels))


def load_table(cfg: MoleculesConfig, smoke: bool = False) -> sources.MoleculeTable:
    """The cleaned table of ``cfg.data`` (procedural molecules under ``smoke``), every SMILES checked
    against ``data.max_length``."""
    d = cfg.data
    stereo = d.stereo == "keep"
    if smoke:
        table = sources.procedural(SMOKE_MOLECULES, cfg.seed)
    elif d.dataset == "csv":
        table = sources.load_file(Path(d.path or ""), d.smiles_column, d.label_column, d.allow_invalid, stereo)
    else:
        table = sources.load_packaged(sources.PACKAGED[d.dataset], allow_invalid=True, stereo=stereo)
    for s, line in zip(table.smiles, table.lines, strict=True):
        n = len(tokenize(s, d.tokenizer))
        if n > d.max_length:
            raise RobustlabError(f"{table.source} line {line}: SMILES of {n} tokens is longer than "
                                 f"data.max_length {d.max_length}; raise it or drop the molecule")
    return table


def molecule_data(cfg: MoleculesConfig, smoke: bool = False) -> MoleculeData:
    """The table, this fold's split and the vocabulary of its training part."""
    d = cfg.data
    table = load_table(cfg, smoke)
    groups = split_groups(table.smiles, d.split)
    split = split_fold(table.labels, groups, d.folds, d.fold, d.val_fraction, cfg.seed)
    train_tokens = [tokenize(table.smiles[i], d.tokenizer) for i in split["train"]]
    return MoleculeData(table, split, Vocabulary.build(train_tokens), d.tokenizer, d.max_length)


def augmented_train(cfg: MoleculesConfig, data: MoleculeData) -> SequenceSet:
    """The training split with ``data.augment`` randomised SMILES per molecule (one shown per epoch);
    the canonical strings when ``augment`` is 0. Unknown tokens of the variants map to ``<unk>``."""
    smiles, labels = data.smiles("train"), data.labels("train")
    if not cfg.data.augment:
        return SequenceSet(*data.encode(smiles, "training split")[:2], torch.as_tensor(labels), seed=cfg.seed)
    variants = chem.randomised(chem.parse(smiles), cfg.data.augment, cfg.seed)
    encoded = [data.encode([v[k] for v in variants], "augmented training split") for k in range(cfg.data.augment)]
    width = max(e[0].shape[1] for e in encoded)
    ids = torch.zeros(len(encoded), len(smiles), width, dtype=torch.long)
    for k, (x, _, _) in enumerate(encoded):
        ids[k, :, : x.shape[1]] = x
    lengths = torch.stack([e[1] for e in encoded])
    return SequenceSet(ids, lengths, torch.as_tensor(labels), seed=cfg.seed)


def build_bundle(cfg: MoleculesConfig, smoke: bool = False) -> DataBundle:
    """The run's streams (``train`` batched by length, ``val``, ``test``) and, in ``extras``, the
    :class:`MoleculeData` the audit reuses."""
    data = molecule_data(cfg, smoke)
    train = augmented_train(cfg, data)
    streams = {"train": train, "test": data.sequence_set(data.smiles("test"), data.labels("test"), "test split")}
    if "val" in data.split:
        streams["val"] = data.sequence_set(data.smiles("val"), data.labels("val"), "validation split")
    info = TokenSequenceInfo(cfg.data.dataset, data.table.source, len(data.split["train"]), len(data.split["test"]),
                             vocab_size=len(data.vocab), max_length=int(train.lengths.max()), num_classes=2,
                             splits=tuple(streams))

    def batches(batch_size: int, seed: int, world: int, rank: int) -> LengthBuckets:
        return LengthBuckets(train, batch_size, seed, world=world, rank=rank)

    return DataBundle(info, streams, collate=collate_batch, train_batches=batches, extras={"molecules": data})


def register_datasets() -> None:
    """List the packaged molecule tables in ``robustlab datasets`` (idempotent)."""
    sizes = {"bbbp": 2039, "b3db": 7807}
    for table in sources.PACKAGED.values():
        if table.name in DATASETS:
            continue
        info = TokenSequenceInfo(table.name, table.description, sizes[table.name], 0, num_classes=2,
                                 splits=("folds",))
        register_specs([DatasetSpec(info, load=lambda table=table, **_: sources.load_packaged(table),
                                    available=lambda root, table=table: table.available())])
