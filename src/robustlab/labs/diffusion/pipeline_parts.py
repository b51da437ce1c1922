"""A Stable-Diffusion-shaped model folder: built tiny and offline, or read from the user's own folder.

Components are the five pieces diffusers' ``StableDiffusionPipeline`` is made of, in a dict keyed
``"unet"``, ``"vae"``, ``"text_encoder"``, ``"tokenizer"``, ``"scheduler"``. A folder on disk has
diffusers' layout: one subfolder per component plus ``model_index.json``. Weights are read and written
as safetensors only; pickled ``*.bin`` weights are refused.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from robustlab.core.errors import RobustlabError

COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
WEIGHTED = ("unet", "vae", "text_encoder")
BOS, EOS = "<|startoftext|>", "<|endoftext|>"


@contextmanager
def quiet() -> Iterator[None]:
    """diffusers' and transformers' logs at error level and their progress bars off for a while; their
    earlier settings back afterwards."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    saved = [(lib, lib.get_verbosity(), lib.is_progress_bar_enabled())
             for lib in (diffusers_logging, transformers_logging)]
    for lib, _, _ in saved:
        lib.set_verbosity_error()
        lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, verbosity, bars in saved:
            lib.set_verbosity(verbosity)
            if bars:
                lib.enable_progress_bar()


def write_clip_tokenizer(folder: Path | str, words: Sequence[str], model_max_length: int = 16) -> Any:
    """Write ``vocab.json`` and ``merges.txt`` in ``folder`` and return the ``CLIPTokenizer`` they make.

    Every printable ASCII character is a token, and so is every word of ``words`` (lower case, letters,
    digits or punctuation, no spaces) as one whole-word token ``word</w>``. ``<|startoftext|>`` and
    ``<|endoftext|>`` are the last two ids, as in CLIP; padding is ``<|endoftext|>`` to
    ``model_max_length``. A word that these merges cannot make one token is a :class:`RobustlabError`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = [c for c in string.printable if c not in string.whitespace]
    vocab: dict[str, int] = {}
    for token in chars + [c + "</w>" for c in chars]:
        vocab.setdefault(token, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in sorted(words, key=len, reverse=True):  # longer words' merges rank first, so shorter ones can't cut them
        if not word or any(c not in chars for c in word) or word != word.lower():
            raise RobustlabError(f"tokenizer word {word!r} must be lower-case printable ASCII without spaces")
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        left = pieces[0]
        for right in pieces[1:]:
            if (left, right) not in merges:
                merges.append((left, right))
            left = left + right
            vocab.setdefault(left, len(vocab))
    vocab.setdefault(BOS, len(vocab))
    vocab.setdefault(EOS, len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tokenizer = read_clip_tokenizer(folder, model_max_length)
    for word in words:
        check_single_token(tokenizer, word)
    return tokenizer


def read_clip_tokenizer(folder: Path | str, model_max_length: int = 16) -> Any:
    """The ``CLIPTokenizer`` of the ``vocab.json`` and ``merges.txt`` in ``folder``."""
    from transformers import CLIPTokenizer

    folder = Path(folder)
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    lines = (folder / "merges.txt").read_text(encoding="utf-8").splitlines()
    merges = [tuple(line.split()) for line in lines if line.strip() and not line.startswith("#version")]
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


def tiny_stable_diffusion(folder: Path | str | None = None, seed: int = 0, words: Sequence[str] = ("sks",)) -> dict:
    """A randomly initialised Stable Diffusion of diffusers' fast-test sizes, the same for the same ``seed``.

    UNet on 4×32×32 latents with 32-wide cross-attention, a 2-level VAE (3×64×64 images ↔ 4×32×32
    latents, scaling factor 0.18215), a 5-layer CLIP text encoder of width 32, a CLIP tokenizer from
    :func:`write_clip_tokenizer` with ``words`` as whole tokens (its files under ``folder`` when given,
    else a temporary folder) and SD's DDIM scheduler. The global torch RNG is left untouched."""
    import tempfile

    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if folder is None:
        with tempfile.TemporaryDirectory() as tmp:
            tokenizer = write_clip_tokenizer(tmp, words)
    else:
        tokenizer = write_clip_tokenizer(folder, words)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
        )
        vae = AutoencoderKL(
            block_out_channels=[32, 64], in_channels=3, out_channels=3,
            down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
            up_block_types=["UpDecoderBlock2D", "UpDecoderBlock2D"], latent_channels=4,
        )
        config = CLIPTextConfig(
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, hidden_size=32, intermediate_size=37, layer_norm_eps=1e-05,
            num_attention_heads=4, num_hidden_layers=5, vocab_size=len(tokenizer),
            max_position_embeddings=max(77, tokenizer.model_max_length),
        )
        with quiet():
            text_encoder = CLIPTextModel(config)
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )
    for module in (unet, vae, text_encoder):
        module.eval()
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def as_pipeline(components: dict) -> Any:
    """A diffusers ``StableDiffusionPipeline`` of ``components``: no safety checker, no progress bar."""
    from diffusers import StableDiffusionPipeline

    with quiet():
        pipeline = StableDiffusionPipeline(
            **{k: components[k] for k in COMPONENTS}, safety_checker=None, feature_extractor=None,
            requires_safety_checker=False,
        )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def save_components(components: dict, folder: Path | str) -> Path:
    """Write ``components`` to ``folder`` in diffusers' layout (safetensors weights, ``model_index.json``)
    so that :func:`load_components` and ``StableDiffusionPipeline.from_pretrained`` read them back."""
    folder = Path(folder)
    pipeline = as_pipeline(components)
    with quiet():
        pipeline.save_pretrained(folder, safe_serialization=True)
    return folder


