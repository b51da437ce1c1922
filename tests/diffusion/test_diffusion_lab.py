"""The diffusion lab from the CLI: bad DreamBooth input is one line with exit 2 and no run folder;
the model's seeded sampling repeats."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from robustlab.labs.diffusion.config import DiffusionConfig
from robustlab.labs.diffusion.model import build_diffusion
from robustlab.labs.diffusion.prepare import prompt_words


@pytest.mark.parametrize("case, message", [
    ("empty", "holds no images"),
    ("unreadable", "cannot be read"),
    ("no-rare-token", "does not hold the rare token 'sks'"),
])
def test_bad_dreambooth_input_is_one_line_exit_2(tmp_path, cli, case, message):
    folder = tmp_path / "instance"
    folder.mkdir()
    if case == "unreadable":
        Image.new("L", (8, 8), 128).save(folder / "good.png")
        (folder / "broken.png").write_bytes(b"not an image")
    extra = ["--set", "data.instance_prompt=a 3"] if case == "no-rare-token" else []
    out = tmp_path / "run"
    code, err = cli(["train", "--task", "diffusion", "--set", "data.stage=dreambooth", "--set", "data.instance=folder",
                      "--set", f"data.instance_dir={folder}", *extra, "--out", str(out)])
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_seeded_generation_repeats_and_depends_on_the_prompt():
    cfg = DiffusionConfig.model_validate({"model": {"channels": [8, 16], "text_dim": 16, "text_layers": 1,
                                                    "text_heads": 2, "attention_head_dim": 4}})
    torch.manual_seed(0)
    model = build_diffusion(cfg, prompt_words(cfg), 8, 1).eval()
    a = model.generate(["3", "sks 3"], scale=3.0, steps=2, seed=5)
    b = model.generate(["3", "sks 3"], scale=3.0, steps=2, seed=5)
    assert a.shape == (2, 1, 8, 8) and torch.equal(a, b) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(a[0], a[1])  # different noise rows and prompts
    assert not torch.equal(a, model.generate(["3", "sks 3"], scale=3.0, steps=2, seed=6))
    ids = model.token_ids(["sks 3"])[0].tolist()
    assert model.tokenizer.convert_tokens_to_ids("sks</w>") in ids
