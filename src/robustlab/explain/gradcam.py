"""Grad-CAM maps (pytorch-grad-cam) for any robustlab classifier, and the before/after figure.

:func:`gradcam` leaves the model exactly as it found it: training/eval mode, ``requires_grad`` of
every parameter and their ``.grad`` are restored, and the library's forward hooks are removed even
when something fails.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robustlab.core.errors import RobustlabError
from robustlab.core.modes import eval_mode
from robustlab.models.inference import predict
from robustlab.viz import RED, label_name, new_figure, plain, save_figure, show_image, to_image

Target = int | Sequence[int] | torch.Tensor | None
CAM_ALPHA = 0.45


def _targets(target: Target, n: int) -> list[int] | None:
    if target is None:
        return None
    if isinstance(target, int):
        return [target] * n
    t = torch.as_tensor(target).reshape(-1).tolist()
    if len(t) != n:
        raise RobustlabError(f"gradcam: {len(t)} targets for {n} images; give one per image, one int, or None")
    return [int(v) for v in t]


def gradcam(model: nn.Module, x: torch.Tensor, target: Target = None, batch_size: int = 64) -> torch.Tensor:
    """Grad-CAM of ``model`` on pixels ``x`` (``N×C×H×W`` or ``C×H×W`` in [0, 1]).

    ``target``: the class explained per image (``None``: the predicted class; an int: that class for
    every image; a sequence/tensor: one class per image). Uses ``model.cam_target_layers()`` and
    ``model.cam_reshape_transform`` (token → grid for ViTs).

    Returns a float32 CPU tensor ``(N, H, W)`` in [0, 1] (each map min–max scaled; all zeros where
    no region raises the target score). The model's mode, parameters' ``requires_grad`` and
    ``.grad`` are restored (each submodule's own mode), and no hook remains on the target layers afterwards.
    """
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if x.dim() == 3:
        x = x.unsqueeze(0)
    if x.dim() != 4:
        raise RobustlabError(f"gradcam expects images N×C×H×W, got shape {tuple(x.shape)}")
    if not hasattr(model, "cam_target_layers"):
        raise RobustlabError(f"gradcam needs a robustlab ImageClassifier, got {type(model).__name__}")
    n = x.shape[0]
    classes = _targets(target, n)
    layers = model.cam_target_layers()
    reshape = getattr(model, "cam_reshape_transform", None)
    params = list(model.parameters())
    device = params[0].device if params else torch.device("cpu")
    saved = [(p, p.requires_grad, p.grad) for p in params]
    maps: list[np.ndarray] = []
    cam = None
    with eval_mode(model):
        try:
            # Gradients flow to the input instead of the weights: nothing accumulates in .grad and a
            # frozen backbone still gets a map.
            for p in params:
                p.requires_grad_(False)
            cam = GradCAM(model=model, target_layers=layers, reshape_transform=reshape)
            cam.compute_input_gradient = True
            with torch.enable_grad():
                for start in range(0, n, batch_size):
                    xb = x[start : start + batch_size].detach().to(device, torch.float32)
                    tb = (
                        None
                        if classes is None
                        else [ClassifierOutputTarget(c) for c in classes[start : start + batch_size]]
                    )
                    maps.append(np.asarray(cam(input_tensor=xb, targets=tb), dtype=np.float32))
        finally:
            if cam is not None:
                cam.activations_and_grads.release()
            for p, flag, grad in saved:
                p.requires_grad_(flag)
                p.grad = grad
    out = torch.from_numpy(np.concatenate(maps, axis=0)) if maps else torch.empty(0, *x.shape[-2:])
    return torch.nan_to_num(out.float()).clamp_(0.0, 1.0)


def overlay(ax: Any, image: torch.Tensor, cam: torch.Tensor, title: str = "", color: str = "black") -> None:
    """Draw ``image`` (``C×H×W`` in [0, 1]) with ``cam`` (``H×W`` in [0, 1]) as a jet heat-map on top."""
    img = to_image(image)
    show_image(ax, img, title, color=color, fontsize=8)
    ax.imshow(cam.detach().cpu().numpy(), cmap="jet", alpha=CAM_ALPHA, vmin=0.0, vmax=1.0, interpolation="bilinear")


def gradcam_figure(
    models: Mapping[str, nn.Module],
    x: torch.Tensor,
    x_adv: Mapping[str, torch.Tensor] | None,
    y: torch.Tensor,
    class_names: Sequence[str] | None,
    path: str | Path,
) -> Path:
    """A grid of Grad-CAM overlays: one row per image; a first column with the image and its true
    label, then for each model its map on the clean image and (when ``x_adv[name]`` is given) on the
    adversarial image made against that model. Each map is labelled with the model's prediction on
    that image, in red when wrong. With two models, e.g. before/after adversarial training, the
    figure compares where each looks.

    ``x`` and each ``x_adv[name]``: ``N×C×H×W`` in [0, 1]; ``y``: ``N`` labels. Writes a PNG to
    ``path`` and returns it.
    """
    if not models:
        raise RobustlabError("gradcam_figure needs at least one model")
    x_adv = dict(x_adv or {})
    y = torch.as_tensor(y).reshape(-1).cpu()
    n = x.shape[0]
    columns: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]] = []  # title, images, cams, preds
    for name, model in models.items():
        sets = [("clean", x)] + ([("adversarial", x_adv[name])] if name in x_adv else [])
        for kind, images in sets:
            columns.append(
                (f"{plain(name)}\n{kind}", images.cpu(), gradcam(model, images), predict(model, images, batch_size=256))
            )
    ncols = 1 + len(columns)
    fig = new_figure(1.55 * ncols, 1.75 * n + 0.4)
    axes = np.atleast_2d(fig.subplots(n, ncols, squeeze=False))
    names = list(class_names) if class_names else None
    for i in range(n):
        truth = int(y[i])
        show_image(axes[i, 0], to_image(x[i]), "image" if i == 0 else "", fontsize=8)
        axes[i, 0].set_xlabel(f"true: {label_name(names, truth)}", fontsize=7)
        for j, (title, images, cams, preds) in enumerate(columns, start=1):
            p = int(preds[i])
            overlay(axes[i, j], images[i], cams[i], title if i == 0 else "")
            axes[i, j].set_xlabel(f"pred: {label_name(names, p)}", fontsize=7, color=RED if p != truth else "black")
    fig.tight_layout(pad=0.4)
    return save_figure(fig, path)
