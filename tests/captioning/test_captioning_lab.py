"""The captioning lab from the CLI: a user's COCO-style Persian captions over an image folder and a
local torchvision encoder file (both written by the test) trained, audited, explained and reported;
the feature cache reused; bad input one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchvision
import yaml
from PIL import Image

from robustlab.core.checkpoint import load_checkpoint
from robustlab.labs.captioning.scenes import generate_scenes


def _write_coco(root: Path, n: int = 12) -> tuple[Path, Path]:
    scenes = generate_scenes(n, size=32, seed=5, n_refs=3)
    images = root / "images"
    images.mkdir(parents=True)
    doc: dict = {"images": [], "annotations": []}
    for i in range(n):
        Image.fromarray(scenes.images[i].permute(1, 2, 0).numpy()).save(images / f"img{i:02d}.png")
        doc["images"].append({"id": i, "file_name": f"img{i:02d}.png"})
        doc["annotations"] += [{"image_id": i, "caption": c} for c in scenes.references["fa"][i]]
    captions = root / "captions_fa.json"
    captions.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return captions, images


def _config(tmp_path: Path, captions: Path, images: Path, weights: Path, **model) -> Path:
    cfg = {"task": "captioning", "seed": 0,
           "data": {"dataset": "coco", "captions": str(captions), "images": str(images), "language": "fa",
                    "size": 32, "test_fraction": 0.25, "min_count": 1, "cache": str(tmp_path / "cache"),
                    "batch_size": 8, "eval_batch_size": 8},
           "model": {"encoder": "resnet18", "weights": "local", "pretrained": str(weights), "attention_dim": 16,
                     "embed_dim": 16, "decoder_dim": 24, **model},
           "train": {"epochs": 2, "patience": None},
           "evaluate": {"beams": [2], "max_length": 10, "eps": [4 / 255], "steps": 2, "n_samples": 3,
                        "figures": 2}}
    path = tmp_path / "captioning.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def resnet_file(tmp_path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(7)
    net = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(net.state_dict(), path)
    return path, net


def test_user_captions_and_local_encoder_train_evaluate_explain(tmp_path, cli, resnet_file):
    captions, images = _write_coco(tmp_path / "data")
    weights, net = resnet_file
    config = _config(tmp_path, captions, images, weights)
    out = tmp_path / "run"
    code, err = cli(["train", "-c", str(config), "--out", str(out), "--quiet"])
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["encoder"] == "encoder from resnet18.pth resnet18 (frozen)"
    assert results["data"]["images"] == {"train": 8, "val": 1, "test": 3}
    assert results["data"]["normaliser"] in ("hazm", "builtin")
    assert not any(c["was_cached"] for c in results["feature_cache"].values())
    assert {"test_bleu4", "test_perplexity", "test_token_accuracy"} <= set(results)
    state = load_checkpoint(out / "checkpoints" / "best.pt")["model"]  # the frozen encoder is the user's file
    torch.testing.assert_close(state["encoder.net.layer3.0.conv1.weight"], net.layer3[0].conv1.weight)

    for stage in (["evaluate", str(out)], ["explain", str(out)]):
        code, err = cli([*stage, "--quiet"])
        assert code == 0, (stage, err)
    results = json.loads((out / "results.json").read_text())
    c = results["captioning"]
    assert set(c["decoding"]) == {"greedy", "beam2"}
    greedy = c["decoding"]["greedy"]
    assert greedy["images"] == 3 and len(greedy["bleu"]) == 4 and "objects" not in greedy  # user data: no scenes
    assert set(greedy["cross_check"]) >= {"nltk", "pycocoevalcap", "sacrebleu", "note"}
    assert "faithfulness" not in c
    assert [r["attack"] for r in c["robustness"]["rows"]] == ["none", "fgsm", "pgd"]
    assert (out / "figures" / "robustness.png").stat().st_size > 1000
    assert (out / "figures" / "attention.png").stat().st_size > 1000
    html = (out / "report.html").read_text(encoding="utf-8")
    assert 'dir="rtl"' in html and "Robustness of the captions" in html

    code, err = cli(["train", "-c", str(config), "--out", str(tmp_path / "run2"), "--quiet"])
    assert code == 0, err
    again = json.loads((tmp_path / "run2" / "results.json").read_text())
    assert all(c["was_cached"] for c in again["feature_cache"].values())
    assert again["test_bleu4"] == results["test_bleu4"]


@pytest.mark.parametrize(("overrides", "message"), [
    (["data.dataset=coco"], "dataset coco needs data.captions"),
    (["data.captions=/nowhere.json"], "data.captions/images are read only with dataset: coco"),
    (["evaluate.beams=[0]"], "evaluate.beams are beam widths in 1..20"),
    (["model.weights=local"], "weights local needs model.pretrained"),
    (["model.weights=local", "model.encoder=resnet18", "model.pretrained=/nowhere.pth"], "does not exist"),
    (["data.min_count=1000"], "lower data.min_count"),
    (["data.stage=encoder", "model.encoder=resnet18"], "stage encoder pretrains the small-cnn"),
])
def test_bad_input_is_one_line_exit_2(cli, overrides, message, tmp_path):
    args = ["train", "--task", "captioning", "--out", str(tmp_path / "bad"), "--quiet",
            "--set", "data.train_images=8", "--set", "data.test_images=4"]
    for o in overrides:
        args += ["--set", o]
    code, err = cli(args)
    assert code == 2, err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_user_caption_file_errors_are_one_line(cli, tmp_path):
    captions, images = _write_coco(tmp_path / "data", n=4)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    doc = json.loads(captions.read_text(encoding="utf-8"))
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"images": doc["images"], "annotations": doc["annotations"][3:]}), encoding="utf-8")
    unreadable = tmp_path / "unreadable.json"
    unreadable.write_text(json.dumps({"images": [*doc["images"], {"id": 99, "file_name": "junk.png"}],
                                      "annotations": [*doc["annotations"], {"image_id": 99, "caption": "x"}]}),
                          encoding="utf-8")
    (images / "junk.png").write_bytes(b"not a png at all")
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({"images": [*doc["images"], {"id": 98, "file_name": "gone.png"}],
                                   "annotations": [*doc["annotations"], {"image_id": 98, "caption": "y"}]}),
                       encoding="utf-8")
    out = tmp_path / "x"
    for path, message in ((broken, "not JSON"), (empty, "has no captions"), (missing, "is missing"),
                          (unreadable, "cannot be read")):
        code, err = cli(["train", "--task", "captioning", "--out", str(out), "--quiet",
                         "--set", "data.dataset=coco", "--set", f"data.captions={path}",
                         "--set", f"data.images={images}", "--set", "data.test_fraction=0.4"])
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (path.name, err)
        assert not list(out.glob("checkpoints/*.pt")) and not (out / "results.json").exists()


def test_scheduled_sampling_and_adversarial_training_through_the_trainer(cli, tmp_path):
    base = ["train", "--task", "captioning", "--smoke", "--quiet", "--set", "train.epochs=2",
            "--set", f"data.cache={tmp_path / 'cache'}"]
    out = tmp_path / "ss"
    code, err = cli([*base, "--out", str(out), "--set", "train.teacher_forcing=linear",
                     "--set", "train.teacher_forcing_min=0.5"])
    assert code == 0, err
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    tf = [r["teacher_forcing"] for r in records if "teacher_forcing" in r]
    assert len(tf) == 2 and 1.0 > tf[0] > tf[1] >= 0.5
    assert json.loads((out / "results.json").read_text())["training_strategy"]["name"] == "scheduled-sampling"

    out = tmp_path / "adv"
    code, err = cli([*base, "--out", str(out), "--set", "train.adversarial_eps=0.0157",
                     "--set", "train.adversarial_steps=1"])
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["training_strategy"] == {"name": "pgd-adversarial", "decay": "always", "minimum": 0.5, "k": 5.0,
                                            "eps": 0.0157, "steps": 1}
    assert results["feature_cache"] == {}  # the attacked path reads pixels, never cached grids
