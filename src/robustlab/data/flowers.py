"""Oxford Flowers-102 from torchvision's layout, decoded from JPEG on access.

Files: ``<root>/flowers-102/jpg/image_00001.jpg`` ..., ``imagelabels.mat`` (``labels``: 1-based class
of every image) and ``setid.mat`` (``trnid``/``valid``/``tstid``: 1-based image ids of the official
train/val/test splits of 1,020/1,020/6,149 images). Labels are returned as 0..101. Images are scaled
to cover ``image_size`` (default 224) and centre-cropped to a square.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from robustlab.core.errors import RobustlabError
from robustlab.data.base import Transform
from robustlab.data.file_dataset import FileImageDataset
from robustlab.data.registry import register_specs
from robustlab.data.spec import (
    DatasetInfo,
    DatasetSpec,
    download_hint,
    missing_data_error,
    run_download,
    size_pair,
)

FOLDER = "flowers-102"
DEFAULT_SIZE = 224
SPLIT_KEYS = {"train": "trnid", "val": "valid", "test": "tstid"}

# Class names in label order, as torchvision's Flowers102.classes (whose 'pink-yellow dahlia?' loses its '?').
FLOWER_CLASSES = (
    "pink primrose",
    "hard-leaved pocket orchid",
    "canterbury bells",
    "sweet pea",
    "english marigold",
    "tiger lily",
    "moon orchid",
    "bird of paradise",
    "monkshood",
    "globe thistle",
    "snapdragon",
    "colt's foot",
    "king protea",
    "spear thistle",
    "yellow iris",
    "globe-flower",
    "purple coneflower",
    "peruvian lily",
    "balloon flower",
    "giant white arum lily",
    "fire lily",
    "pincushion flower",
    "fritillary",
    "red ginger",
    "grape hyacinth",
    "corn poppy",
    "prince of wales feathers",
    "stemless gentian",
    "artichoke",
    "sweet william",
    "carnation",
    "garden phlox",
    "love in the mist",
    "mexican aster",
    "alpine sea holly",
    "ruby-lipped cattleya",
    "cape flower",
    "great masterwort",
    "siam tulip",
    "lenten rose",
    "barbeton daisy",
    "daffodil",
    "sword lily",
    "poinsettia",
    "bolero deep blue",
    "wallflower",
    "marigold",
    "buttercup",
    "oxeye daisy",
    "common dandelion",
    "petunia",
    "wild pansy",
    "primula",
    "sunflower",
    "pelargonium",
    "bishop of llandaff",
    "gaura",
    "geranium",
    "orange dahlia",
    "pink-yellow dahlia",
    "cautleya spicata",
    "japanese anemone",
    "black-eyed susan",
    "silverbush",
    "californian poppy",
    "osteospermum",
    "spring crocus",
    "bearded iris",
    "windflower",
    "tree poppy",
    "gazania",
    "azalea",
    "water lily",
    "rose",
    "thorn apple",
    "morning glory",
    "passion flower",
    "lotus",
    "toad lily",
    "anthurium",
    "frangipani",
    "clematis",
    "hibiscus",
    "columbine",
    "desert-rose",
    "tree mallow",
    "magnolia",
    "cyclamen",
    "watercress",
    "canna lily",
    "hippeastrum",
    "bee balm",
    "ball moss",
    "foxglove",
    "bougainvillea",
    "camellia",
    "mallow",
    "mexican petunia",
    "bromelia",
    "blanket flower",
    "trumpet creeper",
    "blackberry lily",
)

FLOWERS_INFO = DatasetInfo(
    name="flowers102",
    num_classes=102,
    channels=3,
    image_size=(DEFAULT_SIZE, DEFAULT_SIZE),
    mean=(0.485, 0.456, 0.406),  # ImageNet statistics; close enough for natural photos
    std=(0.229, 0.224, 0.225),
    train_size=1_020,
    test_size=6_149,
    description="Oxford Flowers-102: colour photos of 102 flower species (val split: 1,020; resized)",
    class_names=FLOWER_CLASSES,
    splits=("train", "val", "test"),
)


def _files(root: Path) -> tuple[Path, Path, Path]:
    base = root / FOLDER
    return base / "jpg", base / "imagelabels.mat", base / "setid.mat"


def _available(root: Path) -> bool:
    jpg, labels, setid = _files(root)
    return jpg.is_dir() and labels.is_file() and setid.is_file()


def read_split_samples(root: Path, split: str) -> list[tuple[Path, int]]:
    """``(jpg path, label 0..101)`` for every image of ``split``, in the order of ``setid.mat``."""
    from scipy.io import loadmat

    jpg, labels_path, setid_path = _files(root)
    try:
        labels = np.asarray(loadmat(str(labels_path), squeeze_me=True)["labels"]).astype(np.int64).reshape(-1)
        ids = np.asarray(loadmat(str(setid_path), squeeze_me=True)[SPLIT_KEYS[split]]).astype(np.int64)
    except (OSError, ValueError, KeyError, NotImplementedError) as exc:
        raise RobustlabError(f"cannot read Flowers-102 metadata in {labels_path.parent}: {exc}") from exc
    ids = ids.reshape(-1)
    if ids.size and (ids.min() < 1 or ids.max() > labels.size):
        raise RobustlabError(f"{setid_path}: image ids must lie in 1..{labels.size}")
    if labels.size and (labels.min() < 1 or labels.max() > 102):
        raise RobustlabError(f"{labels_path}: labels must lie in 1..102")
    return [(jpg / f"image_{i:05d}.jpg", int(labels[i - 1]) - 1) for i in ids.tolist()]


def load_flowers102(
    split: str,
    root: Path,
    download: bool = False,
    transform: Transform | None = None,
    image_size: int | tuple[int, int] | None = None,
    **_: object,
) -> FileImageDataset:
    """Flowers-102 ``split``: RGB images resized to ``image_size`` (default 224×224), labels 0..101."""
    if download and not _available(root):
        from torchvision.datasets import Flowers102

        run_download("flowers102", lambda: Flowers102(str(root), split=split, download=True), root)
    if not _available(root):
        raise missing_data_error("flowers102", root / FOLDER, download_hint(root / FOLDER))
    hw = size_pair(DEFAULT_SIZE if image_size is None else image_size)
    info = dataclasses.replace(FLOWERS_INFO, image_size=hw)
    return FileImageDataset(read_split_samples(root, split), info, transform)


SPECS = (DatasetSpec(FLOWERS_INFO, load_flowers102, _available, resizable=True, aliases=("flowers-102", "flowers")),)

register_specs(SPECS)
