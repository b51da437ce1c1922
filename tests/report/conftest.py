"""Fake run folders for report tests: every results.json section, a few epochs, a tiny PNG."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml

CLASSES = ["airplane", "automobile", "bird", "cat", "deer"]


def tiny_png(width: int = 4, height: int = 3) -> bytes:
    """A valid RGB PNG of a red-green gradient, built by hand (no image library needed)."""
    rows = b"".join(
        b"\x00"
        + b"".join(bytes((255 * x // max(width - 1, 1), 255 * y // max(height - 1, 1), 64)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def full_results(name: str = "cifar10-pgd-at", defense: str = "pgd_at", clean: float = 0.8123) -> dict[str, Any]:
    k = len(CLASSES)
    conf = [[20 if i == j else 2 for j in range(k)] for i in range(k)]
    adv = [[5 if i == j else 6 for j in range(k)] for i in range(k)]
    return {
        "name": name,
        "dataset": "cifar10",
        "model": "resnet18_cifar",
        "defense": {"name": defense, "eps": 8 / 255, "steps": 4} if defense != "none" else {"name": "none"},
        "clean_accuracy": clean,
        "test_size": 10000,
        "training": {"epochs_run": 3, "best_epoch": 2, "seconds": 754.2, "stopped_early": False},
        "n_samples": 500,
        "robust": [
            {
                "attack": "fgsm",
                "norm": "linf",
                "eps": 4 / 255,
                "eps_255": 4.0,
                "accuracy": 0.5311,
                "success_rate": 0.3462,
                "mean_norm": 0.0157,
                "median_norm": 0.0157,
                "seconds": 1.5,
            },
            {
                "attack": "pgd",
                "norm": "linf",
                "eps": 4 / 255,
                "eps_255": 4.0,
                "accuracy": 0.4822,
                "success_rate": 0.4063,
                "mean_norm": 0.0151,
                "median_norm": 0.0156,
                "seconds": 12.0,
            },
            {
                "attack": "fgsm",
                "norm": "linf",
                "eps": 8 / 255,
                "eps_255": 8.0,
                "accuracy": 0.4457,
                "success_rate": 0.4513,
                "mean_norm": 0.0314,
                "median_norm": 0.0314,
                "seconds": 1.4,
            },
            {
                "attack": "pgd",
                "norm": "linf",
                "eps": 8 / 255,
                "eps_255": 8.0,
                "accuracy": 0.2423,
                "success_rate": 0.7017,
                "mean_norm": 0.0301,
                "median_norm": 0.0313,
                "seconds": 25.3,
            },
        ],
        "worst_case": [{"eps": 4 / 255, "accuracy": 0.4701}, {"eps": 8 / 255, "accuracy": 0.2311}],
        "noise": [
            {"sigma": 0.05, "accuracy": 0.74},
            {"sigma": 0.1, "accuracy": 0.61},
            {"sigma": 0.2, "accuracy": 0.33},
        ],
        "per_class": {c: {"clean": 0.7 + 0.05 * i, "robust": 0.2 + 0.04 * i} for i, c in enumerate(CLASSES)},
        "superclass": {
            "clean_accuracy": 0.7886,
            "robust_accuracy": 0.5041,
            "per_superclass": {"vehicles": {"clean": 0.81, "robust": 0.52}, "animals": {"clean": 0.77, "robust": 0.49}},
        },
        "confusion": {"clean": conf, "adversarial": adv, "eps": 8 / 255},
        "min_perturbation": {
            "deepfool": {
                "norm": "l2",
                "found": 0.97,
                "n": 480,
                "mean": 0.0141,
                "median": 0.0123,
                "quantiles": {"0.1": 0.0051, "0.25": 0.0081, "0.75": 0.0189, "0.9": 0.0301},
            },
        },
        "sanity": {
            "samples": 64,
            "standalone": [
                {"attack": "fgsm", "norm": "linf", "eps": 8 / 255, "accuracy": 0.4531},
                {"attack": "pgd", "norm": "linf", "eps": 8 / 255, "accuracy": 0.2656},
            ],
        },
        "flags": [
            {
                "code": "robust_above_clean",
                "severity": "error",
                "message": "Robust accuracy 44.57% is above clean accuracy 4.81%.",
                "remedy": "Check for label leaking: evaluate with attacks that do not use the true label.",
            },
            {
                "code": "pgd_weaker_than_fgsm",
                "severity": "warning",
                "message": "PGD is weaker than FGSM at eps 0.0157.",
                "remedy": "Use more PGD steps or restarts.",
            },
        ],
        "eval_seconds": 41.3,
        "early_exit": {"enabled": True, "attacked_points": 620, "skipped_points": 380},
        "cross_domain": [
            {"dataset": "cifar10", "accuracy": 0.8123, "role": "source"},
            {"dataset": "svhn", "accuracy": 0.1189, "role": "target"},
        ],
        "figures": {"gradcam": "figures/gradcam.png", "umap": "umap.png"},
    }


def make_run(
    root: Path,
    name: str = "cifar10-pgd-at",
    results: dict[str, Any] | None = None,
    defense: str = "pgd_at",
    clean: float = 0.8123,
    smoke: bool = False,
) -> Path:
    """A run folder under ``root`` with config.yaml, 3 epochs of metrics, results.json and two PNGs."""
    run = root / name
    (run / "figures").mkdir(parents=True)
    config = {
        "name": name,
        "seed": 7,
        "device": "cpu",
        "data": {"dataset": "cifar10", "batch_size": 128, "augmentation": "crop_flip", "val_fraction": 0.1},
        "model": {"name": "resnet18_cifar", "batchnorm": True, "options": {}},
        "train": {"epochs": 3, "optimizer": "adam", "lr": 0.001, "weight_decay": 0.0001, "schedule": "cosine"},
        "defense": {"name": defense, "params": {"eps": 8 / 255, "steps": 4} if defense != "none" else {}},
        "evaluate": {"attacks": ["fgsm", "pgd"], "eps": [4 / 255, 8 / 255], "norm": "linf", "steps": 10},
        "smoke": smoke,
    }
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    lines = [
        {
            "epoch": e,
            "lr": 0.001 / e,
            "train_loss": 2.0 / e,
            "train_accuracy": 0.3 + 0.1 * e,
            "val_loss": 2.1 / e,
            "val_accuracy": 0.28 + 0.1 * e,
            "adv_train_accuracy": 0.1 * e,
            "seconds": 250.0,
            "best": e != 3,
        }
        for e in (1, 2, 3)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    res = full_results(name, defense, clean) if results is None else results
    (run / "results.json").write_text(json.dumps(res))
    (run / "figures" / "gradcam.png").write_bytes(tiny_png())
    (run / "figures" / "umap.png").write_bytes(tiny_png(5, 5))
    return run


@pytest.fixture
def fake_run(tmp_path: Path) -> Path:
    """A complete run folder (every results.json section, flags included)."""
    return make_run(tmp_path)


@pytest.fixture
def run_factory(tmp_path: Path):
    """``run_factory(name=..., results=..., defense=..., clean=..., smoke=...)`` → a run folder in tmp_path."""
    return lambda **kw: make_run(tmp_path, **kw)
