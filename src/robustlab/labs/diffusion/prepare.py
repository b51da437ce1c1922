"""The data of a diffusion run: digits with their prompts (base stage), or the DreamBooth subject's
instance images beside class images the starting model generates before training (cached)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from robustlab.core.checkpoint import load_checkpoint, load_model_state
from robustlab.core.config import require_set
from robustlab.core.errors import RobustlabError
from robustlab.core.io import atomic_write_bytes
from robustlab.data.batches import BatchTensors, whole_batch
from robustlab.data.bundle import DataBundle
from robustlab.data.registry import default_data_root
from robustlab.data.spec import DataInfo
from robustlab.labs.diffusion.config import DiffusionConfig
from robustlab.labs.diffusion.judges import digits_split
from robustlab.labs.diffusion.model import LatentDiffusion, TextConditionalDiffusion, build_diffusion, build_tokenizer
from robustlab.labs.diffusion.pipeline_parts import check_folder, check_single_token, load_components, quiet
from robustlab.training.callbacks import averaged_weights

DIGIT_WORDS = tuple(str(i) for i in range(10))
IMAGE_SIZE, CHANNELS = 8, 1


@dataclass(frozen=True)
class PromptImageInfo(DataInfo):
    """Images with text prompts (kind ``prompted``)."""

    name: str
    description: str
    train_size: int
    test_size: int
    splits: tuple[str, ...]
    image_size: int = IMAGE_SIZE
    channels: int = CHANNELS

    kind = "prompted"

    @property
    def shape_text(self) -> str:
        return f"{self.channels}x{self.image_size}x{self.image_size} + prompt"


def prompt_words(cfg: DiffusionConfig) -> list[str]:
    """The words that are whole tokens of the run's tokenizer: the digits, the rare token and every
    word of the instance and class prompts."""
    words = [*DIGIT_WORDS, cfg.data.rare_token, *cfg.data.instance_prompt.split(), *cfg.data.class_prompt.split()]
    return list(dict.fromkeys(words))


def image_shape(cfg: DiffusionConfig) -> tuple[int, int]:
    """``(channels, side)`` of the run's images: 1 × 8 digits, or 3 × ``data.resolution`` (stable-diffusion)."""
    if cfg.model.name == "stable-diffusion":
        return 3, cfg.data.resolution
    return CHANNELS, IMAGE_SIZE


def instance_images(cfg: DiffusionConfig) -> Tensor:
    """The subject ``(n, C, S, S)`` in [0, 1] (see :func:`image_shape`): the first ``instance_images`` 3s
    of the digits test split, mirrored left–right (never seen by the base model), or the user's folder."""
    if cfg.data.instance == "mirrored-3":
        x, y = digits_split("test")
        return x[y == 3][: cfg.data.instance_images].flip(-1)
    from robustlab.data.file_dataset import read_image

    require_set(cfg.data.instance_dir, "data.instance_dir")
    channels, side = image_shape(cfg)
    folder = Path(cfg.data.instance_dir or "")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
    if not files:
        raise RobustlabError(f"instance folder {folder} holds no images (data.instance_dir)")
    out = []
    for path in files:
        try:
            out.append(read_image(path, (side, side), channels))
        except Exception as e:  # noqa: BLE001 - PIL raises many types; one line names the file
            raise RobustlabError(f"instance image {path} cannot be read ({type(e).__name__})") from None
    return torch.stack(out)


def load_run_model(cfg: DiffusionConfig, path: str) -> TextConditionalDiffusion:
    """The model in the robustlab checkpoint ``path`` (its EMA weights when it evaluates with them)."""
    state = load_checkpoint(path)
    model = build_diffusion(cfg, state["meta"]["words"], IMAGE_SIZE, CHANNELS)
    load_model_state(model, averaged_weights(state["model"], state), path)
    return model.eval()


def load_latent_model(cfg: DiffusionConfig, folder: str | None = None) -> LatentDiffusion:
    """The Stable Diffusion model of the folder ``folder`` (default ``model.pretrained``), in eval mode."""
    folder = folder or cfg.model.pretrained
    require_set(folder, "model.pretrained")
    return LatentDiffusion(load_components(folder or "")).eval()


