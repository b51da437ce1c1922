"""DreamBooth's overfitting curve: the callback's numbers at a validation point, and the step chosen
from a metrics log."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from robustlab.labs.diffusion.config import DiffusionConfig
from robustlab.labs.diffusion.curve import CURVE_KEYS, DreamBoothCurve, curve_rows, curve_section
from robustlab.labs.diffusion.model import build_diffusion
from robustlab.labs.diffusion.prepare import instance_images, prompt_words


def test_the_callback_scores_the_live_model_without_touching_training_state():
    cfg = DiffusionConfig.model_validate({
        "data": {"stage": "dreambooth"},
        "model": {"channels": [8, 16], "text_dim": 16, "text_layers": 1, "text_heads": 2, "attention_head_dim": 4},
        "evaluate": {"curve_per_prompt": 4, "steps": 2, "judge_epochs": 1}})
    torch.manual_seed(0)
    model = build_diffusion(cfg, prompt_words(cfg), 8, 1).train()
    callback = DreamBoothCurve(cfg, instance_images(cfg))
    rng = torch.get_rng_state()
    extra = callback.on_epoch_end(SimpleNamespace(model=model), {"step": 50})
    assert torch.equal(rng, torch.get_rng_state())  # the training RNG stream is not consumed
    assert model.training and model.unet.training  # modes restored
    assert sorted(extra) == sorted(f"db_{k}" for k in CURVE_KEYS)
    assert all(0.0 <= v <= 1.0 for v in extra.values())
    assert extra == callback.on_epoch_end(SimpleNamespace(model=model), {"step": 100})  # same noise, same model


def test_curve_section_reads_the_log_and_applies_the_rule():
    log = [{"epoch": 1, "step": s, "val_loss": 0.1, **{f"db_{k}": v for k, v in zip(CURVE_KEYS, row, strict=True)}}
           for s, row in ((50, (0.2, 0.0, 0.0, 1.0)), (100, (0.95, 0.02, 0.1, 1.0)), (150, (1.0, 0.3, 0.6, 0.9)))]
    log.insert(0, {"epoch": 1, "step": 10, "val_loss": 0.2})  # a record without the curve is skipped
    rows = curve_rows(log)
    assert [r["step"] for r in rows] == [50, 100, 150]
    section = curve_section(log)
    assert section is not None and section["chosen_step"] == 100  # ≥ 0.9 × best fidelity, low drift, low copying
    assert curve_section([{"epoch": 1, "step": 5}]) is None
