"""Predicted labels and clean accuracy of a classifier: the one place robustlab runs a model for its
predictions.

Both run the model in eval mode (every submodule's own mode restored afterwards, see
:func:`robustlab.core.modes.eval_mode`), without gradients and, for ``amp`` "bf16"/"fp16", under
:func:`robustlab.core.precision.autocast_context`. Neither changes the model's weights.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from robustlab.core.modes import eval_mode
from robustlab.core.precision import autocast_context
from robustlab.data import make_loader


def model_dtype(model: nn.Module) -> torch.dtype:
    """The floating dtype of the model's first floating parameter (float32 when it has none)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def model_device(model: nn.Module) -> torch.device | None:
    """The device of the model's first parameter (else its first buffer); ``None`` when it has neither."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return None


def predict(model: nn.Module, x: Tensor, amp: str = "none", *, batch_size: int | None = None) -> Tensor:
    """Predicted classes ``(N,)`` int64 on ``x``'s device for pixels ``x`` ``(N, C, H, W)`` in [0, 1].

    ``x`` is moved to the model's device (its dtype is kept); ``batch_size`` splits it into forward
    passes of at most that many images (``None``: one pass). An empty ``x`` gives an empty tensor.
    """
    if x.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=x.device)
    device = model_device(model) if isinstance(model, nn.Module) else None
    device = x.device if device is None else device
    step = x.shape[0] if batch_size is None else batch_size
    with torch.no_grad(), eval_mode(model), autocast_context(device, amp):
        out = [model(x[i : i + step].to(device)).argmax(dim=1) for i in range(0, x.shape[0], step)]
    pred = out[0] if len(out) == 1 else torch.cat(out)
    return pred.to(x.device)


def dataset_accuracy(
    model: nn.Module,
    dataset: Any,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    amp: str = "none",
) -> float:
    """Top-1 accuracy of ``model`` on ``dataset`` (items ``(C×H×W pixels in [0, 1], label)``): a
    fraction in [0, 1], 0.0 for an empty dataset.

    Batches of ``batch_size`` images, in dataset order, are moved to ``device`` (default: the model's)
    in the model's floating dtype.
    """
    if device is None:
        device = model_device(model)
    device = torch.device("cpu") if device is None else torch.device(device)
    dtype = model_dtype(model)
    total = 0
    hits = []
    with eval_mode(model):
        for x, y in make_loader(dataset, batch_size=batch_size, shuffle=False):
            x, y = x.to(device, dtype), y.to(device)
            hits.append((predict(model, x, amp) == y).sum())
            total += y.numel()
    correct = int(torch.stack(hits).sum()) if hits else 0
    return correct / total if total else 0.0
