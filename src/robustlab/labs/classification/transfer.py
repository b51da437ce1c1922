"""Transfer learning: start from a trained checkpoint, optionally freeze the backbone, few images.

Nothing new is needed in the trainer: ``train.init_from`` loads a checkpoint's (or an upstream
torchvision/timm file's) backbone weights, ``train.freeze_backbone`` trains only the linear head
(the frozen backbone also stays in eval mode, so its batch-norm statistics are kept), and
``data.train_subset`` keeps a seeded subset of the target training set. For example, fine-tune the
classifier of an MNIST-trained ResNet-18 with frozen convolutions on 1,000 SVHN images::

    robustlab train --dataset svhn --model resnet18_cifar --init-from runs/mnist/checkpoints/best.pt \\
        --freeze-backbone --train-subset 1000 --epochs 10

Adversarial fine-tuning is the same with ``--defense pgd-at`` (see
:mod:`robustlab.defenses.pgd_at`). :func:`fine_tune_config` builds such a config in code.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustlab.core.checks import check_int
from robustlab.core.errors import RobustlabError

if TYPE_CHECKING:
    from robustlab.labs.classification.config import ClassificationConfig as ExperimentConfig


def fine_tune_config(
    base_cfg: ExperimentConfig,
    init_from: str | Path,
    freeze_backbone: bool = True,
    n_images: int | None = 1000,
    epochs: int | None = None,
    lr: float | None = None,
    name: str | None = None,
    **train_updates: Any,
) -> ExperimentConfig:
    """A copy of ``base_cfg`` that fine-tunes from ``init_from``.

    Args:
        base_cfg: the target experiment (its dataset is the *target* dataset).
        init_from: checkpoint (``runs/X/checkpoints/best.pt``) or weights file to start from.
        freeze_backbone: train only the head (True) or the whole network.
        n_images: keep this many target training images (seeded subset); None keeps them all.
        epochs, lr: override the base config's training epochs / learning rate when given.
        name: run name (default: ``<base name>-finetune``).
        train_updates: any other ``train.*`` field (``optimizer="adam"``, ``schedule="cosine"``, ...).

    Raises :class:`RobustlabError` when ``init_from`` does not exist or a value is out of range.
    """
    from robustlab.core.config import validate_model

    if not Path(init_from).is_file():
        raise RobustlabError(f"init_from {str(init_from)!r} is not a file (e.g. runs/X/checkpoints/best.pt)")
    train = base_cfg.train.model_dump()
    train.update({"init_from": str(init_from), "freeze_backbone": bool(freeze_backbone)})
    if epochs is not None:
        train["epochs"] = epochs
    if lr is not None:
        train["lr"] = lr
    train.update(train_updates)
    data = base_cfg.data.model_dump()
    if n_images is not None:
        data["train_subset"] = check_int("n_images", n_images)
    return base_cfg.model_copy(update={
        "name": name or f"{base_cfg.name}-finetune",
        "train": validate_model(type(base_cfg.train), train, where="train"),
        "data": validate_model(type(base_cfg.data), data, where="data"),
    })
