"""UMAP of features, the adversarial grid, and explain_run writing everything into a run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from robustlab.data.spec import DatasetInfo
from robustlab.data.tensor_dataset import TensorImageDataset
from robustlab.explain import (
    adversarial_grid,
    amplify_perturbation,
    embed_2d,
    explain_run,
    features,
    pick_indices,
    umap_figure,
)
from robustlab.models import build_model
from robustlab.report import build_report

torch.set_num_threads(1)
PNG = b"\x89PNG\r\n\x1a\n"
NAMES = ("zero", "one", "two", "three", "four")


def tiny_dataset(n: int, seed: int) -> TensorImageDataset:
    info = DatasetInfo("tiny", 5, 1, (16, 16), (0.5,), (0.5,), n, n, "random test images", class_names=NAMES)
    g = torch.Generator().manual_seed(seed)
    return TensorImageDataset(
        torch.randint(0, 256, (n, 1, 16, 16), generator=g, dtype=torch.uint8), torch.arange(n) % 5, info
    )


def test_features_shapes_and_mode() -> None:
    model = build_model("small_cnn", 5, in_channels=1, image_size=16).train()
    ds = tiny_dataset(30, 0)
    loader = [(torch.stack([ds[i][0] for i in range(s, s + 10)]), torch.arange(s, s + 10) % 5) for s in (0, 10, 20)]
    f, y = features(model, loader, max_points=25)
    assert f.shape == (25, model.feature_dim) and y.shape == (25,) and y.dtype == torch.long
    assert model.training


@pytest.mark.xdist_group("umap")
def test_umap_figure(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    sets = {
        name: (torch.randn(40, 16, generator=g) + shift, torch.arange(40) % 5)
        for name, shift in (("train", 0.0), ("test", 0.5), ("adversarial test", 3.0))
    }
    out = umap_figure(sets, list(NAMES), tmp_path / "umap.png", seed=0, max_points=120)
    assert out.read_bytes().startswith(PNG)
    x = torch.randn(60, 8, generator=g).numpy()
    a, b = embed_2d(x, seed=3), embed_2d(x, seed=3)
    assert a.shape == (60, 2) and (a == b).all()  # fixed random_state: same map
    assert embed_2d(x[:5]).shape == (5, 2)  # too few points for UMAP: PCA


def test_adversarial_grid(tmp_path: Path) -> None:
    x = torch.rand(4, 3, 16, 16)
    delta = (torch.rand_like(x) - 0.5) * 0.06
    x_adv = (x + delta).clamp(0, 1)
    shown, factors = amplify_perturbation(x_adv - x)
    assert shown.min() >= 0 and shown.max() <= 1 and factors.shape == (4,)
    assert torch.allclose((shown - 0.5).abs().flatten(1).amax(1), torch.full((4,), 0.5), atol=1e-5)
    y, pc, pa = torch.tensor([0, 1, 2, 3]), torch.tensor([0, 1, 0, 3]), torch.tensor([1, 1, 0, 2])
    out = adversarial_grid(x, x_adv, y, pc, pa, list(NAMES), tmp_path / "grid.png")
    assert out.read_bytes().startswith(PNG)
    gray = adversarial_grid(x[:1, :1], x_adv[:1, :1], y[:1], pc[:1], pa[:1], None, tmp_path / "g1.png", amplify=10)
    assert gray.is_file()


def test_pick_indices_spreads_over_classes() -> None:
    labels = torch.arange(50) % 5
    idx = pick_indices(labels, 50, 7, seed=1)
    assert len(idx) == 7 and len(set(idx)) == 7
    assert {int(labels[i]) for i in idx[:5]} == set(range(5))
    assert pick_indices(None, 3, 8) == [0, 1, 2]


@pytest.mark.xdist_group("umap")
def test_explain_run_writes_figures_the_report_embeds(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model("small_cnn", 5, in_channels=1, image_size=16, width=8, feature_dim=16)
    other = build_model("small_cnn", 5, in_channels=1, image_size=16, width=8, feature_dim=16)
    run = tmp_path / "run"
    (run / "figures").mkdir(parents=True)
    (run / "results.json").write_text(json.dumps({"name": "tiny-run", "clean_accuracy": 0.2}))
    out = explain_run(
        run,
        model,
        tiny_dataset(40, 1),
        n_images=3,
        attack="pgd",
        eps=8 / 255,
        other=("adversarially trained", other),
        train_dataset=tiny_dataset(40, 2),
        attack_params={"steps": 1},
        umap_points=60,
    )
    assert set(out) == {"adversarial_grid", "gradcam", "umap"}
    for rel in out.values():
        assert (run / rel).read_bytes().startswith(PNG)
    results = json.loads((run / "results.json").read_text())
    results["figures"] = out
    (run / "results.json").write_text(json.dumps(results))
    html = build_report(run).read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 3
    assert "Grad-CAM" in html and "UMAP" in html
