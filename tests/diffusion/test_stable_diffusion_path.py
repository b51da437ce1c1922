"""The Stable Diffusion path of the diffusion lab: a user's model folder (diffusers' layout) fine-tuned
with DreamBooth in latent space, the folder's problems as one-line errors, and the judge-free measures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from robustlab.labs.diffusion import studies
from robustlab.labs.diffusion.config import DiffusionConfig
from robustlab.labs.diffusion.model import LatentDiffusion
from robustlab.labs.diffusion.pipeline_parts import save_components
from robustlab.labs.diffusion.task import DiffusionTask

RECIPE = str(Path(__file__).resolve().parents[2] / "recipes" / "stable-diffusion-dreambooth.yaml")


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory, tiny_sd) -> Path:
    return save_components(tiny_sd, tmp_path_factory.mktemp("sd") / "model")


def _instance_folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        Image.new("RGB", (40, 40), (60 * i, 120, 200)).save(path / f"{i}.png")
    return path


@pytest.mark.parametrize("case, message", [
    ("missing-vae", "lacks vae/"),
    ("pickle-unet", "holds only pickled weights"),
    ("not-a-folder", "is not a folder"),
    ("rare-token-split", "is 2 tokens"),
])
def test_a_bad_model_folder_is_one_line_exit_2_and_writes_nothing(tmp_path, cli, monkeypatch, sd_folder, case,
                                                                  message):
    folder = tmp_path / "model"
    shutil.copytree(sd_folder, folder)
    rare = "sks"
    if case == "missing-vae":
        shutil.rmtree(folder / "vae")
    elif case == "pickle-unet":
        for f in (folder / "unet").glob("*.safetensors"):
            f.rename(f.with_suffix(".bin"))
    elif case == "not-a-folder":
        shutil.rmtree(folder)
    else:
        rare = "zq"  # two characters, no merge: two tokens for this tokenizer
    monkeypatch.setenv("ROBUSTLAB_SD", str(folder))
    monkeypatch.setenv("ROBUSTLAB_DREAMBOOTH_IMAGES", str(_instance_folder(tmp_path / "instance")))
    out = tmp_path / "runs"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    args = ["run", RECIPE, "--out", str(out)]
    if case == "rare-token-split":  # the same model through `train`, with a rare token the tokenizer splits
        args = ["train", "--task", "diffusion", "--set", "data.stage=dreambooth", "--set", "data.instance=folder",
                "--set", f"data.instance_dir={tmp_path / 'instance'}", "--set", "model.name=stable-diffusion",
                "--set", f"model.pretrained={folder}", "--set", f"data.rare_token={rare}",
                "--set", f"data.instance_prompt=a photo of {rare} dog", "--out", str(out / "run")]
    code, err = cli(args)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def _cfg(folder: Path, instance: Path, **data) -> DiffusionConfig:
    return DiffusionConfig.model_validate({
        "data": {"stage": "dreambooth", "instance": "folder", "instance_dir": str(instance), "resolution": 64,
                 "instance_prompt": "sks", "class_prompt": "a", "num_class_images": 2, **data},
        "model": {"name": "stable-diffusion", "pretrained": str(folder), "train_text_encoder": False}})


def test_latent_dreambooth_step_trains_the_unet_only(tmp_path, sd_folder):
    from robustlab.labs.diffusion.lab import LAB

    cfg = _cfg(sd_folder, _instance_folder(tmp_path / "inst"), prior_preservation=False,
               cache=str(tmp_path / "cache"))
    data = LAB.build_data(cfg)
    meta = LAB.model_meta(cfg, data)
    model = LAB.build_model(cfg, meta)
    assert isinstance(model, LatentDiffusion) and meta["model_folder"] == str(sd_folder.resolve())
    x = data.train.__getitems__([0, 1])
    assert x[0].shape == (2, 3, 64, 64) and float(x[0].min()) >= -1 and float(x[0].max()) <= 1
    latents = model.to_latents(x[0])
    assert latents.shape == (2, 4, 32, 32)  # the VAE downsamples 64 → 32 in the tiny model
    task: DiffusionTask = LAB.build_task(cfg, meta)
    vae0 = {k: v.clone() for k, v in model.vae.state_dict().items()}
    text0 = {k: v.clone() for k, v in model.text_encoder.state_dict().items()}
    unet0 = {k: v.clone() for k, v in model.unet.state_dict().items()}
    model.train()
    assert not model.vae.training  # frozen: kept in eval mode whatever train() asks
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    inputs, targets = task.unpack(x, torch.device("cpu"))
    task.forward(model, inputs, targets).loss.backward()
    opt.step()
    assert all(torch.equal(v, model.vae.state_dict()[k]) for k, v in vae0.items())
    assert all(torch.equal(v, model.text_encoder.state_dict()[k]) for k, v in text0.items())
    assert any(not torch.equal(v, model.unet.state_dict()[k]) for k, v in unet0.items())
    images = model.eval().generate(["sks"], 1.5, 2, seed=0)
    assert images.shape == (1, 3, 64, 64) and float(images.min()) >= 0 and float(images.max()) <= 1


def test_subject_row_measures_copying_and_drift():
    g = torch.Generator().manual_seed(0)
    inst = torch.rand(4, 3, 32, 32, generator=g)
    copies = inst[[0, 1, 2, 3, 0, 1]] + 0.001
    fresh = torch.rand(6, 3, 32, 32, generator=g)
    cls_before = torch.rand(6, 3, 32, 32, generator=g)
    copied = studies.subject_row("copies", copies, cls_before, inst, class_before=cls_before)
    assert copied["copy_fraction"] == 1.0 and copied["instance_distance"] < 0.1 and copied["class_drift"] == 0.0
    new = studies.subject_row("fresh", fresh, fresh, inst, class_before=cls_before)
    assert new["copy_fraction"] == 0.0 and new["instance_distance"] > copied["instance_distance"]
    assert 0.5 < new["class_drift"] < 1.5  # independent uniform images: about as far as another seed
    with pytest.raises(Exception, match="at least two"):
        studies.subject_row("x", copies[:1], cls_before, inst)
