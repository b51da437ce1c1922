"""What the registry knows about a dataset before loading it.

:class:`DatasetInfo` is the static description (shape, classes, sizes, normalization constants) that
``robustlab datasets`` prints and models use to size their first and last layers. :class:`DatasetSpec`
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


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset.

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

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return (self.channels, *self.image_size)


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

    info: DatasetInfo
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
