"""The tiles of a run and the streams made from them: frozen tokens for the head stage, panel-free
images for the backbone's pretraining stage."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from robustlab.core.checkpoint import load_submodule_state
from robustlab.core.config import require_set
from robustlab.core.errors import RobustlabError
from robustlab.core.seeding import resolve_device
from robustlab.data.batches import BatchTensors, whole_batch
from robustlab.data.bundle import DataBundle
from robustlab.data.frozen_features import cached_features
from robustlab.data.registry import default_data_root
from robustlab.data.spec import DataInfo
from robustlab.labs.frozen.backbones import Backbone, load_dinov2_file, seeded_vit
from robustlab.labs.frozen.config import PATCH, FrozenConfig
from robustlab.labs.frozen.model import patch_descriptors
from robustlab.labs.frozen.tiles import Tiles, generate_tiles

PROCEDURAL_GSD = 0.3
"""Metres per pixel of the procedural tiles unless ``data.gsd`` says otherwise."""


@dataclass(frozen=True)
class TileInfo(DataInfo):
    """Aerial tiles (kind ``tiles``): ``size`` px squares at ``gsd`` m/px, 2 classes (panels or not)."""

    name: str
    description: str
    train_size: int
    test_size: int
    splits: tuple[str, ...]
    size: int = 112
    gsd: float = PROCEDURAL_GSD

    kind = "tiles"

    @property
    def shape_text(self) -> str:
        return f"3x{self.size}x{self.size} at {self.gsd:g} m/px, 2 classes"


@dataclass
class TileData:
    """The run's ``train``/``val``/``test`` tiles (``val`` may be empty) and where they came from."""

    splits: dict[str, Tiles]
    source: str

    @property
    def gsd(self) -> float:
        return self.splits["train"].gsd

    @property
    def patch_area_m2(self) -> float:
        """Ground area of one patch in m²."""
        return (PATCH * self.gsd) ** 2


def _seeded_split(n: int, fractions: list[float], seed: int) -> list[torch.Tensor]:
    """Index sets of sizes ``round(f·n)`` for each fraction (the rest in the last), in a seeded order."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    sizes = [max(1, round(f * n)) if f > 0 else 0 for f in fractions]
    parts, start = [], 0
    for s in sizes:
        parts.append(order[start : start + s])
        start += s
    parts.append(order[start:])
    return parts


def tile_data(cfg: FrozenConfig, smoke: bool = False) -> TileData:
    """The run's tiles: procedural (train/test from their own seeds; panel-free in the pretrain
    stage) or the user's folder split by ``test_fraction``; ``val_fraction`` of the training tiles
    validate."""
    d = cfg.data
    base = cfg.seed * 1000
    if d.dataset == "folder":
        from robustlab.labs.frozen.folders import read_tile_folder

        for value, key in ((d.images, "data.images"), (d.masks, "data.masks"), (d.areas_csv, "data.areas_csv")):
            require_set(value, key)
        tiles = read_tile_folder(d.images or "", d.masks or "", d.size, d.areas_csv, d.gsd)
        if not math.isfinite(tiles.gsd):
            raise RobustlabError("the tiles' ground sample distance is unknown: set data.gsd (metres per pixel of "
                                 "the original images) or a gsd_m column in data.areas_csv")
        test, train = _seeded_split(len(tiles), [d.test_fraction], base + 7)
        if d.stage == "pretrain":
            train = train[tiles.labels[train] == 0]
        pool, source = tiles.subset(train), f"folder {d.images} (masks {d.masks})"
        test_tiles = tiles.subset(test)
    else:
        gsd = d.gsd or PROCEDURAL_GSD
        positive = 0.0 if d.stage == "pretrain" else d.positive_fraction
        pool = generate_tiles(d.train_tiles, d.size, base + (3 if d.stage == "pretrain" else 1), positive, gsd,
                              d.max_arrays)
        test_tiles = generate_tiles(d.test_tiles, d.size, base + (4 if d.stage == "pretrain" else 2), positive, gsd,
                                    d.max_arrays)
        source = f"procedural tiles ({d.size} px, {gsd:g} m/px)" + (", panel-free" if d.stage == "pretrain" else "")
    val, train = _seeded_split(len(pool), [d.val_fraction], base + 5)
    return TileData({"train": pool.subset(train), "val": pool.subset(val), "test": test_tiles}, source)


def descriptor_stats(tiles: Tiles, n: int = 256) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of each patch descriptor over the first ``n`` tiles."""
    d = patch_descriptors(tiles.images[:n].float() / 255, PATCH).reshape(-1, 9)
    return d.mean(0).tolist(), d.std(0).clamp_min(1e-4).tolist()


