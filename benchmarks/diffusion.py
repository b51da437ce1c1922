"""Diffusion lab: our classifier-free-guidance sampler vs diffusers' ``StableDiffusionPipeline`` on the
same tiny Stable Diffusion, and batched vs per-prompt sampling.

Model: ``tiny_stable_diffusion(seed=0)`` (diffusers' fast-test sizes: UNet (32, 64) with cross-attention,
4-channel 32×32 latents, a 5-layer CLIP text encoder of width 32, SD's DDIM scheduler), built offline.
Both contenders start from the same unit-noise latents and the same prompt embeddings and return
latents (no VAE decode), ``--steps`` DDIM steps at guidance scale 6.

(1) Sampler: (a) ``guidance.sample`` (one UNet call per step on the doubled batch) vs (b) the pipeline
    called with ``prompt_embeds``/``negative_prompt_embeds``/``latents``, ``output_type="latent"``;
    images/s, and the max |difference| of their latents (expected 0: the loop is the same maths).
(2) Batching: ``--batch`` prompts in one ``sample`` call vs one call per prompt (images/s; results equal).

Timing: wall seconds with ``torch.set_num_threads(--threads)`` (2 by default), after a warm-up, the
median of ``--repeats`` (3) interleaved repetitions. The tables are written into ``BENCHMARKS.md``
between ``<!-- diffusion:begin -->`` and ``<!-- diffusion:end -->``.

Usage: ``python benchmarks/diffusion.py [--quick] [--threads 2] [--steps 10] [--batch 8] [--out BENCHMARKS.md]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mdtable import machine, table, update_section  # noqa: E402
from robustlab.labs.diffusion.guidance import sample  # noqa: E402
from robustlab.labs.diffusion.pipeline_parts import as_pipeline, encode_prompts, tiny_stable_diffusion  # noqa: E402

SCALE = 6.0


def _timed(fn: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 steps, batch 2, 1 repeat")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps, batch, repeats = (2, 2, 1) if args.quick else (args.steps, args.batch, args.repeats)
    parts = tiny_stable_diffusion(seed=0, words=("sks",))
    unet, scheduler = parts["unet"], parts["scheduler"]
    pipe = as_pipeline(parts)
    prompts = [f"a photo of sks {w}" for w in ("dog", "cat", "cup", "car", "hat", "box", "bag", "toy")]
    prompts = (prompts * (batch // len(prompts) + 1))[:batch]
    cond = encode_prompts(parts["tokenizer"], parts["text_encoder"], prompts)
    uncond = encode_prompts(parts["tokenizer"], parts["text_encoder"], [""] * batch)
    shape = (batch, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
    noise = torch.randn(shape, generator=torch.Generator().manual_seed(0))

    def ours() -> torch.Tensor:
        return sample(unet, scheduler, cond, uncond, shape, steps, SCALE, latents=noise)

    def theirs() -> torch.Tensor:
        with torch.inference_mode():
            return pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, latents=noise.clone(),
                        num_inference_steps=steps, guidance_scale=SCALE, output_type="latent").images

    def per_prompt() -> torch.Tensor:
        return torch.cat([sample(unet, scheduler, cond[i : i + 1], uncond[i : i + 1], (1, *shape[1:]), steps, SCALE,
                                 latents=noise[i : i + 1]) for i in range(batch)])

    for fn in (ours, theirs, per_prompt):  # warm-up
        fn()
    times: dict[str, list[float]] = {"ours": [], "theirs": [], "per_prompt": []}
    outs: dict[str, torch.Tensor] = {}
    for _ in range(repeats):
        for name, fn in (("ours", ours), ("theirs", theirs), ("per_prompt", per_prompt)):
            seconds, outs[name] = _timed(fn)
            times[name].append(seconds)
    med = {k: statistics.median(v) for k, v in times.items()}
    diff = float((outs["ours"] - outs["theirs"]).abs().max())
    batch_diff = float((outs["ours"] - outs["per_prompt"]).abs().max())
    ratio = med["theirs"] / med["ours"]
    rows = [["(a) robustlab guidance.sample (one UNet call per step)", med["ours"], batch / med["ours"], 1.0],
            ["(b) diffusers StableDiffusionPipeline", med["theirs"], batch / med["theirs"],
             med["ours"] / med["theirs"]]]
    batching = [[f"{batch} prompts in one call", med["ours"], batch / med["ours"], 1.0],
                ["one call per prompt", med["per_prompt"], batch / med["per_prompt"], med["ours"] / med["per_prompt"]]]
    section = (
        "## Diffusion lab: guided sampler vs diffusers' pipeline, batched vs per-prompt\n\n"
        f"Machine: {machine()}. `python benchmarks/diffusion.py{' --quick' if args.quick else ''}`: tiny Stable "
        f"Diffusion (diffusers' fast-test sizes, 4×32×32 latents), {batch} prompts, {steps} DDIM steps, guidance "
        f"scale {SCALE:g}, latents out (no decode), median of {repeats}.\n\n"
        + table(["sampler", "seconds", "images/s", "speed relative to (a)"], rows)
        + f"\nOurs is **{ratio:.2f}x** the pipeline's speed (target >= 1.0x: {'met' if ratio >= 1.0 else 'NOT met'}); "
        f"max |latent difference| {diff:.1e}.\n\n"
        + table(["batching (ours)", "seconds", "images/s", "speed relative to batched"], batching)
        + f"\nMax |latent difference| batched vs per prompt: {batch_diff:.1e}.\n")
    update_section("diffusion", section, args.out)
    sys.stdout.write(section)


if __name__ == "__main__":
    main()
