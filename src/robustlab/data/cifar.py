"""CIFAR-10 and CIFAR-100 from torchvision's on-disk layout.

Files: ``<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`` and
``<root>/cifar-100-python/{train, test, meta}`` — the pickled Python batches of the official tarballs.

Security: the official format is :mod:`pickle`. Unpickling runs code chosen by whoever wrote the file,
so only point robustlab at CIFAR files you downloaded yourself. As a safeguard the files are read with a
restricted unpickler that only accepts the few numpy constructors the official batches use (plain
dicts, lists, strings, numbers and numpy arrays); anything else is refused with an error.

torchvision is used for downloading only: its dataset classes verify MD5 sums of the official files,
which we do not need to read them.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robustlab.core.errors import RobustlabError
from robustlab.data.base import Transform
from robustlab.data.registry import register_specs
from robustlab.data.spec import DatasetInfo, DatasetSpec, download_hint, missing_data_error, run_download
from robustlab.data.tensor_dataset import TensorImageDataset

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"
CIFAR10_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
CIFAR100_FILES = {"train": ["train"], "test": ["test"]}

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle",
    "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear",
    "pickup_truck", "pine_tree", "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon",
    "ray", "road", "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail",
    "snake", "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone",
    "television", "tiger", "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale",
    "willow_tree", "wolf", "woman", "worm",
)  # fmt: skip
CIFAR100_COARSE_CLASSES = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "large_omnivores_and_herbivores",
    "medium_mammals", "non-insect_invertebrates", "people", "reptiles", "small_mammals", "trees",
    "vehicles_1", "vehicles_2",
)  # fmt: skip

CIFAR10_INFO = DatasetInfo(
    name="cifar10",
    num_classes=10,
    channels=3,
    image_size=(32, 32),
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    train_size=50_000,
    test_size=10_000,
    description="CIFAR-10: 32x32 colour photos of 10 object classes",
    class_names=CIFAR10_CLASSES,
)
CIFAR100_INFO = DatasetInfo(
    name="cifar100",
    num_classes=100,
    channels=3,
    image_size=(32, 32),
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
    train_size=50_000,
    test_size=10_000,
    description="CIFAR-100: 32x32 colour photos of 100 classes in 20 superclasses",
    class_names=CIFAR100_CLASSES,
)

# (module, name) pairs the official batches need; numpy 1.x writes numpy.core, 2.x numpy._core.
_ALLOWED_GLOBALS = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    *((f"numpy.{core}.multiarray", n) for core in ("core", "_core") for n in ("_reconstruct", "scalar")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except the numpy array constructors."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module.startswith("numpy.core.") and int(np.__version__.split(".")[0]) >= 2:
            module = "numpy._core." + module.removeprefix("numpy.core.")
        return super().find_class(module, name)


def load_pickle(path: Path) -> dict[str, Any]:
    """Read one CIFAR batch/meta pickle into a dict with ``str`` keys (bytes keys are decoded)."""
    try:
        with open(path, "rb") as f:
            obj = _RestrictedUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as exc:
        raise RobustlabError(f"{path} is not a valid CIFAR pickle: {exc}") from exc
    if not isinstance(obj, dict):
        raise RobustlabError(f"{path} is not a valid CIFAR pickle: expected a dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _names(values: Sequence[Any]) -> tuple[str, ...]:
    return tuple(v.decode("latin1") if isinstance(v, bytes) else str(v) for v in values)


def read_batches(
    folder: Path, files: Sequence[str], label_key: str, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Read and concatenate batch files: (uint8 N×3×32×32, int64 N labels, int64 N coarse or None)."""
    datas, labels, coarse = [], [], []
    for fname in files:
        path = folder / fname
        entry = load_pickle(path)
        if "data" not in entry or label_key not in entry:
            raise RobustlabError(f"{path} is not a CIFAR batch: missing 'data' or {label_key!r}")
        data = np.asarray(entry["data"], dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != len(entry[label_key]):
            raise RobustlabError(f"{path}: expected N×3072 image rows matching the labels, got {data.shape}")
        datas.append(data)
        labels.extend(int(v) for v in entry[label_key])
        if "coarse_labels" in entry:
            coarse.extend(int(v) for v in entry["coarse_labels"])
    images = torch.from_numpy(np.concatenate(datas).reshape(-1, 3, 32, 32))
    targets = torch.tensor(labels, dtype=torch.long)
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        raise RobustlabError(f"{folder}: labels must lie in [0, {num_classes}), found {int(targets.max())}")
    coarse_t = torch.tensor(coarse, dtype=torch.long) if len(coarse) == len(labels) and coarse else None
    return images, targets, coarse_t


def _meta_names(path: Path, key: str, expected: int, fallback: tuple[str, ...]) -> tuple[str, ...]:
    if not path.is_file():
        return fallback
    names = _names(load_pickle(path).get(key, ()))
    return names if len(names) == expected else fallback


def _check(folder: Path, files: Sequence[str], name: str) -> None:
    if not all((folder / f).is_file() for f in files):
        raise missing_data_error(name, folder, download_hint(folder))


def _available(folder: str, files: dict[str, list[str]]) -> Callable[[Path], bool]:
    def check(root: Path) -> bool:
        return all((root / folder / f).is_file() for fs in files.values() for f in fs)

    return check


def load_cifar10(
    split: str, root: Path, download: bool = False, transform: Transform | None = None, **_: object
) -> TensorImageDataset:
    """CIFAR-10 ``split`` as uint8-backed images (3×32×32, labels 0..9)."""
    folder = root / CIFAR10_DIR
    files = CIFAR10_FILES[split]
    if download:
        from torchvision.datasets import CIFAR10

        run_download("cifar10", lambda: CIFAR10(str(root), train=split == "train", download=True), root)
    _check(folder, files, "cifar10")
    images, targets, _ = read_batches(folder, files, "labels", 10)
    names = _meta_names(folder / "batches.meta", "label_names", 10, CIFAR10_CLASSES)
    info = CIFAR10_INFO if names == CIFAR10_CLASSES else _with_names(CIFAR10_INFO, names)
    return TensorImageDataset(images, targets, info, transform)


def load_cifar100(
    split: str, root: Path, download: bool = False, transform: Transform | None = None, **_: object
) -> TensorImageDataset:
    """CIFAR-100 ``split`` (3×32×32, 100 fine labels) with ``coarse_targets`` over 20 superclasses."""
    folder = root / CIFAR100_DIR
    files = CIFAR100_FILES[split]
    if download:
        from torchvision.datasets import CIFAR100

        run_download("cifar100", lambda: CIFAR100(str(root), train=split == "train", download=True), root)
    _check(folder, files, "cifar100")
    images, targets, coarse = read_batches(folder, files, "fine_labels", 100)
    names = _meta_names(folder / "meta", "fine_label_names", 100, CIFAR100_CLASSES)
    coarse_names = _meta_names(folder / "meta", "coarse_label_names", 20, CIFAR100_COARSE_CLASSES)
    info = CIFAR100_INFO if names == CIFAR100_CLASSES else _with_names(CIFAR100_INFO, names)
    if coarse is not None and coarse.numel() and (int(coarse.min()) < 0 or int(coarse.max()) >= 20):
        raise RobustlabError(f"{folder}: coarse labels must lie in [0, 20)")
    coarse_classes = coarse_names if coarse is not None else None
    return TensorImageDataset(images, targets, info, transform, coarse, coarse_classes)


def _with_names(info: DatasetInfo, names: tuple[str, ...]) -> DatasetInfo:
    return dataclasses.replace(info, class_names=names)


SPECS = (
    DatasetSpec(CIFAR10_INFO, load_cifar10, _available(CIFAR10_DIR, CIFAR10_FILES), aliases=("cifar-10",)),
    DatasetSpec(CIFAR100_INFO, load_cifar100, _available(CIFAR100_DIR, CIFAR100_FILES), aliases=("cifar-100",)),
)

register_specs(SPECS)