def check_folder(folder: Path) -> None:
    """One line when ``folder`` is not a diffusers Stable Diffusion folder with safetensors weights: which
    component is missing, or holds pickles only."""
    if not folder.is_dir():
        raise RobustlabError(f"Stable Diffusion model folder {str(folder)!r} is not a folder")
    missing = [name for name in COMPONENTS if not (folder / name).is_dir()]
    if missing:
        raise RobustlabError(
            f"Stable Diffusion folder {str(folder)!r} lacks {', '.join(f'{m}/' for m in missing)}; "
            f"it must hold the subfolders {', '.join(f'{c}/' for c in COMPONENTS)} (diffusers' layout)"
        )
    for name in WEIGHTED:
        sub = folder / name
        if not any(sub.glob("*.safetensors")):
            pickles = sorted(p.name for p in sub.glob("*.bin"))
            if pickles:
                raise RobustlabError(
                    f"{str(sub)!r} holds only pickled weights ({', '.join(pickles)}); convert them to safetensors "
                    f"(e.g. load and save_pretrained(..., safe_serialization=True)) — pickles are not loaded"
                )
            raise RobustlabError(f"{str(sub)!r} holds no *.safetensors weights")


def load_components(folder: Path | str) -> dict:
    """Read the five components of the Stable Diffusion folder ``folder`` offline, weights from
    safetensors only; the networks come back in eval mode."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    check_folder(folder)
    kw: dict[str, Any] = {"local_files_only": True}
    with quiet():
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", use_safetensors=True, **kw)
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", use_safetensors=True, **kw)
        text_encoder = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", use_safetensors=True, **kw)
        tokenizer = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", **kw)
        scheduler = DDIMScheduler.from_pretrained(folder, subfolder="scheduler", **kw)
    for module in (unet, vae, text_encoder):
        module.eval()
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def check_single_token(tokenizer: Any, word: str) -> int:
    """The id of ``word`` when ``tokenizer`` makes it exactly one token; otherwise a one-line
    :class:`RobustlabError` saying how many tokens it is."""
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = ", ".join(t.removesuffix("</w>") for t in tokenizer.convert_ids_to_tokens(ids))
        raise RobustlabError(
            f"the rare token {word!r} is {len(ids)} tokens ({pieces}) for this tokenizer; "
            f"pick a word that is one token, e.g. 'sks'"
        )
    return int(ids[0])


def encode_prompts(tokenizer: Any, text_encoder: Any, prompts: list[str]) -> torch.Tensor:
    """Text embeddings ``(len(prompts), tokenizer.model_max_length, hidden)``: the text encoder's last
    hidden state on the prompts padded (and truncated) to the tokenizer's maximum length, without grad."""
    ids = tokenizer(
        list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
        return_tensors="pt",
    ).input_ids
    with torch.no_grad():
        return text_encoder(ids.to(text_encoder.device))[0]
