"""Classifier-free guidance: the combination rule, one UNet call per step, and equality with diffusers."""

from __future__ import annotations

import torch
from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion import rescale_noise_cfg
from diffusion_helpers import LATENT_SHAPE, PROMPT, embeddings, noise, unet_batches

from robustlab.labs.diffusion.guidance import decode_latents, guided_noise, sample
from robustlab.labs.diffusion.pipeline_parts import as_pipeline

T = torch.tensor(501)


def _two_predictions(tiny_sd: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latents (2, 4, 8, 8), cond (2, L, D), uncond (1, L, D), and the UNet's own eps_c, eps_u."""
    unet = tiny_sd["unet"]
    latents = noise((2, *LATENT_SHAPE[1:]), seed=1)
    cond, uncond = embeddings(tiny_sd, [PROMPT, "a dog"])
    with torch.no_grad():
        eps_c = unet(latents, T, encoder_hidden_states=cond).sample
        eps_u = unet(latents, T, encoder_hidden_states=uncond.expand(2, -1, -1)).sample
    assert not torch.allclose(eps_c, eps_u, atol=1e-3)  # the prompt matters, so the checks below can tell
    return latents, cond, uncond, eps_c, eps_u


def test_scale_one_is_conditional_and_scale_zero_unconditional(tiny_sd):
    latents, cond, uncond, eps_c, eps_u = _two_predictions(tiny_sd)
    with torch.no_grad():
        one = guided_noise(tiny_sd["unet"], latents, T, cond, uncond, scale=1.0)
        zero = guided_noise(tiny_sd["unet"], latents, T, cond, uncond, scale=0.0)
    assert one.shape == latents.shape
    torch.testing.assert_close(one, eps_c, atol=1e-5, rtol=0)
    torch.testing.assert_close(zero, eps_u, atol=1e-5, rtol=0)


def test_scale_three_extrapolates_by_hand(tiny_sd):
    latents, cond, uncond, eps_c, eps_u = _two_predictions(tiny_sd)
    with torch.no_grad():
        three = guided_noise(tiny_sd["unet"], latents, T, cond, uncond, scale=3.0)
    torch.testing.assert_close(three, eps_u + 3.0 * (eps_c - eps_u), atol=1e-4, rtol=0)


def test_rescale_matches_conditional_std_and_diffusers(tiny_sd):
    latents, cond, uncond, eps_c, eps_u = _two_predictions(tiny_sd)
    unet = tiny_sd["unet"]
    with torch.no_grad():
        plain = guided_noise(unet, latents, T, cond, uncond, scale=6.0)
        full = guided_noise(unet, latents, T, cond, uncond, scale=6.0, rescale=1.0)
        half = guided_noise(unet, latents, T, cond, uncond, scale=6.0, rescale=0.5)
    std = lambda x: x.flatten(1).std(dim=1)  # noqa: E731
    assert not torch.allclose(std(plain), std(eps_c), rtol=0.05)  # guidance at 6 inflates the std
    torch.testing.assert_close(std(full), std(eps_c), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(half, rescale_noise_cfg(plain, eps_c, guidance_rescale=0.5), atol=1e-5, rtol=1e-5)


def test_one_unet_forward_of_doubled_batch_per_step(tiny_sd):
    cond, uncond = embeddings(tiny_sd, [PROMPT, "a dog"])
    shape = (2, *LATENT_SHAPE[1:])
    with unet_batches(tiny_sd["unet"]) as batches:
        out = sample(tiny_sd["unet"], tiny_sd["scheduler"], cond, uncond, shape, steps=3, scale=6.0,
                     generator=torch.Generator().manual_seed(0))
    assert out.shape == shape
    assert batches == [4, 4, 4]


def test_sample_is_deterministic_and_restores_train_mode(tiny_sd):
    unet, scheduler = tiny_sd["unet"], tiny_sd["scheduler"]
    cond, uncond = embeddings(tiny_sd, [PROMPT])

    def run(seed: int) -> torch.Tensor:
        return sample(unet, scheduler, cond, uncond, LATENT_SHAPE, steps=2, scale=6.0,
                      generator=torch.Generator().manual_seed(seed))

    flags: list[bool] = []
    unet.train()
    handle = unet.register_forward_hook(lambda module, args, output: flags.append(module.training))
    try:
        first = run(0)
        assert flags == [False, False]  # the UNet runs in eval mode ...
        assert unet.training and all(m.training for m in unet.modules())  # ... and its own flags come back
    finally:
        handle.remove()
        unet.eval()
    assert torch.equal(first, run(0))
    assert not torch.allclose(first, run(1))
    assert torch.equal(first, sample(unet, scheduler, cond, uncond, LATENT_SHAPE, 2, 6.0, latents=noise(seed=0)))


def test_loop_equals_stable_diffusion_pipeline(tiny_sd):
    """Same components, same starting noise, 2 DDIM steps at guidance 6: latents and decoded images
    equal diffusers' StableDiffusionPipeline, whether it encodes the prompts itself or is given ours."""
    unet, scheduler, vae = tiny_sd["unet"], tiny_sd["scheduler"], tiny_sd["vae"]
    cond, uncond = embeddings(tiny_sd, [PROMPT])
    start = noise(seed=3)
    ours = sample(unet, scheduler, cond, uncond, LATENT_SHAPE, steps=2, scale=6.0, latents=start)
    pipeline = as_pipeline(tiny_sd)
    size = 2 * LATENT_SHAPE[-1]  # the tiny VAE halves: 8×8 latents ↔ 16×16 images
    common = {"num_inference_steps": 2, "guidance_scale": 6.0, "height": size, "width": size}
    theirs = pipeline(prompt=PROMPT, latents=start.clone(), output_type="latent", **common).images
    given = pipeline(prompt_embeds=cond, negative_prompt_embeds=uncond, latents=start.clone(), output_type="latent",
                     **common).images
    assert torch.equal(ours, theirs)
    assert torch.equal(ours, given)
    images = decode_latents(vae, ours)
    assert images.shape == (1, 3, size, size)
    assert images.min() >= 0.0 and images.max() <= 1.0
    pipeline_images = pipeline(prompt=PROMPT, latents=start.clone(), output_type="pt", **common).images
    torch.testing.assert_close(images, pipeline_images, atol=1e-6, rtol=0)
