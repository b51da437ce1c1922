"""The user's own images: ``<root>/<split>/<class>/<image>`` (torchvision's ImageFolder layout).

The layout rules follow torchvision's ``ImageFolder`` (same extensions, recursive class folders); the
scan is done here so that listing a folder does not import torchvision.

Splits are the sub-folders ``train``, ``val`` and ``test`` that exist. Classes are the sorted class
folder names of ``train`` (of the requested split when there is no ``train``), so labels agree
across splits even when a test folder lacks a class. Images are decoded with PIL on access, converted
to RGB, scaled to cover ``image_size`` (default 64) and centre-cropped.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from robustlab.core.errors import RobustlabError
from robustlab.data.base import Transform
from robustlab.data.file_dataset import FileImageDataset
from robustlab.data.registry import register_specs
from robustlab.data.spec import DatasetInfo, DatasetSpec, missing_data_error, size_pair

DEFAULT_SIZE = 64
# torchvision.datasets.folder.IMG_EXTENSIONS (copied: importing torchvision costs seconds)
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val", "test")

FOLDER_INFO = DatasetInfo(
    name="imagefolder",
    num_classes=0,
    channels=3,
    image_size=(DEFAULT_SIZE, DEFAULT_SIZE),
    mean=(0.485, 0.456, 0.406),  # ImageNet statistics as a neutral default
    std=(0.229, 0.224, 0.225),
    train_size=0,
    test_size=0,
    description="your own images: <root>/{train,val,test}/<class>/*.png|jpg (RGB, resized)",
    class_names=None,
    splits=SPLITS,
)


def _class_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def scan_images(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """``(path, label)`` for every image file under ``folder/<class>/`` (recursively), sorted per class.

    Same rules as torchvision's ``make_dataset``: extension match is case-insensitive, symlinked
    folders are followed, classes without a folder here are simply absent.
    """
    samples: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        for dirpath, _, filenames in sorted(os.walk(class_dir, followlinks=True)):
            for fname in sorted(filenames):
                if fname.lower().endswith(IMG_EXTENSIONS):
                    samples.append((Path(dirpath) / fname, label))
    return samples


def _available(root: Path) -> bool:
    train = root / "train"
    return train.is_dir() and bool(_class_dirs(train))


def _hint(root: Path) -> str:
    return f"put images in {root}/train/<class>/ and {root}/test/<class>/ (one folder per class)"


def load_imagefolder(
    split: str,
    root: Path,
    download: bool = False,
    transform: Transform | None = None,
    image_size: int | tuple[int, int] | None = None,
    **_: object,
) -> FileImageDataset:
    """Images of ``<root>/<split>/<class>/``: RGB float32 3×H×W in [0, 1] at ``image_size`` (default 64)."""
    if download:
        raise RobustlabError("dataset 'imagefolder' is your own data and cannot be downloaded; drop --download")
    folder = root / split
    if not folder.is_dir() or not _class_dirs(folder):
        raise missing_data_error("imagefolder", folder, _hint(root))
    classes = _class_dirs(root / "train") if (root / "train").is_dir() else _class_dirs(folder)
    unknown = sorted(set(_class_dirs(folder)) - set(classes))
    if unknown:
        raise RobustlabError(f"imagefolder split {split!r} has classes missing from train: {', '.join(unknown[:5])}")
    samples = scan_images(folder, classes)
    if not samples:
        exts = ", ".join(IMG_EXTENSIONS)
        raise RobustlabError(f"no images ({exts}) found under {folder}/<class>/")
    hw = size_pair(DEFAULT_SIZE if image_size is None else image_size)
    present = tuple(s for s in SPLITS if (root / s).is_dir())
    info = dataclasses.replace(
        FOLDER_INFO,
        num_classes=len(classes),
        image_size=hw,
        class_names=tuple(classes),
        splits=present,
        description=f"image folder {root}",
    )
    return FileImageDataset(samples, info, transform)


SPECS = (
    DatasetSpec(
        FOLDER_INFO,
        load_imagefolder,
        _available,
        resizable=True,
        aliases=("image-folder", "folder"),
        needs_root=True,
    ),
)

register_specs(SPECS)
