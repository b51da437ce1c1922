"""The dataset registry: names, descriptions, offline availability and loading.

Names are case-insensitive and ``_`` equals ``-`` (``Fashion_MNIST`` is ``fashion-mnist``). Data lives
under :func:`default_data_root` (``$ROBUSTLAB_DATA`` or ``./data``) in torchvision's layout unless a
``root`` is given. Nothing is ever downloaded unless ``download=True``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from robustlab.core.errors import RobustlabError, choice_error
from robustlab.core.progress import log
from robustlab.core.registry import Registry
from robustlab.data.base import ImageDataset, Transform
from robustlab.data.spec import DataInfo, DatasetInfo, DatasetSpec
from robustlab.data.views import adapt

DATA_ENV = "ROBUSTLAB_DATA"

DATASETS: Registry[DatasetSpec] = Registry("dataset")
"""Every dataset spec, keyed by ``spec.info.name`` with ``spec.aliases``. Each dataset module registers
its own specs (:func:`register_specs`); importing :mod:`robustlab.data` imports the built-in ones."""


def register_specs(specs: Iterable[DatasetSpec]) -> None:
    """Register every spec under its name and aliases (a second spec under a taken name is an error)."""
    for spec in specs:
        DATASETS.register(spec.info.name, spec, aliases=spec.aliases)


def get_spec(name: str) -> DatasetSpec:
    """The registered spec of ``name`` (or an alias); RobustlabError listing the choices otherwise."""
    return DATASETS.get(name)


def list_datasets() -> list[DataInfo]:
    """Every registered dataset's info (any kind), sorted by name."""
    return [spec.info for _, spec in DATASETS.items()]


def dataset_info(name: str) -> DatasetInfo:
    """Static info of the image dataset ``name``; RobustlabError (``unknown dataset 'x'; choose one of:
    ...`` listing the image datasets) if unknown or of another kind (token sequences, pairs)."""
    images = [n for n, spec in DATASETS.items() if spec.info.kind == DatasetInfo.kind]
    try:
        spec = DATASETS.get(name)
    except RobustlabError:
        spec = None
    if spec is None or spec.info.kind != DatasetInfo.kind:
        raise choice_error("dataset", name, images)
    return spec.info


def default_data_root() -> Path:
    """Where datasets live by default: ``$ROBUSTLAB_DATA`` if set, else ``./data`` (absolute)."""
    env = os.environ.get(DATA_ENV)
    return (Path(env).expanduser() if env else Path("data")).absolute()


def _root(spec: DatasetSpec, root: Path | str | None) -> Path | None:
    if root is not None:
        return Path(root).expanduser()
    return None if spec.needs_root else default_data_root()


def is_available(name: str, root: Path | str | None = None) -> bool:
    """True when ``name`` can be loaded right now without a download (checks files only)."""
    spec = get_spec(name)
    where = _root(spec, root)
    if where is None:
        return False
    try:
        return bool(spec.available(where))
    except OSError:
        return False


def load_dataset(
    name: str,
    split: str = "train",
    root: Path | str | None = None,
    download: bool = False,
    transform: Transform | None = None,
    image_size: int | tuple[int, int] | None = None,
) -> ImageDataset:
    """Load ``split`` of dataset ``name`` as an :class:`ImageDataset` of float32 C×H×W images in [0, 1].

    ``root`` defaults to :func:`default_data_root` (required for ``imagefolder``). Missing files raise a
    one-line RobustlabError naming the dataset, the folder searched and how to get the data; with
    ``download=True`` torchvision fetches them first (needs internet). ``image_size`` (side or (H, W))
    sets the decode size of file-based and generated datasets and resizes the others with
    :func:`adapt`. ``transform`` is applied to each image on access.
    """
    spec = get_spec(name)
    info = spec.info
    if split not in info.splits:
        raise RobustlabError(
            f"unknown split {split!r} for dataset {info.name!r}; choose one of: {', '.join(info.splits)}"
        )
    where = _root(spec, root)
    if where is None:
        raise RobustlabError(
            f"dataset {info.name!r} needs a root folder (--data-root) holding train/<class>/ image folders"
        )
    ds = spec.load(split=split, root=where, download=download, transform=transform, image_size=image_size)
    if image_size is not None and not spec.resizable:
        ds = adapt(ds, size=image_size)
    log.debug("loaded %s/%s: %d images of %s", info.name, split, len(ds), ds.info.shape)
    return ds


def catalog(root: Path | str | None = None) -> list[dict[str, object]]:
    """One row per registered dataset of any kind, sorted by name, for ``robustlab datasets``: name,
    kind, shape (``shape_text``), train/test sizes, splits, offline availability under ``root``,
    description."""
    return [
        {
            "name": info.name,
            "kind": info.kind,
            "shape": info.shape_text,
            "train": info.train_size,
            "test": info.test_size,
            "splits": ",".join(info.splits),
            "available": is_available(info.name, root),
            "description": info.description,
        }
        for info in list_datasets()
    ]
