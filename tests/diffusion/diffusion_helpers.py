"""Helpers shared by the diffusion tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from robustlab.labs.diffusion.pipeline_parts import encode_prompts

WORDS = ("sks", "a", "photo", "of", "dog")
PROMPT = "a photo of sks dog"
LATENT_SHAPE = (1, 4, 8, 8)  # 8×8 latents keep the UNet fast; the VAE turns them into 16×16 images


def embeddings(components: dict, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(cond, uncond)``: the prompts' text embeddings ``(B, L, D)`` and the empty prompt's ``(1, L, D)``."""
    tok, enc = components["tokenizer"], components["text_encoder"]
    return encode_prompts(tok, enc, prompts), encode_prompts(tok, enc, [""])


def noise(shape: tuple[int, ...] = LATENT_SHAPE, seed: int = 0) -> torch.Tensor:
    """Unit Gaussian latents from a generator seeded ``seed``."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@contextmanager
def unet_batches(unet: torch.nn.Module) -> Iterator[list[int]]:
    """Record the batch size of every forward of ``unet`` while the block runs."""
    batches: list[int] = []
    handle = unet.register_forward_hook(lambda module, args, output: batches.append(int(args[0].shape[0])))
    try:
        yield batches
    finally:
        handle.remove()
