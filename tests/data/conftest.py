"""Fixtures that write tiny datasets in the real on-disk formats into ``tmp_path``.

Nothing here downloads. Each writer returns the dataset root to pass as ``root=``.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from robustlab.data import TensorImageDataset
from robustlab.data.spec import DatasetInfo


@pytest.fixture(autouse=True)
def _isolated_data_env(tmp_path, monkeypatch):
    """Point the default data root at an empty folder and drop any user override of the fashion dir."""
    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path / "default-data"))
    monkeypatch.delenv("ROBUSTLAB_FASHION_MNIST_DIR", raising=False)


# -- CIFAR --------------------------------------------------------------------------------------


def _cifar_rows(labels: list[int], rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)


def _dump(path: Path, obj: dict, protocol: int) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


@pytest.fixture
def cifar10_root(tmp_path) -> Path:
    """cifar-10-batches-py: 5 train batches of 4 images, a test batch with one image per class, meta.

    Keys are bytes, as the official pickles read with ``encoding='bytes'``; protocol 2 like the tarball.
    """
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        labels = [(2 * i + k) % 10 for k in range(4)]
        batch = {
            b"batch_label": f"training batch {i} of 5".encode(),
            b"labels": labels,
            b"data": _cifar_rows(labels, rng),
            b"filenames": [f"img_{i}_{k}.png".encode() for k in range(4)],
        }
        _dump(folder / f"data_batch_{i}", batch, protocol=2)
    test_labels = list(range(10))
    _dump(
        folder / "test_batch",
        {
            b"batch_label": b"testing batch 1 of 1",
            b"labels": test_labels,
            b"data": _cifar_rows(test_labels, rng),
        },
        protocol=2,
    )
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    _dump(folder / "batches.meta", {b"label_names": names, b"num_cases_per_batch": 4, b"num_vis": 3072}, 2)
    return tmp_path / "cifar"


@pytest.fixture
def cifar100_root(tmp_path) -> Path:
    """cifar-100-python with train (2 images per fine class), test (1 per class) and meta; str keys."""
    from robustlab.data.cifar import CIFAR100_CLASSES, CIFAR100_COARSE_CLASSES

    rng = np.random.default_rng(1)
    folder = tmp_path / "c100" / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, per_class in (("train", 2), ("test", 1)):
        fine = [c for c in range(100) for _ in range(per_class)]
        coarse = [c % 20 for c in fine]  # any fixed fine->coarse map will do for the test
        entry = {
            "filenames": [f"{split}_{k}.png" for k in range(len(fine))],
            "batch_label": f"{split} batch",
            "fine_labels": fine,
            "coarse_labels": coarse,
            "data": _cifar_rows(fine, rng),
        }
        _dump(folder / split, entry, protocol=pickle.HIGHEST_PROTOCOL)
    meta = {"fine_label_names": list(CIFAR100_CLASSES), "coarse_label_names": list(CIFAR100_COARSE_CLASSES)}
    _dump(folder / "meta", meta, protocol=pickle.HIGHEST_PROTOCOL)
    return tmp_path / "c100"


# -- SVHN ---------------------------------------------------------------------------------------


@pytest.fixture
def svhn_root(tmp_path) -> Path:
    """train_32x32.mat / test_32x32.mat with X as H×W×C×N uint8 and y as N×1 (10 means digit 0)."""
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    root = tmp_path / "svhn-root"
    root.mkdir()
    for split, n in (("train", 12), ("test", 6)):
        x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # 1..10
        savemat(root / f"{split}_32x32.mat", {"X": x, "y": y})
    return root


# -- MNIST-style IDX ----------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format (magic 0x00000803 for 3-d, 0x00000801 for 1-d)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


@pytest.fixture
def write_idx() -> Callable[..., Path]:
    """write_idx(folder, n_train, n_test, gz) writes the four MNIST files; returns the folder."""

    def write(folder: Path, n_train: int = 20, n_test: int = 10, gz: bool = True, seed: int = 0) -> Path:
        rng = np.random.default_rng(seed)
        folder.mkdir(parents=True, exist_ok=True)
        for prefix, n in (("train", n_train), ("t10k", n_test)):
            files = {
                f"{prefix}-images-idx3-ubyte": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                f"{prefix}-labels-idx1-ubyte": (np.arange(n) % 10).astype(np.uint8),
            }
            for name, arr in files.items():
                data = idx_bytes(arr)
                if gz:
                    with gzip.open(folder / f"{name}.gz", "wb") as f:
                        f.write(data)
                else:
                    (folder / name).write_bytes(data)
        return folder

    return write


# -- image files --------------------------------------------------------------------------------


def _save_image(path: Path, size: tuple[int, int], colour: tuple[int, int, int], mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", size, colour)
    img.convert(mode).save(path)


@pytest.fixture
def flowers_root(tmp_path) -> Path:
    """flowers-102/jpg/image_0000k.jpg (12 tiny JPEGs), imagelabels.mat, setid.mat (1-based ids)."""
    from scipy.io import savemat

    root = tmp_path / "flowers-root"
    base = root / "flowers-102"
    n = 12
    for i in range(1, n + 1):
        _save_image(base / "jpg" / f"image_{i:05d}.jpg", (30 + i, 20 + 2 * i), (20 * i, 100, 255 - 20 * i))
    labels = np.array([[1, 2, 3, 102, 5, 6, 7, 8, 9, 10, 50, 1]], dtype=np.uint8)  # 1-based
    savemat(base / "imagelabels.mat", {"labels": labels})
    savemat(
        base / "setid.mat",
        {
            "trnid": np.array([[1, 2, 3, 4]], dtype=np.uint16),
            "valid": np.array([[5, 6, 7]], dtype=np.uint16),
            "tstid": np.array([[8, 9, 10, 11, 12]], dtype=np.uint16),
        },
    )
    return root


@pytest.fixture
def imagefolder_root(tmp_path) -> Path:
    """train/{cat,dog}/*.png (RGB and grayscale, mixed sizes) and test/cat/*.png (no dog in test)."""
    root = tmp_path / "myimages"
    for k in range(3):
        _save_image(root / "train" / "cat" / f"c{k}.png", (40 + k, 30), (200, 10 * k, 0))
        _save_image(root / "train" / "dog" / f"d{k}.png", (16, 16), (0, 50, 200), mode="L")
    _save_image(root / "test" / "cat" / "t0.png", (64, 64), (255, 255, 255))
    (root / "train" / "dog" / "notes.txt").write_text("not an image")
    return root


# -- in-memory datasets -------------------------------------------------------------------------


def make_tensor_dataset(n: int = 40, channels: int = 1, size: int = 8, num_classes: int = 4) -> TensorImageDataset:
    """A small uint8-backed dataset whose image i has all pixels = i (mod 256) and label i % num_classes."""
    data = (torch.arange(n, dtype=torch.int64) % 256).to(torch.uint8).view(n, 1, 1, 1).expand(n, channels, size, size)
    info = DatasetInfo(
        name="toy",
        num_classes=num_classes,
        channels=channels,
        image_size=(size, size),
        mean=(0.5,) * channels,
        std=(0.25,) * channels,
        train_size=n,
        test_size=0,
        description="toy",
    )
    return TensorImageDataset(data.contiguous(), torch.arange(n) % num_classes, info)


@pytest.fixture
def toy() -> Callable[..., TensorImageDataset]:
    """Factory for small in-memory datasets (see :func:`make_tensor_dataset`)."""
    return make_tensor_dataset
