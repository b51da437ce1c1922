"""What the registry knows about a dataset before loading it.

:class:`DataInfo` is what every dataset kind shares (name, kind, sizes, splits, description, one-line
shape); :class:`DatasetInfo` is the image kind (shape, classes, normalization constants — what models
use to size their first and last layers), :class:`TokenSequenceInfo` the token-sequence kind and
:class:`PairedInfo` the paired image–text kind. ``robustlab datasets`` lists every kind. :class:`DatasetSpec`
ties an info to the functions that check for and load the files. :func:`missing_data_error` builds the
one-line error every family raises when its files are absent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING

from robustlab.core.errors import RobustlabError
from robustlab.core.progress import log

if TYPE_CHECKING:
    from robustlab.data.base import ImageDataset


class DataInfo:
    """What ``robustlab datasets`` shows of any dataset: ``name``, ``kind``, ``train_size``,
    ``test_size``, ``splits``, ``description`` and :attr:`shape_text` (subclasses are dataclasses)."""

    kind: str = "data"
    name: str
    description: str
    train_size: int
    test_size: int
    splits: tuple[str, ...]

    @property
    def shape_text(self) -> str:
        """One short description of an example's shape."""
        return "-"


@dataclass(frozen=True)
class DatasetInfo(DataInfo):
    """Static description of an image-classification dataset (kind ``image``).

    ``image_size`` is ``(H, W)`` of the images a loader returns by default; ``mean`` and ``std`` are
    per-channel statistics in pixel units (images in [0, 1]), approximate but good enough for the
    model's Normalize front module. ``train_size``/``test_size`` are the official sizes (0 when the
    dataset is the user's own and its size varies).
    """

    name: str
    num_classes: int
    channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_size: int
    test_size: int
    description: str
    class_names: tuple[str, ...] | None = None
    splits: tuple[str, ...] = ("train", "test")

    kind = "image"

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return (self.channels, *self.image_size)

    @property
    def shape_text(self) -> str:
        return "x".join(str(s) for s in self.shape) + f", {self.num_classes} classes"


@dataclass(frozen=True)
class TokenSequenceInfo(DataInfo):
    """A dataset of token sequences (kind ``tokens``): ``vocab_size`` ids (0 when the vocabulary is
    built from the training split), at most ``max_length`` tokens, ``num_classes`` labels (0 when the
    targets are sequences, as in language modelling)."""

    name: str
    description: str
    train_size: int
    test_size: int
    vocab_size: int = 0
    max_length: int = 0
    num_classes: int = 0
    splits: tuple[str, ...] = ("train", "test")
    kind = "tokens"

    @property
    def shape_text(self) -> str:
        parts = [f"<= {self.max_length} tokens" if self.max_length else "variable length"]
        if self.num_classes:
            parts.append(f"{self.num_classes} classes")
        return ", ".join(parts)


@dataclass(frozen=True)
class PairedInfo(DataInfo):
    """A dataset of (image, text) pairs (kind ``paired``), e.g. images with reference captions."""

    name: str
    description: str
    train_size: int
    test_size: int
    channels: int = 3
    image_size: tuple[int, int] = (224, 224)
    references: str = "1+"
    splits: tuple[str, ...] = ("train", "val", "test")
    kind = "paired"

    @property
    def shape_text(self) -> str:
        return "x".join(str(s) for s in (self.channels, *self.image_size)) + f" + {self.references} texts"


# load(split=..., root=..., download=..., transform=..., image_size=...) -> ImageDataset; loaders that
# are not ``resizable`` ignore image_size (they accept it through ``**_``).
Loader = Callable[..., "ImageDataset"]


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its info, how to load it, and how to tell whether it is on disk.

    ``resizable`` says the loader honours ``image_size`` itself (file-based and generated datasets);
    for the others :func:`robustlab.data.load_dataset` resizes with :func:`robustlab.data.adapt`.
    ``available(root)`` must be cheap (file existence only) and never touch the network.
    ``needs_root`` datasets (the user's own folders) have no default location.
    """

    info: DataInfo
    load: Loader
    available: Callable[[Path], bool]
    resizable: bool = False
    aliases: tuple[str, ...] = ()
    needs_root: bool = False


def size_pair(size: int | Sequence[int]) -> tuple[int, int]:
    """``(H, W)`` from a square side or a pair; RobustlabError unless both are positive integers."""
    pair = (size, size) if isinstance(size, Integral) else tuple(size) if isinstance(size, Sequence) else ()
    if len(pair) != 2 or not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in pair):
        raise RobustlabError(f"image size must be a positive int or (H, W), got {size!r}")
    return (int(pair[0]), int(pair[1]))


def missing_data_error(name: str, searched: Sequence[Path] | Path, hint: str) -> RobustlabError:
    """One line: which dataset is missing, where we looked, and how to get it."""
    paths = [searched] if isinstance(searched, Path) else list(searched)
    where = ", ".join(str(p) for p in paths)
    return RobustlabError(f"dataset {name!r} not found offline (looked in {where}); {hint}")


def download_hint(place: Path | str) -> str:
    """The usual hint for datasets torchvision can download."""
    return f"pass --download on a machine with internet, or place the files under {place}"


def run_download(name: str, fetch: Callable[[], object], root: Path) -> None:
    """Run a torchvision download, turning network and checksum failures into one-line errors."""
    log.info("downloading %s into %s", name, root)
    root.mkdir(parents=True, exist_ok=True)
    try:
        fetch()
    except Exception as exc:  # urllib, http, checksum and extraction errors all end up here
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RobustlabError(
            f"could not download dataset {name!r} into {root}: {msg}; "
            "check the internet connection or place the files there by hand"
        ) from exc
