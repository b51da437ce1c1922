"""SVHN (Street View House Numbers, cropped digits) from torchvision's layout.

Files: ``<root>/{train,test,extra}_32x32.mat`` (MATLAB v5, read with :func:`scipy.io.loadmat`), where
``X`` is ``32×32×3×N`` uint8 and ``y`` is ``N×1`` with the digit 0 stored as label 10 (mapped to 0
here). ``<root>/svhn/`` is searched too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robustlab.core.errors import RobustlabError
from robustlab.data.base import Transform
from robustlab.data.registry import register_specs
from robustlab.data.spec import DatasetInfo, DatasetSpec, download_hint, missing_data_error, run_download
from robustlab.data.tensor_dataset import TensorImageDataset

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}

SVHN_INFO = DatasetInfo(
    name="svhn",
    num_classes=10,
    channels=3,
    image_size=(32, 32),
    mean=(0.4377, 0.4438, 0.4728),
    std=(0.1980, 0.2010, 0.1970),
    train_size=73_257,
    test_size=26_032,
    description="SVHN: 32x32 colour crops of house-number digits (extra split: 531,131 more)",
    class_names=tuple(str(i) for i in range(10)),
    splits=("train", "test", "extra"),
)


def _find(root: Path, split: str) -> Path | None:
    for folder in (root, root / "svhn"):
        if (folder / FILES[split]).is_file():
            return folder / FILES[split]
    return None


def read_svhn_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one SVHN ``.mat``: (uint8 N×3×32×32, int64 N labels in 0..9)."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path), variable_names=["X", "y"])
    except (OSError, ValueError, NotImplementedError) as exc:
        raise RobustlabError(f"{path} is not a readable SVHN .mat file: {exc}") from exc
    if "X" not in mat or "y" not in mat:
        raise RobustlabError(f"{path} is not an SVHN file: it needs variables 'X' and 'y'")
    x, y = np.asarray(mat["X"]), np.asarray(mat["y"]).astype(np.int64).reshape(-1)
    if x.ndim != 4 or x.shape[2] != 3 or x.shape[3] != y.shape[0]:
        raise RobustlabError(f"{path}: expected X of shape H×W×3×N matching y, got {x.shape} and {y.shape}")
    y = np.where(y == 10, 0, y)
    if y.size and (y.min() < 0 or y.max() > 9):
        raise RobustlabError(f"{path}: labels must lie in 1..10, found {int(y.min())}..{int(y.max())}")
    images = torch.from_numpy(np.ascontiguousarray(np.transpose(x, (3, 2, 0, 1)).astype(np.uint8)))
    return images, torch.from_numpy(y)


def load_svhn(
    split: str, root: Path, download: bool = False, transform: Transform | None = None, **_: object
) -> TensorImageDataset:
    """SVHN ``split`` as uint8-backed images (3×32×32, labels 0..9)."""
    if download and _find(root, split) is None:
        from torchvision.datasets import SVHN

        run_download("svhn", lambda: SVHN(str(root), split=split, download=True), root)
    path = _find(root, split)
    if path is None:
        raise missing_data_error("svhn", [root / FILES[split], root / "svhn" / FILES[split]], download_hint(root))
    images, targets = read_svhn_mat(path)
    return TensorImageDataset(images, targets, SVHN_INFO, transform)


def _available(root: Path) -> bool:
    return _find(root, "train") is not None and _find(root, "test") is not None


SPECS = (DatasetSpec(SVHN_INFO, load_svhn, _available),)

register_specs(SPECS)
