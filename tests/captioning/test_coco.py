"""The COCO-style caption loader, on real JSON and PNG files written per test."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from PIL import Image

from robustlab.core.errors import RobustlabError
from robustlab.labs.captioning.coco import (
    CaptionRecord,
    assign_splits,
    load_images,
    read_caption_file,
    records_by_split,
)

FA_1 = "یک گربه روی مبل خوابیده است"
FA_2 = "گربه‌ای سفید در خانه"


def _png(path: Path, colour: tuple[int, int, int] = (200, 30, 10), size: tuple[int, int] = (20, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def _karpathy(tmp_path: Path) -> Path:
    _png(tmp_path / "img" / "val2014" / "a.png")
    _png(tmp_path / "img" / "b.png")
    _png(tmp_path / "img" / "c.png")
    images = [
        {
            "filepath": "val2014",
            "filename": "a.png",
            "split": "test",
            "cocoid": 7,
            "sentences": [{"raw": FA_1, "tokens": []}, {"raw": "", "tokens": ["a", "cat"]}],
        },
        {"filename": "b.png", "split": "restval", "cocoid": 3, "sentences": [{"raw": "a dog"}]},
        {"filename": "c.png", "split": "val", "imgid": 5, "sentences": [{"raw": "x"}, {"raw": "y"}, {"raw": "z"}]},
    ]
    return _write(tmp_path / "dataset_coco.json", {"images": images, "dataset": "coco"})


def _coco(tmp_path: Path, annotations: list[dict] | None = None) -> Path:
    _png(tmp_path / "img" / "one.png")
    _png(tmp_path / "img" / "two.png")
    images = [{"id": 2, "file_name": "two.png"}, {"id": 1, "file_name": "one.png"}]
    if annotations is None:
        annotations = [
            {"image_id": 1, "caption": FA_1},
            {"image_id": 2, "caption": "two"},
            {"image_id": 1, "caption": FA_2},
        ]
    return _write(tmp_path / "captions_val.json", {"images": images, "annotations": annotations})


def test_karpathy_layout(tmp_path: Path) -> None:
    records = read_caption_file(_karpathy(tmp_path), tmp_path / "img")
    assert [r.image_id for r in records] == ["3", "5", "7"]
    b, c, a = records
    assert a == CaptionRecord(tmp_path / "img" / "val2014" / "a.png", (FA_1, "a cat"), "test", "7")
    assert b.split == "train" and b.captions == ("a dog",) and b.image == tmp_path / "img" / "b.png"
    assert c.split == "val" and len(c.captions) == 3
    groups = records_by_split(records)
    assert [r.image_id for r in groups["train"]] == ["3"] and groups["test"] == [a] and groups["val"] == [c]


def test_coco_layout_groups_persian_captions(tmp_path: Path) -> None:
    records = read_caption_file(_coco(tmp_path), tmp_path / "img")
    assert [r.image_id for r in records] == ["1", "2"]
    assert records[0].captions == (FA_1, FA_2) and records[0].image == tmp_path / "img" / "one.png"
    assert records[1].captions == ("two",)
    assert all(r.split is None for r in records)
    assert records_by_split(records)["none"] == records


def test_missing_and_non_json_files(tmp_path: Path) -> None:
    with pytest.raises(RobustlabError, match="nope.json.*no such file"):
        read_caption_file(tmp_path / "nope.json", tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{images: oops", encoding="utf-8")
    with pytest.raises(RobustlabError, match="bad.json.*not JSON: Expecting property name"):
        read_caption_file(bad, tmp_path)


def test_unrecognised_layout_names_expected_keys(tmp_path: Path) -> None:
    path = _write(tmp_path / "other.json", {"pictures": []})
    with pytest.raises(RobustlabError) as info:
        read_caption_file(path, tmp_path)
    message = str(info.value)
    assert "other.json" in message and "layout not recognised" in message and "\n" not in message
    for key in ("'images'", "'sentences'", "'annotations'", "'file_name'", "'caption'"):
        assert key in message


def test_empty_references_name_the_image(tmp_path: Path) -> None:
    images = [{"filename": "lonely.png", "split": "train", "sentences": [{"raw": " ", "tokens": []}]}]
    path = _write(tmp_path / "dataset.json", {"images": images})
    with pytest.raises(RobustlabError, match="dataset.json.*'lonely.png' has no reference captions"):
        read_caption_file(path, tmp_path, check_images=False)
    path = _coco(tmp_path, [{"image_id": 1, "caption": "only one image captioned"}])
    with pytest.raises(RobustlabError, match="captions_val.json.*'two.png' \\(id 2\\) has no captions"):
        read_caption_file(path, tmp_path / "img")


def test_unknown_image_id(tmp_path: Path) -> None:
    path = _coco(
        tmp_path, [{"image_id": 1, "caption": "a"}, {"image_id": 2, "caption": "b"}, {"image_id": 9, "caption": "c"}]
    )
    with pytest.raises(RobustlabError, match="annotations\\[2\\] points to unknown image id 9"):
        read_caption_file(path, tmp_path / "img")


def test_missing_images_checked_only_when_asked(tmp_path: Path) -> None:
    path = _karpathy(tmp_path)
    os.remove(tmp_path / "img" / "b.png")
    os.remove(tmp_path / "img" / "c.png")
    with pytest.raises(RobustlabError, match="b.png' is missing \\(2 of 3 missing\\)"):
        read_caption_file(path, tmp_path / "img")
    assert len(read_caption_file(path, tmp_path / "img", check_images=False)) == 3


def test_load_images_solid_colour(tmp_path: Path) -> None:
    records = read_caption_file(_coco(tmp_path), tmp_path / "img")
    _png(tmp_path / "img" / "two.png", colour=(0, 128, 255), size=(7, 30))
    images = load_images(records, 16)
    assert images.shape == (2, 3, 16, 16) and images.dtype == torch.uint8
    assert torch.equal(images[0], torch.tensor([200, 30, 10], dtype=torch.uint8).view(3, 1, 1).expand(3, 16, 16))
    assert torch.equal(images[1], torch.tensor([0, 128, 255], dtype=torch.uint8).view(3, 1, 1).expand(3, 16, 16))
    grey = _png(tmp_path / "img" / "grey.png")
    Image.new("L", (5, 5), 77).save(grey)
    assert torch.all(load_images([CaptionRecord(grey, ("g",), None, "g")], 4) == 77)


def test_load_images_corrupt_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "broken.jpg"
    corrupt.write_bytes(bytes(torch.randint(0, 256, (512,), generator=torch.Generator().manual_seed(0)).tolist()))
    with pytest.raises(RobustlabError) as info:
        load_images([CaptionRecord(corrupt, ("x",), None, "0")], 8)
    assert "broken.jpg" in str(info.value) and "cannot be read" in str(info.value) and "\n" not in str(info.value)


def test_assign_splits_seeded_and_respects_existing(tmp_path: Path) -> None:
    fixed = [CaptionRecord(tmp_path / f"f{n}.png", ("c",), "val", f"f{n}") for n in range(3)]
    free = [CaptionRecord(tmp_path / f"{n}.png", ("c",), None, str(n)) for n in range(20)]
    records = fixed + free
    first = assign_splits(records, test_fraction=0.25, val_fraction=0.1, seed=4)
    assert first == assign_splits(records, test_fraction=0.25, val_fraction=0.1, seed=4)
    assert first[:3] == fixed and [r.image_id for r in first] == [r.image_id for r in records]
    splits = [r.split for r in first[3:]]
    assert splits.count("test") == 5 and splits.count("val") == 2 and splits.count("train") == 13
    others = [assign_splits(records, 0.25, 0.1, seed=s) for s in range(5, 10)]
    assert any([r.split for r in other] != [r.split for r in first] for other in others)
    groups = records_by_split(first)
    assert len(groups["val"]) == 5 and len(groups["test"]) == 5 and "none" not in groups
    with pytest.raises(RobustlabError, match="split fractions test=0.6 val=0.5 are invalid"):
        assign_splits(records, 0.6, 0.5, seed=0)
