"""COCO-style caption files over an image folder: any language, any number of references per image.

Two layouts are recognised by their keys: a Karpathy split JSON (``dataset_*.json``: ``images`` whose
entries carry ``filename`` and ``sentences``, with ``split`` and an optional ``filepath``) and a COCO
``captions_*.json`` (``images`` with ``id``/``file_name`` plus ``annotations`` with ``image_id``/``caption``).
Every problem is a one-line :class:`~robustlab.core.errors.RobustlabError` naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from robustlab.core.errors import RobustlabError

SPLITS = ("train", "val", "test")
_KARPATHY_SPLITS = {"train": "train", "val": "val", "test": "test", "restval": "train"}


@dataclass(frozen=True)
class CaptionRecord:
    """One image and its reference captions; ``split`` is None when the file assigns none."""

    image: Path
    captions: tuple[str, ...]
    split: str | None
    image_id: str


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _error(path: Path, problem: str) -> RobustlabError:
    return RobustlabError(_one_line(f"caption file {str(path)!r}: {problem}"))


def _karpathy(path: Path, data: dict[str, Any], root: Path) -> list[CaptionRecord]:
    records = []
    for n, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or "filename" not in entry or "sentences" not in entry:
            raise _error(path, f"images[{n}] lacks 'filename' or 'sentences'; each image needs both")
        name = str(entry["filename"])
        split = entry.get("split")
        if split not in _KARPATHY_SPLITS:
            raise _error(path, f"image {name!r} has split {split!r}; allowed: {', '.join(_KARPATHY_SPLITS)}")
        captions = []
        for sentence in entry["sentences"]:
            raw = sentence.get("raw") if isinstance(sentence, dict) else None
            if not raw and isinstance(sentence, dict):
                raw = " ".join(str(t) for t in sentence.get("tokens", []))
            if raw and raw.strip():
                captions.append(raw.strip())
        if not captions:
            raise _error(path, f"image {name!r} has no reference captions; each image needs at least one")
        folder = root / str(entry["filepath"]) if entry.get("filepath") else root
        image_id = str(entry.get("cocoid", entry.get("imgid", name)))
        records.append(CaptionRecord(folder / name, tuple(captions), _KARPATHY_SPLITS[split], image_id))
    return records


def _coco(path: Path, data: dict[str, Any], root: Path) -> list[CaptionRecord]:
    names: dict[str, str] = {}
    for n, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or "id" not in entry or "file_name" not in entry:
            raise _error(path, f"images[{n}] lacks 'id' or 'file_name'; each image needs both")
        names[str(entry["id"])] = str(entry["file_name"])
    captions: dict[str, list[str]] = {key: [] for key in names}
    for n, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann or "caption" not in ann:
            raise _error(path, f"annotations[{n}] lacks 'image_id' or 'caption'; each annotation needs both")
        key = str(ann["image_id"])
        if key not in names:
            raise _error(path, f"annotations[{n}] points to unknown image id {ann['image_id']!r}")
        if str(ann["caption"]).strip():
            captions[key].append(str(ann["caption"]).strip())
    for key, refs in captions.items():
        if not refs:
            raise _error(path, f"image {names[key]!r} (id {key}) has no captions; each image needs at least one")
    return [CaptionRecord(root / names[key], tuple(refs), None, key) for key, refs in captions.items()]


def read_caption_file(path: str | Path, image_root: str | Path, check_images: bool = True) -> list[CaptionRecord]:
    """Read a Karpathy split JSON or a COCO ``captions_*.json`` into records sorted by ``image_id``.

    Karpathy: image ``image_root/filepath/filename`` (no ``filepath``: ``image_root/filename``), captions
    from ``raw`` (else the joined ``tokens``), ``restval`` counted as ``train``. COCO: split None,
    annotations grouped per image id, image ``image_root/file_name``. With ``check_images`` every image
    file must exist. Raises :class:`RobustlabError` (one line) for a missing or non-JSON file, an
    unrecognised layout, an image without captions, an annotation of an unknown image or missing images.
    """
    path, root = Path(path), Path(image_root)
    if not path.is_file():
        raise _error(path, "no such file; give the path of a caption JSON")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _error(path, f"not JSON: {exc}") from None
    images = data.get("images") if isinstance(data, dict) else None
    if isinstance(images, list) and isinstance(data.get("annotations"), list):
        records = _coco(path, data, root)
    elif isinstance(images, list) and all(isinstance(e, dict) and "sentences" in e for e in images):
        records = _karpathy(path, data, root)
    else:
        raise _error(
            path,
            "layout not recognised; expected 'images' with 'filename'/'sentences' (Karpathy split) "
            "or 'images' with 'id'/'file_name' plus 'annotations' with 'image_id'/'caption' (COCO captions)",
        )
    if not records:
        raise _error(path, "contains no images; at least one is needed")
    records.sort(key=lambda r: r.image_id)
    if check_images:
        missing = [r.image for r in records if not r.image.is_file()]
        if missing:
            raise _error(path, f"image file {str(missing[0])!r} is missing ({len(missing)} of {len(records)} missing)")
    return records


def load_images(records: Sequence[CaptionRecord], size: int) -> torch.Tensor:
    """Decode the records' images as uint8 ``(N, 3, size, size)``: RGB, resized bilinearly to ``size``×``size``.

    Raises :class:`RobustlabError` (one line, naming the file) for an unreadable or corrupt image.
    """
    if size < 1:
        raise RobustlabError(f"image size {size} is invalid; it must be a positive integer")
    out = torch.empty((len(records), 3, size, size), dtype=torch.uint8)
    for n, record in enumerate(records):
        try:
            with Image.open(record.image) as img:
                rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise RobustlabError(_one_line(f"image {str(record.image)!r} cannot be read: {exc}")) from None
        pixels = torch.frombuffer(bytearray(rgb.tobytes()), dtype=torch.uint8)
        out[n] = pixels.view(size, size, 3).permute(2, 0, 1)
    return out


def assign_splits(
    records: Sequence[CaptionRecord], test_fraction: float, val_fraction: float, seed: int
) -> list[CaptionRecord]:
    """Give each record with ``split`` None a split by a seeded permutation; records with a split keep it.

    Of the unsplit records, ``round(test_fraction·n)`` become ``test``, ``round(val_fraction·n)`` ``val``
    and the rest ``train``. The order of ``records`` is kept; the same seed gives the same assignment.
    """
    if not (0 <= test_fraction < 1 and 0 <= val_fraction < 1 and test_fraction + val_fraction < 1):
        raise RobustlabError(
            f"split fractions test={test_fraction} val={val_fraction} are invalid; "
            "each must be in [0, 1) and their sum below 1"
        )
    unsplit = [n for n, r in enumerate(records) if r.split is None]
    n_test, n_val = round(test_fraction * len(unsplit)), round(val_fraction * len(unsplit))
    order = torch.randperm(len(unsplit), generator=torch.Generator().manual_seed(seed)).tolist()
    out = list(records)
    for rank, pick in enumerate(order):
        split = "test" if rank < n_test else "val" if rank < n_test + n_val else "train"
        out[unsplit[pick]] = replace(records[unsplit[pick]], split=split)
    return out


def records_by_split(records: Sequence[CaptionRecord]) -> dict[str, list[CaptionRecord]]:
    """Group records by split, keeping their order.

    ``train``, ``val`` and ``test`` are always keys (possibly empty); any other split that occurs is a key
    too, and records without a split go under ``"none"``.
    """
    groups: dict[str, list[CaptionRecord]] = {split: [] for split in SPLITS}
    for record in records:
        groups.setdefault(record.split if record.split is not None else "none", []).append(record)
    return groups
