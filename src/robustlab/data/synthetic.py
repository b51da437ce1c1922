"""Fabricated datasets for smoke runs: the shape and classes of a real dataset, none of its files.

``fabricate("cifar10", n=64)`` returns a uint8-backed dataset whose images are a fixed random
template per class plus noise, so a model can learn it in a few steps and recipes can run end to end
(``--smoke``) on machines without the data. Deterministic for a given seed.
"""

from __future__ import annotations

import dataclasses

import torch

from robustlab.core.errors import RobustlabError
from robustlab.data.spec import DatasetInfo, size_pair
from robustlab.data.tensor_dataset import TensorImageDataset


def fabricate(
    like: str | DatasetInfo, n: int = 64, seed: int = 0, image_size: int | tuple[int, int] | None = None
) -> TensorImageDataset:
    """``n`` fake images shaped like dataset ``like`` (a name or an info), labels balanced over its classes.

    Images are uint8 ``N×C×H×W`` (read as float32 in [0, 1]); ``info`` is the real dataset's with
    ``description`` marking it fabricated and ``train_size``/``test_size`` set to ``n``.
    """
    if isinstance(like, DatasetInfo):
        info = like
    else:
        from robustlab.data.registry import dataset_info

        info = dataset_info(like)
    if n < 1:
        raise RobustlabError(f"a fabricated dataset needs n >= 1 images, got {n}")
    if image_size is not None:
        info = dataclasses.replace(info, image_size=size_pair(image_size))
    classes = max(info.num_classes, 2)
    if info.num_classes < 1:  # e.g. imagefolder: invent two classes
        info = dataclasses.replace(info, num_classes=classes, class_names=("class0", "class1"))
    gen = torch.Generator().manual_seed(seed)
    c, h, w = info.shape
    templates = torch.rand(classes, c, h, w, generator=gen)
    labels = torch.randperm(n, generator=gen) % classes
    noise = torch.rand(n, c, h, w, generator=gen)
    images = (0.6 * templates[labels] + 0.4 * noise).mul_(255).round_().to(torch.uint8)
    info = dataclasses.replace(
        info, train_size=n, test_size=n, description=f"fabricated stand-in for {info.name} (smoke runs)"
    )
    return TensorImageDataset(images, labels, info)
