"""The diffusion lab's audit: the guidance-scale study of a base model and the DreamBooth study of a
fine-tuned one, from seeded samples scored by judges trained on real digits; and the sample grids."""

from __future__ import annotations

from typing import Any

import torch

from robustlab.labs.base import RunContext
from robustlab.labs.diffusion import studies
from robustlab.labs.diffusion.curve import curve_section, judges
from robustlab.labs.diffusion.judges import digits_split
from robustlab.labs.diffusion.model import TextConditionalDiffusion
from robustlab.labs.diffusion.prepare import instance_images, starting_model

SAMPLER = "DDIM (eta 0) over the DDPM betas (squaredcos_cap_v2)"


def guidance_study(ctx: RunContext, model: TextConditionalDiffusion, judge: Any) -> dict[str, Any]:
    """Every digit prompt ``per_prompt`` times at every scale (and the rescaled ones): the judge's
    label accuracy, FD on its features, improved precision/recall and diversity; the FD floor of real
    test vs real train images; the balanced scale."""
    e = ctx.cfg.evaluate
    xt, yt = digits_split("test")
    xtr, _ = digits_split("train")
    labels = torch.arange(10).repeat_interleave(e.per_prompt)
    prompts = [str(int(v)) for v in labels]
    rows = []
    for scale, rescale in [*((s, 0.0) for s in e.scales), *((s, e.rescale) for s in e.rescaled)]:
        samples = model.generate(prompts, scale, e.steps, e.sample_seed, rescale)
        row = studies.guidance_row(scale, samples, labels, judge, xt, yt)
        row["rescale"] = rescale
        rows.append(row)
    plain = [r for r in rows if not r["rescale"]]
    return {"rows": rows, "fd_floor": studies.fd_floor(judge, xtr, xt), "balanced_scale": studies.balanced_scale(plain),
            "best_accuracy_scale": studies.best_accuracy_scale(plain), "sampler": SAMPLER, "steps": e.steps,
            "per_prompt": e.per_prompt, "seed": e.sample_seed,
            "convention": "diffusers' guidance_scale s: eps = eps_u + s (eps_c - eps_u); s = 1 no guidance, "
                          "s = 0 unconditional; Ho & Salimans w = s - 1"}


def dreambooth_study(ctx: RunContext, model: TextConditionalDiffusion, judge: Any, style: Any) -> dict[str, Any]:
    """Concept fidelity, language drift, copying and other-class drift of the fine-tuned model beside
    the model it started from (same prompts, seeds and scale)."""
    cfg, e = ctx.cfg, ctx.cfg.evaluate
    xt, yt = digits_split("test")
    inst = instance_images(cfg)
    n = e.per_prompt
    others = [d for d in range(10) if str(d) != cfg.data.class_prompt]

    def row(name: str, m: TextConditionalDiffusion) -> dict[str, Any]:
        sks = m.generate([cfg.data.instance_prompt] * n, e.dreambooth_scale, e.steps, e.sample_seed)
        cls = m.generate([cfg.data.class_prompt] * n, e.dreambooth_scale, e.steps, e.sample_seed + 1)
        other = m.generate([str(d) for d in others for _ in range(max(2, n // 4))], e.dreambooth_scale, e.steps,
                           e.sample_seed + 2)
        per = max(2, n // 4)
        other_samples = {d: other[i * per : (i + 1) * per] for i, d in enumerate(others)}
        return studies.dreambooth_row(name, sks, cls, inst, style, judge, other_samples, xt, yt)

    out: dict[str, Any] = {"after": row("after", model), "instance_prompt": cfg.data.instance_prompt,
                           "class_prompt": cfg.data.class_prompt, "prior_preservation": cfg.data.prior_preservation,
                           "scale": e.dreambooth_scale, "instance_images": int(len(inst))}
    if cfg.train.init_from:
        out["before"] = row("before", starting_model(cfg).to(ctx.device))
    curve = curve_section(ctx.run.metrics())
    if curve:
        out["curve"] = curve
    return out


def subject_study(ctx: RunContext, model: TextConditionalDiffusion) -> dict[str, Any]:
    """The judge-free DreamBooth study of a Stable Diffusion run (:func:`studies.subject_row`): the
    starting model and the fine-tuned one, same prompts, seeds and scale."""
    cfg, e = ctx.cfg, ctx.cfg.evaluate
    inst, n = instance_images(cfg), e.per_prompt

    def samples(m: TextConditionalDiffusion) -> tuple[torch.Tensor, torch.Tensor]:
        return (m.generate([cfg.data.instance_prompt] * n, e.dreambooth_scale, e.steps, e.sample_seed),
                m.generate([cfg.data.class_prompt] * n, e.dreambooth_scale, e.steps, e.sample_seed + 1))

    sks_b, cls_b = samples(starting_model(cfg).to(ctx.device))
    sks_a, cls_a = samples(model)
    return {"before": studies.subject_row("before", sks_b, cls_b, inst),
            "after": studies.subject_row("after", sks_a, cls_a, inst, class_before=cls_b),
            "instance_prompt": cfg.data.instance_prompt, "class_prompt": cfg.data.class_prompt,
            "prior_preservation": cfg.data.prior_preservation, "scale": e.dreambooth_scale,
            "instance_images": int(len(inst)), "model_folder": str(cfg.model.pretrained),
            "measures": "pixel proxies on 32 x 32 downsampled images (no DINO/CLIP judge offline)"}


def audit(ctx: RunContext, model: TextConditionalDiffusion) -> dict[str, Any]:
    """The results sections of a trained run (``guidance`` or ``dreambooth``)."""
    if ctx.cfg.model.name == "stable-diffusion":
        return {"dreambooth": subject_study(ctx, model)}
    judge, style = judges(ctx.cfg)
    if ctx.cfg.data.stage == "base":
        return {"guidance": guidance_study(ctx, model, judge)}
    return {"dreambooth": dreambooth_study(ctx, model, judge, style)}


def sample_grids(ctx: RunContext, model: TextConditionalDiffusion) -> dict[str, str]:
    """Figures: per guidance scale a grid of 8 samples per digit (base) with the study's curves, or
    the instance images beside "instance prompt" and "class prompt" samples (dreambooth)."""
    from robustlab.labs.diffusion import figures

    e, out = ctx.cfg.evaluate, {}
    results = ctx.run.results()
    if ctx.cfg.data.stage == "base":
        prompts = [str(d) for d in range(10) for _ in range(8)]
        grids = {s: model.generate(prompts, s, e.steps, e.sample_seed) for s in e.scales}
        figures.guidance_grids(grids, 8, ctx.run.figures / "guidance-grids.png")
        out["guidance_grids"] = "figures/guidance-grids.png"
        rows = (results.get("guidance") or {}).get("rows")
        if rows:
            figures.guidance_curves(rows, results["guidance"], ctx.run.figures / "guidance-curves.png")
            out["guidance_curves"] = "figures/guidance-curves.png"
        return out
    d = ctx.cfg.data
    sks = model.generate([d.instance_prompt] * 16, e.dreambooth_scale, e.steps, e.sample_seed)
    cls = model.generate([d.class_prompt] * 16, e.dreambooth_scale, e.steps, e.sample_seed + 1)
    figures.dreambooth_grid(instance_images(ctx.cfg), sks, cls, d.instance_prompt, d.class_prompt,
                            ctx.run.figures / "dreambooth.png")
    out["dreambooth"] = "figures/dreambooth.png"
    return out
