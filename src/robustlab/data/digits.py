"""scikit-learn's embedded 8×8 handwritten digits: always available, no download.

``sklearn.datasets.load_digits`` ships 1,797 grayscale images with values 0..16, stored here as float32
``value / 16`` in [0, 1]. There is no official split, so a fixed permutation
(``numpy.random.default_rng(0)``) assigns the first 1,437 images to ``train`` and the last 360 to
``test``; the split is the same on every machine.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from robustlab.data.base import Transform
from robustlab.data.registry import register_specs
from robustlab.data.spec import DatasetInfo, DatasetSpec
from robustlab.data.tensor_dataset import TensorImageDataset

SPLIT_SEED = 0
TRAIN_SIZE = 1_437
TEST_SIZE = 360

DIGITS_INFO = DatasetInfo(
    name="digits",
    num_classes=10,
    channels=1,
    image_size=(8, 8),
    mean=(0.3053,),
    std=(0.3760,),
    train_size=TRAIN_SIZE,
    test_size=TEST_SIZE,
    description="scikit-learn digits: 8x8 grayscale handwritten digits, embedded (fixed 1437/360 split)",
    class_names=tuple(str(i) for i in range(10)),
)


@lru_cache(maxsize=1)
def _all_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy((np.asarray(bunch.images, dtype=np.float32) / 16.0)[:, None])
    return images, torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))


def load_digits_split(
    split: str, root: Path | None = None, transform: Transform | None = None, **_: object
) -> TensorImageDataset:
    """The ``train`` (1,437) or ``test`` (360) part of the digits: float32 1×8×8 in [0, 1], labels 0..9."""
    images, targets = _all_digits()
    perm = torch.from_numpy(np.random.default_rng(SPLIT_SEED).permutation(images.shape[0]))
    idx = perm[:TRAIN_SIZE] if split == "train" else perm[TRAIN_SIZE:]
    return TensorImageDataset(images[idx], targets[idx], DIGITS_INFO, transform)


SPECS = (DatasetSpec(DIGITS_INFO, load_digits_split, lambda root: True, aliases=("sklearn-digits",)),)

register_specs(SPECS)
