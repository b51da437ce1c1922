"""Measurements behind the sanity flags, made on a small sample ``S`` (the first images evaluated).

Everything here is independent of early exit, so the flags are the same with and without it:

- ``standalone``: every attack alone, at every eps, on all of ``S`` (clean-misclassified points
  included): ``accuracy`` (correct clean and attacked) and ``raw_accuracy`` (correct attacked,
  whatever the clean prediction — what naive evaluations report, and where label leaking shows);
- ``large_eps``: PGD at a budget that must fool everything (L∞ 0.5, L2 ``0.5·sqrt(d)``);
- ``gradients``: fraction of points whose input gradient of the logit margin is all zero;
- ``randomness``: two eval-mode forward passes compared;
- ``blackbox``: Square at the largest eps on the points every white-box attack (and a reference
  PGD) failed on.

The JSON layout is documented in :func:`sanity_measurements`; :mod:`robustlab.evaluation.flags`
turns it into flags.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from robustlab.attacks.norms import geometry
from robustlab.core.names import normalize
from robustlab.core.precision import autocast_context
from robustlab.evaluation.config import EvalConfig
from robustlab.evaluation.metrics import derive_seed
from robustlab.evaluation.runner import (
    AttackFactory,
    AttackPlan,
    default_factory,
    probe_attack,
    run_attack,
)
from robustlab.models.inference import predict

LARGE_EPS_LINF = 0.5
"""L∞ budget of the large-eps check: every image can be turned mid-gray."""

SANITY_PGD_STEPS = 20
"""At least this many PGD steps for the sanity reference runs."""

BLACKBOX_MIN_ROBUST = 0.1
"""The black-box check uses the largest eps where at least this fraction of the sample is white-box robust."""

SQUARE_SANITY_QUERIES = 1000
"""Query budget of the black-box check, when the Square attack takes one (``queries`` or ``steps``)."""


def large_eps(norm: str, shape: tuple[int, ...]) -> float:
    """The sanity budget: 0.5 for L∞; ``0.5·sqrt(d)`` for L2 (contains the whole L∞ 0.5 ball)."""
    return LARGE_EPS_LINF if norm == "linf" else LARGE_EPS_LINF * math.sqrt(math.prod(shape))


def gradient_zero_fraction(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """Fraction of rows of ``x`` ``(n, C, H, W)`` whose input gradient of the logit margin
    ``max_{j≠y} z_j − z_y`` is exactly zero or not finite (float32, no autocast).

    The margin, unlike cross-entropy, does not saturate on confident points, so a zero gradient
    means the forward pass blocks gradients (rounding, quantisation, ``sign``…).
    """
    if x.shape[0] == 0:
        return 0.0
    with torch.enable_grad():
        xg = x.detach().float().clone().requires_grad_(True)
        z = model(xg.to(x.dtype)).float()
        if z.shape[1] < 2:
            return 0.0
        zy = z.gather(1, y[:, None]).squeeze(1)
        other = z.scatter(1, y[:, None], float("-inf")).amax(dim=1)
        (g,) = torch.autograd.grad((other - zy).sum(), xg, allow_unused=True)
    if g is None:
        return 1.0
    g = g.flatten(1)
    dead = (~torch.isfinite(g).all(dim=1)) | (g.abs().amax(dim=1) == 0)
    return float(dead.double().mean())


@torch.no_grad()
def randomness(model: nn.Module, x: Tensor, amp: str) -> dict[str, Any]:
    """Two forward passes on ``x``: ``{n, max_rel_diff, disagreement}`` (logit difference relative to
    the largest logit magnitude; fraction of changed predictions)."""
    with autocast_context(x.device, amp):
        a, b = model(x).float(), model(x).float()
    scale = float(a.abs().max()) if a.numel() else 0.0
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    return {
        "n": int(x.shape[0]),
        "max_rel_diff": diff / max(scale, 1e-12),
        "disagreement": float((a.argmax(1) != b.argmax(1)).double().mean()) if a.numel() else 0.0,
    }


def _extra_plan(name: str, cfg: EvalConfig, plans: list[AttackPlan], factory: AttackFactory) -> AttackPlan:
    """The plan of ``name`` from the evaluation, or a new one with the evaluation's settings."""
    for p in plans:
        if p.name == name:
            return p
    user = {normalize(k): v for k, v in cfg.attack_params.items()}.get(name, {})
    accepted, fixed = probe_attack(factory, name, user)
    return AttackPlan(
        name=name, factory=factory, accepted=accepted, fixed_norm=fixed, user_params=dict(user),
        norm=cfg.norm, steps=max(cfg.steps, SANITY_PGD_STEPS), alpha_ratio=cfg.alpha_ratio,
        restarts=cfg.restarts,
    )


def _run(plan: AttackPlan, model: nn.Module, x: Tensor, y: Tensor, eps: float | None, seed: int, amp: str,
         rows: Tensor | None = None, extra: dict[str, Any] | None = None) -> tuple[Tensor, Tensor]:
    """``(x_adv, pred)`` of ``plan`` alone on ``x`` (only ``rows`` attacked when given)."""
    if plan.needs_fit:
        attack = plan.build(eps, seed, early_exit=False)
    else:
        params = plan.params(eps, seed, early_exit=False)
        params.update(extra or {})
        attack = plan.factory(plan.name, **params)
    active = torch.ones_like(y, dtype=torch.bool) if rows is None else rows
    with autocast_context(x.device, amp):
        x_adv = run_attack(attack, model, x, y, active)
    return x_adv, predict(model, x_adv, amp)


