"""Grad-CAM: maps of shape (N, H, W) in [0, 1] for CNNs and ViTs; the model is left exactly as found."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustlab.explain import gradcam, gradcam_figure
from robustlab.models import build_model

torch.set_num_threads(1)

MODELS = {
    "small_cnn": {},
    "resnet18_cifar": {},
    "vit": {"variant": "tiny"},
}


def make(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, 10, in_channels=3, image_size=32, **MODELS[name])


def hooks_left(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


@pytest.mark.parametrize("name", list(MODELS))
def test_maps_and_model_restored(name: str) -> None:
    model = make(name)
    model.train()
    params = list(model.parameters())
    params[0].requires_grad_(False)  # a frozen layer stays frozen
    marker = torch.full_like(params[-1], 3.0)
    params[-1].grad = marker  # an existing gradient survives
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    x_before = x.clone()

    cams = gradcam(model, x)

    assert cams.shape == (2, 32, 32) and cams.dtype == torch.float32
    assert torch.isfinite(cams).all() and cams.min() >= 0 and cams.max() <= 1
    assert cams.flatten(1).amax(1).gt(0.5).all()  # min-max scaled per image
    assert model.training
    assert not params[0].requires_grad and all(p.requires_grad for p in params[1:])
    assert params[-1].grad is marker and all(p.grad is None for p in params[:-1])
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())  # no BN update
    assert hooks_left(model) == 0
    assert torch.equal(x, x_before)


def test_targets_and_single_image() -> None:
    model = make("small_cnn").eval()
    x = torch.rand(3, 3, 32, 32)
    assert gradcam(model, x, target=4).shape == (3, 32, 32)
    assert gradcam(model, x, target=torch.tensor([0, 1, 2])).shape == (3, 32, 32)
    assert gradcam(model, x[0]).shape == (1, 32, 32)
    assert not model.training


def test_hooks_released_when_it_fails() -> None:
    model = make("small_cnn")
    with pytest.raises(IndexError):
        gradcam(model, torch.rand(2, 3, 32, 32), target=[99, 99])  # no class 99: the library fails
    assert hooks_left(model) == 0
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_gradcam_figure_before_after(tmp_path: Path) -> None:
    before, after = make("small_cnn"), make("small_cnn")
    x = torch.rand(2, 3, 32, 32)
    x_adv = {"before": (x + 0.03).clamp(0, 1), "after": (x - 0.03).clamp(0, 1)}
    out = gradcam_figure(
        {"before": before, "after": after},
        x,
        x_adv,
        torch.tensor([1, 2]),
        [f"class {i}" for i in range(10)],
        tmp_path / "cam.png",
    )
    assert out.read_bytes().startswith(b"\x89PNG")
    assert hooks_left(before) == 0 and hooks_left(after) == 0
