"""All explain figures of one run in one call: adversarial grid, Grad-CAM (optionally side by side
with a second model) and the UMAP of train / test / adversarial-test features."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustlab.core.errors import RobustlabError
from robustlab.core.progress import log
from robustlab.core.runs import RunDir
from robustlab.explain.embeddings import MAX_UMAP_POINTS, features, umap_figure
from robustlab.explain.gradcam import gradcam_figure
from robustlab.explain.grid import adversarial_grid
from robustlab.models.inference import predict

FIGURE_FILES = {"adversarial_grid": "adversarial_grid.png", "gradcam": "gradcam.png", "umap": "umap.png"}


def pick_indices(labels: torch.Tensor | None, size: int, n: int, seed: int = 0) -> list[int]:
    """``n`` indices of a dataset of ``size`` items, spread over classes: a seeded shuffle, then one
    image per class in turn (so 8 images of a 10-class set show 8 classes). Without ``labels``,
    the first ``n``."""
    n = max(0, min(n, size))
    if labels is None:
        return list(range(n))
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(size, generator=g)
    by_class: dict[int, list[int]] = {}
    for i in order.tolist():
        by_class.setdefault(int(labels[i]), []).append(i)
    queues = [by_class[c] for c in sorted(by_class)]
    picked: list[int] = []
    depth = 0
    while len(picked) < n:
        for q in queues:
            if depth < len(q) and len(picked) < n:
                picked.append(q[depth])
        depth += 1
    return picked


def _targets(dataset: Any) -> torch.Tensor | None:
    try:
        t = dataset.targets
    except (AttributeError, NotImplementedError):
        return None
    return torch.as_tensor(t).reshape(-1) if t is not None else None


def _take(dataset: Any, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in indices]
    return torch.stack([x for x, _ in items]).float(), torch.as_tensor([int(y) for _, y in items], dtype=torch.long)


def _batches(dataset: Any, n: int, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    n = min(n, len(dataset))
    for start in range(0, n, batch_size):
        yield _take(dataset, list(range(start, min(start + batch_size, n))))


def _adversarial_batches(
    attack: Any, model: nn.Module, dataset: Any, n: int, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    device = next(model.parameters()).device
    for x, y in _batches(dataset, n, batch_size):
        yield attack(model, x.to(device), y.to(device)).detach().cpu(), y


def _model_name(run: RunDir, given: str | None) -> str:
    if given:
        return given
    name = run.results().get("name") if run.results_path.exists() else None
    return str(name or run.path.name)


def explain_run(
    run_dir: str | Path | RunDir,
    model: nn.Module,
    dataset: Any,
    n_images: int = 8,
    attack: str | None = "pgd",
    eps: float = 8 / 255,
    other: tuple[str, nn.Module] | None = None,
    *,
    train_dataset: Any | None = None,
    attack_params: Mapping[str, Any] | None = None,
    umap_points: int = 1500,
    class_names: list[str] | None = None,
    name: str | None = None,
    seed: int = 0,
    batch_size: int = 128,
) -> dict[str, str]:
    """Write the explain figures of a trained ``model`` into ``run_dir/figures/``.

    ``dataset`` is the test split (an ``ImageDataset``: items ``(C×H×W in [0, 1], label)``);
    ``train_dataset`` adds a "train" panel to the UMAP. ``attack`` (a name for
    :func:`robustlab.attacks.build_attack`, with ``eps`` and ``attack_params``; ``None`` for none)
    makes the adversarial images. ``other`` is a second ``(name, model)`` shown next to this one in
    the Grad-CAM figure (e.g. before/after adversarial training), attacked on its own.

    Figures: ``adversarial_grid`` (needs an attack), ``gradcam`` (``n_images`` images spread over
    classes) and ``umap`` (at most ``umap_points`` ≤ 2,000 points over train / test / adversarial
    test). Returns ``{figure name: path relative to the run folder}`` (e.g.
    ``{"gradcam": "figures/gradcam.png"}``) for results.json's ``figures``.
    """
    run = run_dir if isinstance(run_dir, RunDir) else RunDir(run_dir)
    if n_images < 1:
        raise RobustlabError(f"n_images must be >= 1, got {n_images}")
    if len(dataset) == 0:
        raise RobustlabError("explain needs a non-empty dataset")
    names = class_names or list(getattr(dataset, "classes", []) or []) or None
    this = _model_name(run, name)
    models: dict[str, nn.Module] = {this: model}
    if other is not None:
        other_name, other_model = other
        models[other_name if other_name != this else f"{other_name} (other)"] = other_model
    atk = None
    if attack:
        from robustlab.attacks import build_attack

        atk = build_attack(attack, eps=eps, **dict(attack_params or {}))
    figures = run.path / "figures"
    out: dict[str, str] = {}

    idx = pick_indices(_targets(dataset), len(dataset), n_images, seed)
    x, y = _take(dataset, idx)
    x_adv: dict[str, torch.Tensor] = {}
    if atk is not None:
        for mname, m in models.items():
            device = next(m.parameters()).device
            x_adv[mname] = atk(m, x.to(device), y.to(device)).detach().cpu()
        adv = x_adv[this]
        adversarial_grid(
            x,
            adv,
            y,
            predict(model, x, batch_size=256),
            predict(model, adv, batch_size=256),
            names,
            figures / FIGURE_FILES["adversarial_grid"],
            norm=getattr(atk, "norm", "linf"),
        )
        out["adversarial_grid"] = f"figures/{FIGURE_FILES['adversarial_grid']}"
    gradcam_figure(models, x, x_adv or None, y, names, figures / FIGURE_FILES["gradcam"])
    out["gradcam"] = f"figures/{FIGURE_FILES['gradcam']}"

    n_sets = 1 + int(train_dataset is not None) + int(atk is not None)
    per_set = max(1, min(umap_points, MAX_UMAP_POINTS) // n_sets)
    sets: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    if train_dataset is not None and len(train_dataset) > 0:
        sets["train"] = features(model, _batches(train_dataset, per_set, batch_size), per_set)
    sets["test"] = features(model, _batches(dataset, per_set, batch_size), per_set)
    if atk is not None:
        sets["adversarial test"] = features(
            model, _adversarial_batches(atk, model, dataset, per_set, batch_size), per_set
        )
    umap_figure(sets, names, figures / FIGURE_FILES["umap"], seed=seed)
    out["umap"] = f"figures/{FIGURE_FILES['umap']}"
    log.info("explain: wrote %s to %s", ", ".join(out), figures)
    return out
