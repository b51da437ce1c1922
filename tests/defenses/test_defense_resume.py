"""A run stopped after epoch 1 and resumed equals the uninterrupted run: defense state is checkpointed."""

from __future__ import annotations

import pytest
import torch

from robustlab.config import parse_config
from robustlab.core.checkpoint import load_checkpoint
from robustlab.experiment import train_experiment


def _cfg(defense: dict, epochs: int):
    return parse_config({
        "name": "resume", "seed": 1,
        "data": {"dataset": "digits", "batch_size": 64, "val_fraction": 0.0, "train_subset": 192},
        "model": {"name": "small_cnn", "options": {"width": 4, "feature_dim": 16}},
        "train": {"epochs": epochs, "lr": 0.003},
        "defense": defense,
    })


@pytest.mark.parametrize("defense", [
    {"name": "free", "params": {"eps": 0.1, "replays": 2}},
    {"name": "mixed", "params": {"eps": 0.1, "p": 0.5}},
    {"name": "fgsm-rs", "params": {"eps": 0.1, "guard_batch": 32}},
    {"name": "pgd-at", "params": {"eps": 0.1, "steps": 2}},
], ids=lambda d: d["name"])
def test_resume_equals_uninterrupted(defense, tmp_path):
    full = train_experiment(_cfg(defense, 2), tmp_path / "full")
    train_experiment(_cfg(defense, 1), tmp_path / "part")
    resumed = train_experiment(_cfg(defense, 2), tmp_path / "part", resume=True)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed.metrics()) == strip(full.metrics())
    a = load_checkpoint(full.checkpoint("last"))
    b = load_checkpoint(resumed.checkpoint("last"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    for key, value in a["strategy"].items():
        other = b["strategy"][key]
        assert torch.equal(value, other) if isinstance(value, torch.Tensor) else value == other


def test_attack_seed_changes_per_batch_unless_fixed():
    from robustlab.defenses import build_defense
    from robustlab.models import build_model

    model = build_model("small_cnn", 10, in_channels=1, image_size=8, width=4)
    x, y = torch.rand(8, 1, 8, 8), torch.randint(0, 10, (8,))
    d = build_defense("pgd-at", eps=0.1, steps=1)
    assert not torch.equal(d._attack(model, x, y), d._attack(model, x, y))
    fixed = build_defense("pgd-at", eps=0.1, steps=1, attack_params={"seed": 3})
    assert torch.equal(fixed._attack(model, x, y), fixed._attack(model, x, y))
