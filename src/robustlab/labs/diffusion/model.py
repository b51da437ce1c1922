"""The lab's text-conditional diffusion model: a diffusers ``UNet2DConditionModel`` conditioned by a
transformers ``CLIPTextModel`` over a CLIP tokenizer whose prompt words are whole tokens, with the
DDPM noise schedule it is trained on and the DDIM sampler it is sampled with."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from robustlab.labs.diffusion.config import DiffusionConfig
from robustlab.labs.diffusion.guidance import decode_latents, sample
from robustlab.labs.diffusion.pipeline_parts import quiet, write_clip_tokenizer

PROMPT_LENGTH = 8
"""Tokens per prompt (with start and end tokens) of the pixel model."""


def build_tokenizer(words: Sequence[str], length: int = PROMPT_LENGTH) -> Any:
    """A CLIP tokenizer (printable ASCII plus ``words`` as whole tokens), padded to ``length``."""
    with tempfile.TemporaryDirectory() as tmp:
        return write_clip_tokenizer(tmp, list(words), model_max_length=length)


class TextConditionalDiffusion(nn.Module):
    """``unet`` (ε-prediction on images ``(B, C, H, W)`` in [−1, 1]) and ``text_encoder`` (token ids
    ``(B, L)`` → embeddings ``(B, L, D)``), with ``tokenizer``, the training ``noise_scheduler``
    (DDPM) and ``sampler`` (DDIM of the same betas). ``forward(noisy, t, ids)`` is the noise prediction."""

    def __init__(self, unet: nn.Module, text_encoder: nn.Module, tokenizer: Any, noise_scheduler: Any,
                 sampler: Any) -> None:
        super().__init__()
        self.unet, self.text_encoder = unet, text_encoder
        self.tokenizer, self.noise_scheduler, self.sampler = tokenizer, noise_scheduler, sampler

    def token_ids(self, prompts: Sequence[str]) -> Tensor:
        """``(B, L)`` ids of ``prompts``, padded/truncated to the tokenizer's length."""
        return self.tokenizer(list(prompts), padding="max_length", truncation=True,
                              max_length=self.tokenizer.model_max_length, return_tensors="pt").input_ids

    def encode(self, ids: Tensor) -> Tensor:
        return self.text_encoder(ids.to(self.unet.device))[0]

    def forward(self, noisy: Tensor, t: Tensor, ids: Tensor) -> Tensor:
        return self.unet(noisy, t, encoder_hidden_states=self.encode(ids)).sample

    def to_latents(self, images: Tensor) -> Tensor:
        """What the UNet denoises for images ``(B, C, H, W)`` in [−1, 1]: the images themselves (pixel
        space)."""
        return images

    def to_images(self, latents: Tensor) -> Tensor:
        """Images ``(B, C, H, W)`` in [0, 1] on the CPU, float32, of final samples ``latents``."""
        return ((latents.float() + 1) / 2).clamp(0, 1).cpu()

    @torch.no_grad()
    def generate(self, prompts: Sequence[str], scale: float, steps: int, seed: int, rescale: float = 0.0,
                 batch_size: int = 512) -> Tensor:
        """Images ``(N, C, H, W)`` in [0, 1] for ``prompts`` (one each), guided at ``scale`` with DDIM in
        ``steps`` steps; image ``i`` depends only on ``seed``, its prompt and its index ``i``'s batch."""
        c = self.unet.config
        uncond = self.encode(self.token_ids([""]))
        out = []
        for start in range(0, len(prompts), batch_size):
            chunk = list(prompts[start : start + batch_size])
            g = torch.Generator(device="cpu").manual_seed(seed * 100_003 + start)
            noise = torch.randn((len(chunk), c.in_channels, c.sample_size, c.sample_size), generator=g)
            x = sample(self.unet, self.sampler, self.encode(self.token_ids(chunk)), uncond, noise.shape, steps, scale,
                       rescale, generator=g, latents=noise.to(self.unet.device))
            out.append(self.to_images(x))
        return torch.cat(out)


class LatentDiffusion(TextConditionalDiffusion):
    """A Stable-Diffusion-shaped model: the UNet denoises the latents of a frozen ``vae``
    (``latents = vae.encode(x).mean · scaling_factor``); training noise schedule DDPM and sampler DDIM
    both from the model folder's scheduler config."""

    def __init__(self, components: dict[str, Any]) -> None:
        from diffusers import DDIMScheduler, DDPMScheduler

        config = dict(components["scheduler"].config)
        super().__init__(components["unet"], components["text_encoder"], components["tokenizer"],
                         DDPMScheduler.from_config(config), DDIMScheduler.from_config(config))
        self.vae = components["vae"]
        self.vae.requires_grad_(False)

    def train(self, mode: bool = True) -> LatentDiffusion:
        super().train(mode)
        self.vae.eval()  # frozen: no dropout, whatever the loop asks
        return self

    def to_latents(self, images: Tensor) -> Tensor:
        with torch.no_grad():
            dist = self.vae.encode(images.to(self.vae.dtype)).latent_dist
        return dist.mean * self.vae.config.scaling_factor

    def to_images(self, latents: Tensor) -> Tensor:
        return decode_latents(self.vae, latents).float().cpu()


def build_diffusion(cfg: DiffusionConfig, words: Sequence[str], image_size: int,
                    channels: int) -> TextConditionalDiffusion:
    """The untrained model of ``cfg`` for ``channels``×``image_size``² images and prompt ``words``."""
    from diffusers import DDIMScheduler, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    m = cfg.model
    tokenizer = build_tokenizer(words)
    levels = len(m.channels)
    unet = UNet2DConditionModel(
        sample_size=image_size, in_channels=channels, out_channels=channels, block_out_channels=tuple(m.channels),
        layers_per_block=m.layers_per_block,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (levels - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (levels - 1) + ("UpBlock2D",),
        cross_attention_dim=m.text_dim, attention_head_dim=m.attention_head_dim,
        norm_num_groups=math.gcd(32, *m.channels))
    text = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=m.text_dim, intermediate_size=2 * m.text_dim,
                          num_hidden_layers=m.text_layers, num_attention_heads=m.text_heads,
                          max_position_embeddings=tokenizer.model_max_length, bos_token_id=tokenizer.bos_token_id,
                          eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    with quiet():
        text_encoder = CLIPTextModel(text)
    schedule = {"num_train_timesteps": m.timesteps, "beta_schedule": "squaredcos_cap_v2", "clip_sample": True,
                "prediction_type": "epsilon"}
    return TextConditionalDiffusion(unet, text_encoder, tokenizer, DDPMScheduler(**schedule),
                                    DDIMScheduler(**schedule, steps_offset=1, set_alpha_to_one=True))
