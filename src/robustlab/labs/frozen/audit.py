"""The audit of a trained frozen-features classifier: presence accuracy, panel area from the head's
attention (several estimators, scored against the exact masks), the backbone's token norms (the
register question), and robustness of both the decision and the area estimate under attack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from robustlab.core.modes import eval_mode
from robustlab.core.runs import RunDir
from robustlab.data.frozen_features import cached_features, extract_features
from robustlab.data.spec import DatasetInfo
from robustlab.data.tensor_dataset import TensorImageDataset
from robustlab.evaluation import evaluate_robustness
from robustlab.evaluation.config import EvalConfig
from robustlab.labs.frozen.area import (
    AttentionScores,
    LogitSoftCount,
    MassThreshold,
    PeakCount,
    compare_estimators,
    patch_mask,
    score_areas,
)
from robustlab.labs.frozen.backbones import Backbone
from robustlab.labs.frozen.config import PATCH, FrozenConfig
from robustlab.labs.frozen.head import HeadOutput
from robustlab.labs.frozen.model import FrozenFeatureClassifier
from robustlab.labs.frozen.prepare import TileData, backbone_name, cache_dir
from robustlab.labs.frozen.tiles import Tiles

HEADLINE = "logit soft count (best head)"
"""The lab's area estimator, declared before any test number is seen: the calibrated soft count on
the pre-softmax logits of the head whose calibration fit is best."""


@dataclass
class HeadPass:
    """The head's outputs on a set of tiles: panel probability ``(N,)`` and the patch attention."""

    probability: Tensor
    scores: AttentionScores

    @property
    def prediction(self) -> Tensor:
        return (self.probability > 0.5).long()


def _collect(outs: list[HeadOutput]) -> HeadPass:
    prob = torch.cat([o.logits.float().softmax(-1)[:, 1] for o in outs])
    attn = torch.cat([o.patch_attention() for o in outs])
    logits = torch.cat([o.patch_scores() for o in outs])
    return HeadPass(prob.cpu(), AttentionScores(attn=attn.cpu(), logits=logits.cpu()))


def head_pass_tokens(model: FrozenFeatureClassifier, tokens: Tensor, batch_size: int,
                     device: torch.device) -> HeadPass:
    """The head on cached tokens ``(N, T, D)`` (eval mode, no gradient)."""
    outs = []
    with eval_mode(model), torch.inference_mode():
        for start in range(0, tokens.shape[0], batch_size):
            outs.append(model.head(tokens[start : start + batch_size].to(device).float()))
    return _collect(outs)


def head_pass_pixels(model: FrozenFeatureClassifier, images: Tensor, batch_size: int,
                     device: torch.device) -> HeadPass:
    """Backbone and head on float pixels ``(N, 3, S, S)`` in [0, 1] (eval mode, no gradient)."""
    outs = []
    with eval_mode(model), torch.inference_mode():
        for start in range(0, images.shape[0], batch_size):
            outs.append(model.explain(images[start : start + batch_size].to(device)))
    return _collect(outs)


def estimators(patch_area_m2: float, mass_fraction: float, peak_ratio: float) -> dict[str, Any]:
    """The compared area estimators, by the names results and reports use."""
    pct = f"{mass_fraction:.0%}"
    return {
        f"attention mass {pct} (count × patch area)": MassThreshold(patch_area_m2=patch_area_m2,
                                                                     fraction=mass_fraction),
        f"attention mass {pct}, calibrated": MassThreshold(patch_area_m2=patch_area_m2, fraction=mass_fraction,
                                                            calibrate=True),
        f"peak count (> {peak_ratio:g} × max)": PeakCount(patch_area_m2=patch_area_m2, ratio=peak_ratio),
        "logit soft count (mean of heads)": LogitSoftCount(head="mean"),
        HEADLINE: LogitSoftCount(head="best"),
    }