SMOKE_FORMAT = "tiny-sd-1"


def smoke_files() -> tuple[Path, Path]:
    """``(model folder, instance folder)`` for smoke runs of the Stable Diffusion path: a tiny randomly
    initialised Stable Diffusion (:func:`tiny_stable_diffusion`, seed 0, "sks" a whole token) and four
    fabricated 64 × 64 PNG subjects (a red disc on grey, shifted), written once under
    ``<data root>/cache/diffusion/smoke/`` (built in a temporary folder, then renamed into place)."""
    import os
    import tempfile

    from PIL import Image

    from robustlab.labs.diffusion.pipeline_parts import save_components, tiny_stable_diffusion

    root = default_data_root() / "cache" / "diffusion" / "smoke" / SMOKE_FORMAT
    if not (root / "model" / "model_index.json").is_file():
        root.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
            build = Path(tmp) / "build"
            save_components(tiny_stable_diffusion(build / "words"), build / "model")
            (build / "instance").mkdir()
            yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
            for i in range(4):
                disc = ((yy - 24 - 4 * i) ** 2 + (xx - 28 - 3 * i) ** 2 < 14**2).float()
                rgb = torch.stack([0.4 + 0.5 * disc, 0.4 - 0.3 * disc, 0.4 - 0.3 * disc], dim=-1)
                Image.fromarray((rgb * 255).round().byte().numpy()).save(build / "instance" / f"subject-{i}.png")
            try:
                os.rename(build, root)
            except OSError:  # another process finished first: its files are the same
                if not (root / "model" / "model_index.json").is_file():
                    raise
    return root / "model", root / "instance"


def starting_model(cfg: DiffusionConfig) -> TextConditionalDiffusion:
    """The model a DreamBooth run starts from: the base run's checkpoint (``train.init_from``) or the
    Stable Diffusion folder (``model.pretrained``)."""
    if cfg.model.name == "stable-diffusion":
        return load_latent_model(cfg)
    if not cfg.train.init_from:
        raise RobustlabError("the dreambooth stage needs train.init_from (the base run's checkpoint; in a recipe: "
                             "init_from: <base run>)")
    return load_run_model(cfg, cfg.train.init_from)


def _starting_key(cfg: DiffusionConfig) -> Any:
    """A hash of what the starting model is: the checkpoint's bytes, or every file of the model folder by
    name, size and modification time (hashing gigabytes of weights would take longer than sampling)."""
    if cfg.model.name != "stable-diffusion":
        if not cfg.train.init_from:
            raise RobustlabError("the dreambooth stage needs train.init_from (the base run's checkpoint; in a "
                                 "recipe: init_from: <base run>)")
        return hashlib.sha256(Path(cfg.train.init_from).read_bytes())
    key = hashlib.sha256(b"stable-diffusion")
    folder = Path(cfg.model.pretrained or "")
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        st = f.stat()
        key.update(f"{f.relative_to(folder)}|{st.st_size}|{st.st_mtime_ns}".encode())
    return key


def class_images(cfg: DiffusionConfig) -> Tensor:
    """``num_class_images`` images ``(M, C, S, S)`` in [0, 1] that the starting model
    (:func:`starting_model`) generates from ``class_prompt`` at ``class_image_scale`` — DreamBooth's
    prior-preservation set — read from the cache when the same model and settings made them before."""
    d, e = cfg.data, cfg.evaluate
    key = _starting_key(cfg)
    key.update(f"{d.class_prompt}|{d.num_class_images}|{d.class_image_scale}|{e.steps}|{cfg.seed}".encode())
    folder = Path(d.cache) if d.cache else default_data_root() / "cache" / "diffusion"
    path = folder / f"class-{key.hexdigest()[:24]}.safetensors"
    from safetensors.torch import load, save

    if path.is_file():
        return load(path.read_bytes())["images"]
    model = starting_model(cfg)
    images = model.generate([d.class_prompt] * d.num_class_images, d.class_image_scale, e.steps, seed=cfg.seed + 7)
    atomic_write_bytes(path, save({"images": images.contiguous()}))
    return images


