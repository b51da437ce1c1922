"""Datasets for robustlab: a registry of image classification datasets, views and loaders.

Every dataset yields ``(x, y)`` with ``x`` a float32 ``C×H×W`` tensor in [0, 1] and ``y`` an int;
:func:`make_loader` batches them as ``(float32 B×C×H×W, int64 B)``. Nothing is downloaded unless asked.

Example::

    from robustlab.data import load_dataset, train_val_split, make_loader, augmentation

    train = load_dataset("cifar10", "train", transform=augmentation("cifar"))
    train, val = train_val_split(train, 0.1, seed=0)
    loader = make_loader(train, batch_size=128, shuffle=True, seed=0)
"""

from robustlab.data import cifar, digits, flowers, folder, fonts, mnist, svhn  # noqa: F401 (each registers its datasets)
from robustlab.data.base import ImageDataset
from robustlab.data.bundle import DataBundle
from robustlab.data.file_dataset import FileImageDataset
from robustlab.data.fonts import render_font_digits
from robustlab.data.loaders import collate_pairs, make_loader
from robustlab.data.registry import (
    DATASETS,
    catalog,
    dataset_info,
    default_data_root,
    get_spec,
    is_available,
    list_datasets,
    load_dataset,
    register_specs,
)
from robustlab.data.spec import DataInfo, DatasetInfo, DatasetSpec, PairedInfo, TokenSequenceInfo
from robustlab.data.synthetic import fabricate
from robustlab.data.tensor_dataset import TensorImageDataset
from robustlab.data.transforms import AUGMENTATIONS, GaussianNoise, augmentation
from robustlab.data.views import AdaptedDataset, SubsetDataset, adapt, subset, train_val_split

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "AdaptedDataset",
    "DataBundle",
    "DataInfo",
    "DatasetInfo",
    "DatasetSpec",
    "FileImageDataset",
    "GaussianNoise",
    "ImageDataset",
    "PairedInfo",
    "SubsetDataset",
    "TensorImageDataset",
    "TokenSequenceInfo",
    "adapt",
    "augmentation",
    "catalog",
    "collate_pairs",
    "dataset_info",
    "default_data_root",
    "fabricate",
    "get_spec",
    "is_available",
    "list_datasets",
    "load_dataset",
    "make_loader",
    "register_specs",
    "render_font_digits",
    "subset",
    "train_val_split",
]
