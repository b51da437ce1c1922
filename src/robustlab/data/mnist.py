"""MNIST and Fashion-MNIST from IDX files (gzipped or not).

The files are ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte``, each optionally ending in ``.gz``. Folders searched, first match wins:

* MNIST: ``<root>/MNIST/raw`` (torchvision), ``<root>/mnist``.
* Fashion-MNIST: ``<root>/FashionMNIST/raw`` (torchvision), ``<root>/fashion-mnist``, then the system
  copy: ``$ROBUSTLAB_FASHION_MNIST_DIR`` if set, else ``/usr/share/datasets/fashion-mnist`` (Debian's
  ``dataset-fashion-mnist`` package), read in place.

The IDX reader is our own (gzip + numpy), so any folder holding the four files works; torchvision is
only used to download.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from robustlab.core.errors import RobustlabError
from robustlab.data.base import Transform
from robustlab.data.registry import register_specs
from robustlab.data.spec import DatasetInfo, DatasetSpec, download_hint, missing_data_error, run_download
from robustlab.data.tensor_dataset import TensorImageDataset

FASHION_ENV = "ROBUSTLAB_FASHION_MNIST_DIR"
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

MNIST_INFO = DatasetInfo(
    name="mnist",
    num_classes=10,
    channels=1,
    image_size=(28, 28),
    mean=(0.1307,),
    std=(0.3081,),
    train_size=60_000,
    test_size=10_000,
    description="MNIST: 28x28 grayscale handwritten digits",
    class_names=tuple(str(i) for i in range(10)),
)
FASHION_INFO = DatasetInfo(
    name="fashion-mnist",
    num_classes=10,
    channels=1,
    image_size=(28, 28),
    mean=(0.2860,),
    std=(0.3530,),
    train_size=60_000,
    test_size=10_000,
    description="Fashion-MNIST: 28x28 grayscale photos of 10 clothing types",
    class_names=(
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
        "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    ),
)  # fmt: skip


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip detected from its magic bytes) into a numpy array of its declared shape."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
        opener = gzip.open if head == b"\x1f\x8b" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise RobustlabError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise RobustlabError(f"{path} is not an IDX file (bad magic number)")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    offset = 4 + 4 * ndim
    if len(raw) < offset:
        raise RobustlabError(f"{path} is truncated (header)")
    dims = struct.unpack(f">{ndim}I", raw[4:offset])
    count = math.prod(dims)
    if len(raw) < offset + count * dtype.itemsize:
        raise RobustlabError(f"{path} is truncated: header promises {dims} values")
    return np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(dims)


def _resolve(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def candidate_dirs(name: str, root: Path) -> list[Path]:
    """Folders searched for ``name`` (``mnist`` or ``fashion-mnist``), in order."""
    if name == "mnist":
        return [root / "MNIST" / "raw", root / "mnist"]
    system = Path(os.environ[FASHION_ENV]).expanduser() if os.environ.get(FASHION_ENV) else FASHION_SYSTEM_DIR
    return [root / "FashionMNIST" / "raw", root / "fashion-mnist", system]


def find_split(name: str, root: Path, split: str) -> tuple[Path, Path] | None:
    """(images, labels) paths of ``split`` in the first folder holding both, or ``None``."""
    images_stem, labels_stem = FILES[split]
    for folder in candidate_dirs(name, root):
        images, labels = _resolve(folder, images_stem), _resolve(folder, labels_stem)
        if images is not None and labels is not None:
            return images, labels
    return None


def read_split(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an images/labels IDX pair: (uint8 N×1×H×W, int64 N labels in 0..9)."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise RobustlabError(f"{images_path}: expected uint8 images N×H×W, got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise RobustlabError(f"{labels_path}: expected {images.shape[0]} labels, got shape {labels.shape}")
    if labels.size and int(labels.max()) > 9:
        raise RobustlabError(f"{labels_path}: labels must lie in 0..9, found {int(labels.max())}")
    x = torch.from_numpy(images.copy()).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def _hint(name: str, root: Path) -> str:
    base = download_hint(root / ("MNIST/raw" if name == "mnist" else "FashionMNIST/raw"))
    if name == "fashion-mnist":
        base += (
            f", or run 'apt-get install dataset-fashion-mnist' (or set {FASHION_ENV} to a folder with the four files)"
        )
    return base


def _load(
    name: str, info: DatasetInfo, split: str, root: Path, download: bool, transform: Transform | None
) -> TensorImageDataset:
    found = find_split(name, root, split)
    if found is None and download:
        from torchvision.datasets import MNIST, FashionMNIST

        cls = MNIST if name == "mnist" else FashionMNIST
        run_download(name, lambda: cls(str(root), train=split == "train", download=True), root)
        found = find_split(name, root, split)
    if found is None:
        raise missing_data_error(name, candidate_dirs(name, root), _hint(name, root))
    images, targets = read_split(*found)
    if tuple(images.shape[2:]) != info.image_size:
        raise RobustlabError(f"{found[0]}: expected {info.image_size} images, got {tuple(images.shape[2:])}")
    return TensorImageDataset(images, targets, info, transform)


def load_mnist(
    split: str, root: Path, download: bool = False, transform: Transform | None = None, **_: object
) -> TensorImageDataset:
    """MNIST ``split`` as uint8-backed images (1×28×28, labels 0..9)."""
    return _load("mnist", MNIST_INFO, split, root, download, transform)


def load_fashion_mnist(
    split: str, root: Path, download: bool = False, transform: Transform | None = None, **_: object
) -> TensorImageDataset:
    """Fashion-MNIST ``split`` (1×28×28, labels 0..9), also from the Debian system folder."""
    return _load("fashion-mnist", FASHION_INFO, split, root, download, transform)


def _available(name: str) -> Callable[[Path], bool]:
    def check(root: Path) -> bool:
        return all(find_split(name, root, split) is not None for split in FILES)

    return check


SPECS = (
    DatasetSpec(MNIST_INFO, load_mnist, _available("mnist")),
    DatasetSpec(
        FASHION_INFO,
        load_fashion_mnist,
        _available("fashion-mnist"),
        aliases=("fashionmnist",),
    ),
)

register_specs(SPECS)