def _square_extra(plan: AttackPlan) -> dict[str, Any]:
    if plan.user_params:
        return {}
    for key in ("queries", "n_queries", "steps"):
        if key in plan.accepted:
            return {key: SQUARE_SANITY_QUERIES}
    return {}


def sanity_measurements(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    plans: list[AttackPlan],
    eps: list[float],
    cfg: EvalConfig,
    amp: str,
    seed: int,
    factory: AttackFactory | None = None,
) -> dict[str, Any]:
    """Measure the sample ``x`` ``(n, C, H, W)``, ``y`` ``(n,)`` (on the model's device) for the flags.

    Returns (JSON-ready)::

        {"samples": n, "clean_accuracy": a,
         "standalone": [{"attack", "norm", "eps", "accuracy", "raw_accuracy"}, ...],
         "large_eps": {"attack": "pgd", "norm", "eps", "n", "accuracy"},
         "gradients": {"n", "zero_fraction"},
         "randomness": {"n", "max_rel_diff", "disagreement"},
         "blackbox": {"attack": "square", "norm", "eps", "whitebox": [...], "whitebox_robust", "fooled"}
                     or None}
    """
    factory = factory or default_factory()
    n = int(y.shape[0])
    norm = cfg.norm
    clean_pred = predict(model, x, amp)
    correct = clean_pred == y
    out: dict[str, Any] = {"samples": n, "clean_accuracy": float(correct.double().mean())}
    out["randomness"] = randomness(model, x, amp)
    out["gradients"] = {"n": n, "zero_fraction": gradient_zero_fraction(model, x, y)}

    standalone = []
    fooled: dict[tuple[str, float], Tensor] = {}  # (attack, eps) -> fooled alone, among clean-correct

    for k, plan in enumerate(plans):
        if plan.minimal:
            x_adv, pred = _run(plan, model, x, y, None, derive_seed(seed, "sanity", k), amp)
            nrm = geometry(norm).norms((x_adv - x).float())
            found = pred != y
        for m, e in enumerate(eps):
            if e == 0:
                continue
            if plan.minimal:
                adv_ok = torch.where(found & (nrm <= e), torch.zeros_like(correct), correct)
            else:
                _, pred = _run(plan, model, x, y, e, derive_seed(seed, "sanity", k, m), amp)
                adv_ok = pred == y
            standalone.append({
                "attack": plan.name, "norm": norm, "eps": e,
                "accuracy": float((correct & adv_ok).double().mean()),
                "raw_accuracy": float(adv_ok.double().mean()),
            })
            fooled[plan.name, e] = correct & ~adv_ok
    out["standalone"] = standalone

    pgd = _extra_plan("pgd", cfg, plans, factory)
    big = large_eps(norm, tuple(x.shape[1:]))
    _, pred = _run(pgd, model, x, y, big, derive_seed(seed, "sanity", "large"), amp)
    out["large_eps"] = {"attack": "pgd", "norm": norm, "eps": big, "n": n,
                        "accuracy": float((correct & (pred == y)).double().mean())}
    out["blackbox"] = _blackbox(model, x, y, correct, plans, eps, fooled, cfg, factory, amp, seed)
    return out


def _blackbox(
    model: nn.Module, x: Tensor, y: Tensor, correct: Tensor, plans: list[AttackPlan], eps: list[float],
    fooled: dict[tuple[str, float], Tensor], cfg: EvalConfig, factory: AttackFactory, amp: str, seed: int,
) -> dict[str, Any] | None:
    """Square on the sampled points that every white-box attack failed on, at the largest eps where
    at least :data:`BLACKBOX_MIN_ROBUST` of the sample is white-box robust (else the smallest eps)."""
    positive = [e for e in eps if e > 0]
    if not positive:
        return None
    whitebox = [p.name for p in plans if p.whitebox]
    square = _extra_plan("square", cfg, plans, factory)
    if square.native_norm() != cfg.norm:  # Square is an L∞ attack
        return None

    def wb_robust(e: float) -> Tensor:
        mask = correct.clone()
        for name in whitebox:
            mask &= ~fooled[name, e]
        return mask

    n = int(y.shape[0])
    chosen = next((e for e in reversed(positive) if int(wb_robust(e).sum()) >= BLACKBOX_MIN_ROBUST * n),
                  positive[0])
    pgd = _extra_plan("pgd", cfg, plans, factory)
    if "pgd" not in whitebox:
        _, pred = _run(pgd, model, x, y, chosen, derive_seed(seed, "sanity", "reference"), amp)
        fooled["pgd", chosen] = correct & (pred != y)
        whitebox.append("pgd")
    robust = wb_robust(chosen)
    n_robust = int(robust.sum())
    hits = 0
    if n_robust:
        if ("square", chosen) in fooled:
            hits = int((fooled["square", chosen] & robust).sum())
        else:
            _, pred = _run(square, model, x, y, chosen, derive_seed(seed, "sanity", "square"), amp,
                           rows=robust, extra=_square_extra(square))
            hits = int((robust & (pred != y)).sum())
    return {"attack": "square", "norm": cfg.norm, "eps": chosen, "whitebox": whitebox,
            "whitebox_robust": n_robust, "fooled": hits}