class DreamBoothPairs(Dataset):
    """One epoch = ``max(n, m)`` items; item ``i`` pairs instance image ``i mod n`` (with the instance
    prompt's ids) and class image ``i mod m`` (with the class prompt's ids). ``__getitems__`` serves
    ``(instance (B, C, H, W) in [−1, 1], ids (B, L), class images, class ids)``; without class images
    the last two are empty."""

    def __init__(self, instance: Tensor, instance_ids: Tensor, prior: Tensor | None, prior_ids: Tensor) -> None:
        self.instance, self.instance_ids = instance * 2 - 1, instance_ids
        self.prior = None if prior is None else prior * 2 - 1
        self.prior_ids = prior_ids

    def __len__(self) -> int:
        return max(len(self.instance), 0 if self.prior is None else len(self.prior))

    def __getitem__(self, i: int) -> tuple[Tensor, ...]:
        return self.__getitems__([i])

    def __getitems__(self, indices: list[int]) -> tuple[Tensor, ...]:
        index = torch.as_tensor(indices, dtype=torch.long)
        xi = self.instance[index % len(self.instance)]
        ids_i = self.instance_ids.expand(len(index), -1)
        if self.prior is None:
            return xi, ids_i, xi[:0], ids_i[:0]
        return xi, ids_i, self.prior[index % len(self.prior)], self.prior_ids.expand(len(index), -1)


def load_components_tokenizer(folder: str) -> Any:
    """The tokenizer of the Stable Diffusion folder ``folder`` (its layout checked first)."""
    from transformers import CLIPTokenizer

    check_folder(Path(folder))
    with quiet():
        return CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", local_files_only=True)


def build_bundle(cfg: DiffusionConfig, smoke: bool = False) -> DataBundle:
    """Base stage: ``(images in [−1, 1], prompt ids)`` of the digits (``val_fraction`` of the training
    split validates). DreamBooth stage: :class:`DreamBoothPairs` (train and test)."""
    if cfg.model.name == "stable-diffusion":
        require_set(cfg.model.pretrained, "model.pretrained")
        tokenizer = load_components_tokenizer(cfg.model.pretrained or "")
        check_single_token(tokenizer, cfg.data.rare_token)
    else:
        tokenizer = build_tokenizer(prompt_words(cfg))

    def ids(prompts: list[str]) -> Tensor:
        return tokenizer(prompts, padding="max_length", truncation=True, max_length=tokenizer.model_max_length,
                         return_tensors="pt").input_ids

    extras: dict[str, Any] = {}
    if cfg.data.stage == "base":
        x, y = digits_split("train")
        xt, yt = digits_split("test")
        if smoke:
            x, y, xt, yt = x[:96], y[:96], xt[:32], yt[:32]
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(cfg.seed + 5))
        n_val = round(cfg.data.val_fraction * len(x))
        val, train = order[:n_val], order[n_val:]
        words = [str(int(v)) for v in y]
        all_ids = ids(words)
        streams: dict[str, Any] = {"train": BatchTensors(x[train] * 2 - 1, all_ids[train]),
                                   "test": BatchTensors(xt * 2 - 1, ids([str(int(v)) for v in yt]))}
        if n_val:
            streams["val"] = BatchTensors(x[val] * 2 - 1, all_ids[val])
        info = PromptImageInfo("digits", "scikit-learn digits 8×8 with prompts '0'..'9'", len(train), len(xt),
                               tuple(streams))
    else:
        inst = instance_images(cfg)
        prior = class_images(cfg) if cfg.data.prior_preservation else None
        pairs = DreamBoothPairs(inst, ids([cfg.data.instance_prompt]), prior, ids([cfg.data.class_prompt]))
        streams = {"train": pairs, "test": pairs}
        extras["instance"] = inst
        channels, side = image_shape(cfg)
        info = PromptImageInfo(f"dreambooth {cfg.data.instance}", f"{len(inst)} instance images, "
                               f"{0 if prior is None else len(prior)} generated class images", len(pairs), len(pairs),
                               ("train", "test"), image_size=side, channels=channels)
    return DataBundle(info, streams, collate=whole_batch, extras=extras)