def classification(prob: Tensor, labels: Tensor) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of the panel class at threshold 0.5."""
    pred = (prob > 0.5).long()
    tp = int(((pred == 1) & (labels == 1)).sum())
    fp = int(((pred == 1) & (labels == 0)).sum())
    fn = int(((pred == 0) & (labels == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": float((pred == labels).float().mean()), "precision": precision, "recall": recall,
            "f1": f1, "n": int(labels.numel()), "positives": int(labels.sum())}


def token_norms(backbone: Backbone, images: Tensor, device: torch.device) -> dict[str, float]:
    """The L2 norms of the last block's patch tokens *before* the final LayerNorm (which would make
    them all alike) on uint8 ``images`` ``(N, 3, S, S)``: the mean ratio of a tile's largest to its
    median norm, and the share of patches above twice their tile's median — the high-norm "artifact"
    tokens that register tokens absorb."""
    captured: list[Tensor] = []
    handle = backbone.vit.norm.register_forward_hook(lambda _m, args, _out: captured.append(args[0].detach()))
    try:
        extract_features(backbone, images, 64, device)
    finally:
        handle.remove()
    norms = torch.cat(captured)[:, backbone.layout.prefix :].float().norm(dim=-1).cpu()
    median = norms.median(dim=1, keepdim=True).values.clamp_min(1e-12)
    return {"max_over_median": float((norms.max(dim=1).values / median.squeeze(1)).mean()),
            "high_norm_fraction": float((norms > 2 * median).float().mean()),
            "mean_norm": float(norms.mean()), "tiles": int(len(images))}


def tile_dataset(tiles: Tiles) -> TensorImageDataset:
    """The tiles as an image dataset in [0, 1] with labels (what the attack engine evaluates)."""
    size = int(tiles.images.shape[-1])
    info = DatasetInfo(name="tiles", num_classes=2, channels=3, image_size=(size, size), mean=(0.5,) * 3,
                       std=(0.25,) * 3, train_size=0, test_size=len(tiles), description="aerial tiles",
                       class_names=("no panels", "panels"))
    return TensorImageDataset(tiles.images, tiles.labels, info)


def area_under_attack(model: FrozenFeatureClassifier, tiles: Tiles, estimator: Any, baseline: float,
                      cfg: FrozenConfig, device: torch.device) -> list[dict[str, Any]]:
    """PGD (``steps`` steps, step eps/4) against the panel decision of the positive ``tiles``, per
    eps: accuracy on them and the headline area estimate's error (m²) on the perturbed tiles,
    beside eps 0 (the clean tiles)."""
    from robustlab.attacks import build_attack

    e = cfg.evaluate
    x = tiles.images.float() / 255
    y = tiles.labels
    rows = []
    for eps in [0.0, *e.eps]:
        if eps == 0:
            xa = x
        else:
            attack = build_attack("pgd", eps=eps, norm="linf", steps=e.steps, alpha=eps / 4)
            with eval_mode(model):
                xa = torch.cat([attack(model, x[i : i + 64].to(device), y[i : i + 64].to(device)).cpu()
                                for i in range(0, len(x), 64)])
        res = head_pass_pixels(model, xa, cfg.data.eval_batch_size, device)
        score = score_areas(estimator.predict(res.scores), tiles.areas, baseline)
        rows.append({"eps": eps, "eps_255": round(eps * 255, 2), "accuracy": float((res.prediction == y).float()
                                                                                      .mean()),
                     "mae_m2": score["mae_m2"], "spearman": score["spearman"], "pearson": score["pearson"],
                     "n": int(len(y))})
    return rows


def audit(run: RunDir, model: FrozenFeatureClassifier, cfg: FrozenConfig, data: TileData,
          device: torch.device) -> dict[str, Any]:
    """Every measurement of the audit, as the ``frozen`` results section (plus the attack engine's
    robustness sections at the top level)."""
    train, test = data.splits["train"], data.splits["test"]
    batch = cfg.data.eval_batch_size
    tokens = {}
    for name, tiles in (("train", train), ("test", test)):
        tokens[name], _, _ = cached_features(model.backbone, tiles.images, cache_dir(cfg), batch, device)
    test_pass = head_pass_tokens(model, tokens["test"], batch, device)
    out: dict[str, Any] = {"backbone": backbone_name(cfg), "data": data.source, "gsd_m": data.gsd,
                           "patch_area_m2": data.patch_area_m2, "tile_px": cfg.data.size,
                           "registers": model.backbone.layout.registers,
                           "attend_registers": cfg.model.attend_registers,
                           "classification": classification(test_pass.probability, test.labels),
                           "token_norms": token_norms(model.backbone, test.images[:128], device)}

    # area: calibrated on the first positive training tiles, scored on every positive test tile
    pos_train = torch.nonzero(train.labels == 1).squeeze(1)[: cfg.data.calibration_tiles]
    pos_test = torch.nonzero(test.labels == 1).squeeze(1)
    if len(pos_train) >= 4 and len(pos_test) >= 2:
        calib = head_pass_tokens(model, tokens["train"][pos_train], batch, device)
        ests = estimators(data.patch_area_m2, cfg.evaluate.mass_fraction, cfg.evaluate.peak_ratio)
        test_scores = AttentionScores(test_pass.scores.attn[pos_test], test_pass.scores.logits[pos_test])
        table = compare_estimators(ests, calib.scores, train.areas[pos_train], test_scores, test.areas[pos_test],
                                   patch_mask(test.masks[pos_test], PATCH))
        best = ests[HEADLINE]
        out["area"] = {"calibration_tiles": int(len(pos_train)), "test_positives": int(len(pos_test)),
                       "true_mean_m2": float(test.areas[pos_test].mean()),
                       "calibration_mean_m2": float(train.areas[pos_train].mean()), "estimators": table,
                       "headline": HEADLINE, "headline_fit": {"head": best.head_, "tau": best.tau_,
                                                               "temperature": best.temperature_, "a": best.a_,
                                                               "b": best.b_}}
        predictions = {"true_m2": test.areas[pos_test].tolist(),
                       "headline_m2": best.predict(test_scores).tolist(),
                       "mass_m2": next(iter(ests.values())).predict(test_scores).tolist()}
        out["area"]["predictions"] = predictions
        if cfg.evaluate.eps:
            subset = pos_test[: cfg.evaluate.n_samples]
            out["area_under_attack"] = area_under_attack(model, test.subset(subset), best,
                                                         float(train.areas[pos_train].mean()), cfg, device)
    sections: dict[str, Any] = {"frozen": out}
    if cfg.evaluate.eps:
        n = min(cfg.evaluate.n_samples, len(test))
        ecfg = EvalConfig(attacks=list(cfg.evaluate.attacks), eps=list(cfg.evaluate.eps), steps=cfg.evaluate.steps,
                          n_samples=n, sanity_samples=min(64, n), n_examples=0)
        result = evaluate_robustness(model, tile_dataset(test), ecfg, device=device, batch_size=min(batch, 64),
                                     seed=cfg.seed, state_path=run.path / "checkpoints" / "eval_state.pt")
        sections.update(result.to_json())
    return sections


def attention_maps(model: FrozenFeatureClassifier, tiles: Tiles, device: torch.device) -> np.ndarray:
    """``(N, g, g)`` mean-over-heads patch attention of ``tiles`` (for figures)."""
    res = head_pass_pixels(model, tiles.images.float() / 255, 64, device)
    grid = model.backbone.layout.grid
    return res.scores.attn.mean(1).reshape(-1, grid, grid).numpy()