def backbone_name(cfg: FrozenConfig) -> str:
    """How results and reports name the backbone: its weights' origin and architecture."""
    m = cfg.model
    widths = ", ".join(f"{k} {v}" for k, v in (("dim", m.embed_dim), ("depth", m.depth), ("heads", m.heads)) if v)
    return f"{m.backbone} {m.arch}" + (f" ({widths})" if widths else "")


def build_backbone(cfg: FrozenConfig, with_init: bool = True) -> Backbone:
    """The run's backbone: seeded random weights, then the user's DINOv2 file (``dinov2-local``
    with ``model.pretrained``) or, when ``with_init``, the backbone of the checkpoint named by
    ``train.init_from`` (``self-pretrained``); frozen unless this is the pretrain stage."""
    m = cfg.model
    vit = seeded_vit(m.arch, cfg.data.size, m.backbone_seed, m.embed_dim, m.depth, m.heads)
    if m.backbone == "dinov2-local" and m.pretrained:
        require_set(m.pretrained, "model.pretrained")
        load_dinov2_file(vit, m.pretrained)
    backbone = Backbone(vit, frozen=cfg.data.stage == "head")
    if with_init and m.backbone == "self-pretrained" and cfg.data.stage == "head":
        if not cfg.train.init_from:
            raise RobustlabError("backbone self-pretrained needs train.init_from (the pretrain stage run's checkpoint;"
                                 " in a recipe: init_from: <pretrain run>)")
        load_backbone(backbone, cfg.train.init_from)
    return backbone


def load_backbone(backbone: Backbone, path: str | Path) -> None:
    """Load the ``backbone.*`` tensors of the checkpoint ``path`` (a pretrain or head run) into
    ``backbone`` exactly (one-line error naming the first tensor that does not fit)."""
    load_submodule_state(backbone, path, "backbone", "a pretrain or head run's")


def cache_dir(cfg: FrozenConfig) -> Path:
    """Where frozen tokens are cached: ``data.cache``, else ``<data root>/cache/frozen``."""
    return Path(cfg.data.cache) if cfg.data.cache else default_data_root() / "cache" / "frozen"


def build_bundle(cfg: FrozenConfig, smoke: bool = False) -> DataBundle:
    """Pretrain stage: streams of panel-free images ``(uint8 (B, 3, S, S), zeros)``. Head stage:
    streams of frozen tokens ``(float16 (B, T, D), labels)``, extracted once per backbone and tile
    set (cached); ``extras`` hold the :class:`TileData` and the cache files used."""
    data = tile_data(cfg, smoke)
    info = TileInfo(cfg.data.dataset, data.source, len(data.splits["train"]), len(data.splits["test"]),
                    tuple(k for k, t in data.splits.items() if len(t)), cfg.data.size, data.gsd)
    extras: dict[str, Any] = {"tiles": data}
    streams: dict[str, Any] = {}
    if cfg.data.stage == "pretrain":
        extras["descriptor_stats"] = descriptor_stats(data.splits["train"])
        for name, tiles in data.splits.items():
            if len(tiles):
                streams[name] = BatchTensors(tiles.images, torch.zeros(len(tiles), dtype=torch.long))
    else:
        backbone = build_backbone(cfg)
        device = resolve_device(cfg.device)
        backbone.to(device)
        extras["cache"] = {}
        for name, tiles in data.splits.items():
            if not len(tiles):
                continue
            tokens, path, hit = cached_features(backbone, tiles.images, cache_dir(cfg), cfg.data.eval_batch_size,
                                                device)
            extras["cache"][name] = {"file": str(path), "was_cached": hit, "tokens": list(tokens.shape)}
            streams[name] = BatchTensors(tokens, tiles.labels)
    return DataBundle(info, streams, collate=whole_batch, extras=extras)
