"""The frozen-features lab from the CLI: a user's tile folder and local DINOv2 weights (saved by the
test) trained, audited and explained; the feature cache reused; bad input one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from frozen_helpers import REG4, TINY
from PIL import Image

from robustlab.core.checkpoint import load_checkpoint
from robustlab.data.frozen_features import cached_features
from robustlab.labs.frozen.backbones import Backbone, seeded_vit
from robustlab.labs.frozen.tiles import generate_tiles


def _write_tiles(root: Path, n: int = 40, size: int = 56) -> tuple[Path, Path]:
    tiles = generate_tiles(n, size, seed=11, positive_fraction=0.5)
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    for i in range(n):
        Image.fromarray(tiles.images[i].permute(1, 2, 0).numpy()).save(images / f"tile{i:03d}.png")
        Image.fromarray(tiles.masks[i].numpy().astype("uint8") * 255).save(masks / f"tile{i:03d}.png")
    return images, masks


def _config(tmp_path: Path, images: Path, masks: Path, weights: Path, **data) -> Path:
    cfg = {"task": "frozen", "seed": 0,
           "data": {"dataset": "folder", "images": str(images), "masks": str(masks), "gsd": 0.3, "size": 56,
                    "test_fraction": 0.3, "calibration_tiles": 4, "cache": str(tmp_path / "cache"), **data},
           "model": {"arch": REG4, **TINY,
                     "backbone": "dinov2-local", "pretrained": str(weights), "dim": 32, "head_heads": 2},
           "train": {"epochs": 2},
           "evaluate": {"n_samples": 6, "steps": 2, "figures": 2}}
    path = tmp_path / "frozen.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def test_user_tiles_and_local_weights_train_evaluate_explain(tmp_path, cli, tiny_weights):
    images, masks = _write_tiles(tmp_path / "data")
    weights, saved = tiny_weights(REG4, "original")
    config = _config(tmp_path, images, masks, weights)
    out = tmp_path / "run"
    code, err = cli(["train", "-c", str(config), "--out", str(out), "--quiet"])
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["backbone"].startswith("dinov2-local vit_small_patch14_reg4_dinov2")
    assert results["data"]["sizes"] == {"train": 25, "val": 3, "test": 12}
    assert not any(c["was_cached"] for c in results["feature_cache"].values())
    # the checkpoint's frozen backbone is the user's file, untouched by training
    state = load_checkpoint(out / "checkpoints" / "best.pt")["model"]
    torch.testing.assert_close(state["backbone.vit.blocks.1.mlp.fc1.weight"], saved.blocks[1].mlp.fc1.weight)

    for stage in (["evaluate", str(out)], ["explain", str(out)]):
        code, err = cli([*stage, "--quiet"])
        assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    frozen = results["frozen"]
    assert frozen["backbone"].startswith("dinov2-local") and frozen["registers"] == 4
    assert frozen["classification"]["n"] == 12
    assert set(frozen["area"]["estimators"]) >= {"logit soft count (best head)", "logit soft count (mean of heads)"}
    assert [r["eps"] for r in frozen["area_under_attack"]] == [0.0, pytest.approx(1 / 255), pytest.approx(4 / 255)]
    assert results["clean_accuracy"] is not None and results["worst_case"]
    for name in ("attention", "area", "attack"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 1000, name

    # a second run over the same backbone and tiles reads the cached tokens
    code, err = cli(["train", "-c", str(config), "--out", str(tmp_path / "run2"), "--quiet"])
    assert code == 0, err
    again = json.loads((tmp_path / "run2" / "results.json").read_text())
    assert all(c["was_cached"] for c in again["feature_cache"].values())
    assert again["feature_cache"]["test"]["file"] == results["feature_cache"]["test"]["file"]


def test_feature_cache_is_keyed_by_weights_and_tiles_and_survives_damage(tmp_path):
    images = generate_tiles(6, 56, seed=2).images
    a = Backbone(seeded_vit(REG4, 56, 0, **TINY))
    b = Backbone(seeded_vit(REG4, 56, 1, **TINY))
    ta, path_a, hit = cached_features(a, images, tmp_path)
    assert not hit and path_a.is_file() and ta.dtype == torch.float16
    again, _, hit = cached_features(a, images, tmp_path)
    assert hit and torch.equal(again, ta)
    _, path_b, hit = cached_features(b, images, tmp_path)
    assert not hit and path_b != path_a
    _, path_c, _ = cached_features(a, images.flip(0), tmp_path)
    assert path_c != path_a
    path_a.write_bytes(b"not safetensors")
    redone, _, hit = cached_features(a, images, tmp_path)
    assert not hit and torch.equal(redone, ta)


@pytest.mark.parametrize("case, message", [
    ("mask-mismatch", "does not match image folder"),
    ("other-architecture", "has shape (64"),
    ("size", "not a multiple of the patch size 14"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, cli, tiny_weights, case, message):
    images, masks = _write_tiles(tmp_path / "data", n=6)
    weights, _ = tiny_weights(REG4, "safetensors", embed_dim=64, heads=4) if case == "other-architecture" \
        else tiny_weights(REG4, "safetensors")
    if case == "mask-mismatch":
        (masks / "tile003.png").rename(masks / "other.png")
    config = _config(tmp_path, images, masks, weights, **({"size": 100} if case == "size" else {}))
    code, err = cli(["train", "-c", str(config), "--out", str(tmp_path / "run")])
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()
