"""The data of a run on labelled images: load, adapt (channels/size), subset, split, check, fabricate for --smoke."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from robustlab import data as rdata
from robustlab.data.bundle import DataBundle
from robustlab.data.spec import DatasetInfo
from robustlab.data.validation import check_labels, check_pixels

#: examples per split of a --smoke run (fabricated images of the dataset's shape and classes)
SMOKE_SIZES = {"train": 96, "test": 64}


def fabricated_dataset(info: DatasetInfo, n: int, seed: int, split: str) -> rdata.ImageDataset:
    """``n`` learnable fake images of ``info``'s shape and classes (for ``--smoke``); train and test
    differ by seed but share the class templates' generator seed, so a model can learn something."""
    return rdata.fabricate(info, n=n, seed=seed + (0 if split == "train" else 1))


def prepare_data(cfg: Any, smoke: bool = False) -> DataBundle:
    """Load, adapt (channels/size), subset and split the images that ``cfg.data`` (an
    :class:`~robustlab.data.config.ImageDataConfig`) names, seeded by ``cfg.seed``.

    ``smoke`` replaces the real images with fabricated ones of the same shape and classes, so a
    recipe's whole pipeline runs in seconds without the dataset on disk. ``info`` of the bundle has
    the channels and size the model sees."""
    d = cfg.data
    info = rdata.dataset_info(d.dataset)
    if smoke:
        if max(info.image_size) > 64:
            info = dataclasses.replace(info, image_size=(64, 64))  # keep smoke runs tiny
        train = fabricated_dataset(info, SMOKE_SIZES["train"], cfg.seed, "train")
        test = fabricated_dataset(info, SMOKE_SIZES["test"], cfg.seed, "test")
    else:
        root = Path(d.root) if d.root else None
        train = rdata.load_dataset(d.dataset, "train", root=root, download=d.download)
        test = rdata.load_dataset(d.dataset, "test", root=root, download=d.download)
    size = min(d.image_size, 64) if (smoke and d.image_size) else d.image_size
    if d.channels or size:
        train, test = rdata.adapt(train, d.channels, size), rdata.adapt(test, d.channels, size)
    if d.train_subset and not smoke:
        train = rdata.subset(train, d.train_subset, seed=cfg.seed)
    if d.test_subset and not smoke:
        test = rdata.subset(test, d.test_subset, seed=cfg.seed)
    val = None
    if d.val_fraction > 0:
        train, val = rdata.train_val_split(train, d.val_fraction, seed=cfg.seed)
    aug = rdata.augmentation(d.augmentation)
    if aug is not None:
        train = train.with_transform(aug)
    c, h, w = train[0][0].shape
    info = dataclasses.replace(info, channels=c, image_size=(h, w))
    streams = {"train": train, "test": test} | ({"val": val} if val is not None else {})
    for split, ds in (("train", train), ("validation", val), ("test", test)):
        if ds is not None:
            check_labels(ds.targets, info.num_classes, f"{info.name} {split} split")
            raw = getattr(ds, "data", None)
            if isinstance(raw, torch.Tensor):
                check_pixels(raw, f"{info.name} {split} images")
    return DataBundle(info, streams)


def info_meta(info: DatasetInfo) -> dict[str, Any]:
    """``info`` as JSON-able data (for a checkpoint's meta)."""
    return dataclasses.asdict(info)


def info_from_meta(meta: dict[str, Any]) -> DatasetInfo:
    """The :class:`DatasetInfo` that :func:`info_meta` wrote."""
    fields = {f.name for f in dataclasses.fields(DatasetInfo)}
    raw = {k: v for k, v in meta.items() if k in fields}
    for key in ("image_size", "mean", "std", "class_names", "splits"):
        if isinstance(raw.get(key), list):
            raw[key] = tuple(raw[key])
    return DatasetInfo(**raw)
