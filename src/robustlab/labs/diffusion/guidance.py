"""Classifier-free guidance, written out: the guided noise prediction and the sampling loop around it.

Convention. ``scale`` is diffusers' ``guidance_scale`` *s*::

    eps = eps_u + s * (eps_c - eps_u)

where ``eps_c`` is the UNet's noise prediction given the prompt and ``eps_u`` given the empty prompt.
*s* = 1 gives the conditional prediction (no guidance), *s* = 0 the unconditional one, *s* > 1
extrapolates away from the unconditional. Ho & Salimans (2022) write the same rule with *w* = *s* − 1:
``eps = (1 + w) eps_c − w eps_u``.

``rescale`` φ (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps Are Flawed", §3.4)
matches the guided prediction's standard deviation to the conditional one's, per sample over all
non-batch dimensions, and mixes::

    eps = φ * eps * (std(eps_c) / std(eps)) + (1 − φ) * eps

φ = 0 is plain CFG (diffusers' ``guidance_rescale``).

Both predictions come from ONE UNet call on the doubled batch ``[latents, latents]`` with text
embeddings ``[uncond, cond]`` (unconditional first, as diffusers orders them), even at *s* = 1.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from robustlab.core.modes import eval_mode


def guided_noise(unet: Any, latents: torch.Tensor, t: Any, cond: torch.Tensor, uncond: torch.Tensor,
                 scale: float, rescale: float = 0.0) -> torch.Tensor:
    """The guided noise prediction, shape of ``latents`` ``(B, C, H, W)``.

    ``cond`` is ``(B, L, D)`` text embeddings, ``uncond`` ``(B, L, D)`` or ``(1, L, D)`` (broadcast to the
    batch). Exactly one UNet forward, on batch ``2B``."""
    batch = latents.shape[0]
    if uncond.shape[0] == 1 and batch != 1:
        uncond = uncond.expand(batch, *uncond.shape[1:])
    if cond.shape[0] == 1 and batch != 1:
        cond = cond.expand(batch, *cond.shape[1:])
    out = unet(torch.cat([latents, latents]), t, encoder_hidden_states=torch.cat([uncond, cond]).to(latents.dtype))
    eps_u, eps_c = (out.sample if hasattr(out, "sample") else out).chunk(2)
    eps = eps_u + scale * (eps_c - eps_u)
    if rescale > 0:
        dims = list(range(1, eps.ndim))
        std_c = eps_c.std(dim=dims, keepdim=True)
        std_cfg = eps.std(dim=dims, keepdim=True)
        eps = rescale * eps * (std_c / std_cfg) + (1 - rescale) * eps
    return eps


def _step_kwargs(scheduler: Any, generator: torch.Generator | None) -> dict:
    params = inspect.signature(scheduler.step).parameters
    kwargs: dict[str, Any] = {}
    if "eta" in params:
        kwargs["eta"] = 0.0
    if "generator" in params:
        kwargs["generator"] = generator
    return kwargs


def sample(unet: Any, scheduler: Any, cond: torch.Tensor, uncond: torch.Tensor, shape: tuple[int, ...] | torch.Size,
           steps: int, scale: float, rescale: float = 0.0, generator: torch.Generator | None = None,
           latents: torch.Tensor | None = None) -> torch.Tensor:
    """Final latents ``shape`` = ``(B, C, H, W)`` after ``steps`` guided denoising steps of ``scheduler``.

    The start is ``latents`` (unit-variance noise, scaled by ``scheduler.init_noise_sigma`` as diffusers
    does) or, when not given, fresh noise from ``generator``. The same generator seed, or the same
    ``latents``, gives the same result. DDIM runs with η = 0. One UNet forward (batch ``2B``) per step;
    the UNet's train/eval flags are as before afterwards."""
    device = next(unet.parameters()).device
    dtype = next(unet.parameters()).dtype
    scheduler.set_timesteps(steps, device=device)
    if latents is None:
        latents = torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)
    elif tuple(latents.shape) != tuple(shape):
        raise ValueError(f"latents have shape {tuple(latents.shape)}, expected {tuple(shape)}")
    latents = latents.to(device=device, dtype=dtype) * scheduler.init_noise_sigma
    kwargs = _step_kwargs(scheduler, generator)
    with torch.inference_mode(), eval_mode(unet):
        for t in scheduler.timesteps:
            model_input = scheduler.scale_model_input(latents, t)
            eps = guided_noise(unet, model_input, t, cond, uncond, scale, rescale)
            latents = scheduler.step(eps, t, latents, return_dict=False, **kwargs)[0]
    return latents


def decode_latents(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """Images ``(B, 3, H·f, W·f)`` in [0, 1] from latents ``(B, C, H, W)`` (``f`` the VAE's downsampling
    factor), without grad; the VAE's train/eval flags are as before afterwards."""
    with torch.inference_mode(), eval_mode(vae):
        images = vae.decode(latents / vae.config.scaling_factor).sample
    return (images / 2 + 0.5).clamp(0, 1)
