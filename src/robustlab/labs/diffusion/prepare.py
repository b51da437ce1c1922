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
from robustlab.core.errors import RobustlabError
from robustlab.core.io import atomic_write_bytes
from robustlab.data.batches import BatchTensors, whole_batch
from robustlab.data.bundle import DataBundle
from robustlab.data.registry import default_data_root
from robustlab.data.spec import DataInfo
from robustlab.labs.diffusion.config import DiffusionConfig
from robustlab.labs.diffusion.judges import digits_split
from robustlab.labs.diffusion.model import TextConditionalDiffusion, build_diffusion, build_tokenizer
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


def instance_images(cfg: DiffusionConfig) -> Tensor:
    """The subject ``(n, 1, 8, 8)`` in [0, 1]: the first ``instance_images`` 3s of the digits test split,
    mirrored left–right (never seen by the base model), or the user's folder."""
    if cfg.data.instance == "mirrored-3":
        x, y = digits_split("test")
        return x[y == 3][: cfg.data.instance_images].flip(-1)
    from robustlab.data.file_dataset import read_image

    folder = Path(cfg.data.instance_dir or "")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
    if not files:
        raise RobustlabError(f"instance folder {folder} holds no images (data.instance_dir)")
    out = []
    for path in files:
        try:
            out.append(read_image(path, (IMAGE_SIZE, IMAGE_SIZE), CHANNELS))
        except Exception as e:  # noqa: BLE001 - PIL raises many types; one line names the file
            raise RobustlabError(f"instance image {path} cannot be read ({type(e).__name__})") from None
    return torch.stack(out)


def load_run_model(cfg: DiffusionConfig, path: str) -> TextConditionalDiffusion:
    """The model in the robustlab checkpoint ``path`` (its EMA weights when it evaluates with them)."""
    state = load_checkpoint(path)
    model = build_diffusion(cfg, state["meta"]["words"], IMAGE_SIZE, CHANNELS)
    load_model_state(model, averaged_weights(state["model"], state), path)
    return model.eval()


def class_images(cfg: DiffusionConfig) -> Tensor:
    """``num_class_images`` images ``(M, 1, 8, 8)`` in [0, 1] that the starting model (``train.init_from``)
    generates from ``class_prompt`` at ``class_image_scale`` — DreamBooth's prior-preservation set —
    read from the cache when the same checkpoint and settings made them before."""
    if not cfg.train.init_from:
        raise RobustlabError("the dreambooth stage needs train.init_from (the base run's checkpoint; in a recipe: "
                             "init_from: <base run>)")
    d, e = cfg.data, cfg.evaluate
    key = hashlib.sha256(Path(cfg.train.init_from).read_bytes())
    key.update(f"{d.class_prompt}|{d.num_class_images}|{d.class_image_scale}|{e.steps}|{cfg.seed}".encode())
    folder = Path(d.cache) if d.cache else default_data_root() / "cache" / "diffusion"
    path = folder / f"class-{key.hexdigest()[:24]}.safetensors"
    from safetensors.torch import load, save

    if path.is_file():
        return load(path.read_bytes())["images"]
    model = load_run_model(cfg, cfg.train.init_from)
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


def build_bundle(cfg: DiffusionConfig, smoke: bool = False) -> DataBundle:
    """Base stage: ``(images in [−1, 1], prompt ids)`` of the digits (``val_fraction`` of the training
    split validates). DreamBooth stage: :class:`DreamBoothPairs` (train and test)."""
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
        info = PromptImageInfo(f"dreambooth {cfg.data.instance}", f"{len(inst)} instance images, "
                               f"{0 if prior is None else len(prior)} generated class images", len(pairs), len(pairs),
                               ("train", "test"))
    return DataBundle(info, streams, collate=whole_batch, extras=extras)
