"""The trainer's speed switches run for real on CPU: bf16 autocast, channels_last, torch.compile.

Each switch must change how the model runs (checked with a forward hook) and not what it learns
(checked against the plain float32 run on the same data order and initial weights).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from robustlab.config import TrainConfig
from robustlab.core.errors import RobustlabError
from robustlab.data import DatasetInfo, TensorImageDataset, load_dataset, make_loader, subset
from robustlab.defenses import build_defense
from robustlab.labs.classification.task import ClassificationTask
from robustlab.models import build_model
from robustlab.training import Trainer


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", "train"), subset(load_dataset("digits", "test"), 256)


def _trainer(train_ds, epochs: int, defense: str = "none", **cfg) -> Trainer:
    torch.manual_seed(0)
    model = build_model("small_cnn", 10, in_channels=train_ds.info.channels, image_size=8, width=8)
    params = {"eps": 0.1, "steps": 2} if defense == "pgd-at" else {}
    loader = make_loader(train_ds, 64, shuffle=True, seed=1, drop_last=True)
    return Trainer(model, ClassificationTask(10), TrainConfig(epochs=epochs, lr=0.003, **cfg), loader,
                   strategy=build_defense(defense, **params))


def _first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def _fit(tr: Trainer, epochs: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Train ``epochs`` epochs; returns the model's inputs (pixels) and the first convolution's
    outputs of every forward pass in train mode."""
    pixels: list[torch.Tensor] = []
    conv_out: list[torch.Tensor] = []
    hooks = [
        tr.model.register_forward_hook(lambda m, args, out: pixels.append(args[0].detach()) if m.training else None),
        _first_conv(tr.model).register_forward_hook(
            lambda m, args, out: conv_out.append(out.detach()) if m.training else None
        ),
    ]
    try:
        for epoch in range(1, epochs + 1):
            tr.train_epoch(epoch)
    finally:
        for h in hooks:
            h.remove()
    return pixels, conv_out


def _weights(tr: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().contiguous() for k, v in tr.model.state_dict().items()}


def test_bf16_autocast_runs_in_bf16_and_learns_like_float32(digits):
    train, test = digits
    fp32, bf16 = _trainer(train, 3), _trainer(train, 3, amp="bf16")
    (_, out32), (_, out16) = _fit(fp32, 3), _fit(bf16, 3)
    assert {t.dtype for t in out32} == {torch.float32}
    assert {t.dtype for t in out16} == {torch.bfloat16}  # the convolutions ran in bf16
    assert all(p.dtype == torch.float32 for p in bf16.model.parameters())  # master weights stay float32
    acc32, acc16 = fp32.validate(make_loader(test, 128))["accuracy"], bf16.validate(make_loader(test, 128))["accuracy"]
    assert acc32 > 0.8
    assert acc16 == pytest.approx(acc32, abs=0.05)


def test_bf16_adversarial_training_keeps_float32_examples(digits):
    """PGD inside a bf16 training step: the adversarial batch reaching the model is float32 in [0, 1]."""
    train, _ = digits
    tr = _trainer(subset(train, 256), 1, defense="pgd-at", amp="bf16")
    inputs = _fit(tr, 1)[0]
    assert {t.dtype for t in inputs} == {torch.float32}
    assert min(t.min().item() for t in inputs) >= 0.0 and max(t.max().item() for t in inputs) <= 1.0


def test_fp16_on_cpu_is_refused_when_the_trainer_is_built(digits):
    with pytest.raises(RobustlabError, match="fp16 needs a CUDA GPU; use --amp bf16"):
        _trainer(digits[0], 1, amp="fp16")


def test_channels_last_changes_the_layout_not_the_result():
    """On 3-channel images (with one channel both layouts have the same strides)."""
    g = torch.Generator().manual_seed(0)
    info = DatasetInfo("synthetic", 10, 3, (8, 8), (0.5,) * 3, (0.25,) * 3, 256, 0, "random colour images")
    train = TensorImageDataset(torch.randint(0, 256, (256, 3, 8, 8), generator=g, dtype=torch.uint8),
                               torch.randint(0, 10, (256,), generator=g), info)
    plain, cl = _trainer(train, 1), _trainer(train, 1, channels_last=True)
    weight = _first_conv(cl.model).weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    _fit(plain, 1)
    pixels, _ = _fit(cl, 1)
    assert all(t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous() for t in pixels)
    a, b = _weights(plain), _weights(cl)
    assert all(torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4) for k in a)


def test_compiled_training_matches_eager(digits):
    train, _ = digits
    train = subset(train, 256)
    # SGD: Adam's first steps move every weight by about lr whatever the gradient's size, which
    # would turn float rounding differences between the two graphs into lr-sized ones
    eager, compiled = _trainer(train, 1, optimizer="sgd"), _trainer(train, 1, optimizer="sgd", compile=True)
    assert compiled.train_model is not compiled.model  # the step runs through torch.compile's wrapper
    eager.train_epoch(1)  # no hook here: a Python hook would change what torch.compile traces
    compiled.train_epoch(1)
    a, b = _weights(eager), _weights(compiled)
    assert all(torch.allclose(a[k], b[k], atol=1e-4, rtol=1e-3) for k in a)
