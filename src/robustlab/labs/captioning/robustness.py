"""Attacks on a captioner's pixels, in the attack engine's threat model (L∞/L2 balls of the
:mod:`robustlab.attacks.norms` geometries, the pixel box [0, 1], seeded random starts).

The objective is the teacher-forced caption loss: untargeted attacks *raise* the token-mean
negative log-likelihood of the clean caption (the model's own greedy caption, so the attack
measures how easily the model changes its mind); the targeted keyword attack *lowers* that of a
target caption — the clean one with one word (an object's colour) replaced.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustlab.attacks.base import make_generator
from robustlab.attacks.norms import geometry
from robustlab.core.modes import eval_mode
from robustlab.labs.captioning.text import PAD


class CaptionObjective(nn.Module):
    """Pixels ``(B, 3, S, S)`` in [0, 1] → per-image token-mean NLL ``(B,)`` of ``captions`` ``(B, L)``
    (``<sos>`` first, ``lengths`` counting ``<sos>``/``<eos>``) under the captioner, teacher-forced.
    The captioner must expose ``annotations(pixels)`` and ``decoder``."""

    def __init__(self, captioner: nn.Module, captions: Tensor, lengths: Tensor) -> None:
        super().__init__()
        self.captioner, self.captions, self.lengths = captioner, captions, lengths

    def forward(self, pixels: Tensor) -> Tensor:
        logits, _ = self.captioner.decoder(self.captioner.annotations(pixels), self.captions, self.lengths)
        words = self.captions[:, 1 : logits.shape[1] + 1]
        nll = F.cross_entropy(logits.float().transpose(1, 2), words, reduction="none", ignore_index=PAD)
        return nll.sum(1) / (words != PAD).sum(1).clamp_min(1)


def caption_attack(captioner: nn.Module, pixels: Tensor, captions: Tensor, lengths: Tensor, eps: float,
                   kind: Literal["fgsm", "pgd"] = "pgd", steps: int = 10, norm: str = "linf",
                   targeted: bool = False, seed: int = 0) -> Tensor:
    """Adversarial pixels ``(B, 3, S, S)`` within ``eps`` of ``pixels`` (in [0, 1]) that raise
    (untargeted) or lower (``targeted``) :class:`CaptionObjective` of ``captions``.

    ``fgsm``: one step of size ``eps`` from the clean image. ``pgd``: a random start in the ball and
    ``steps`` steps of ``2.5·eps/steps`` (Madry et al.), each projected onto the ball and the box;
    the last iterate is returned. The captioner is run in eval mode (its flags restored) and its
    parameters receive no gradient."""
    geom = geometry(norm)
    x = pixels.detach().float()
    if eps <= 0:
        return x.clone()
    objective = CaptionObjective(captioner, captions, lengths)
    sign = -1.0 if targeted else 1.0
    lo, hi = geom.bounds(x, eps)
    gen = make_generator(seed, x.device)
    if kind == "pgd":
        delta = geom.random_start(x, eps, gen)
        alpha, n = 2.5 * eps / steps, steps
    else:
        delta, alpha, n = torch.zeros_like(x), eps, 1
    geom.feasible(delta, eps, lo, hi)
    params = [p for p in captioner.parameters() if p.requires_grad]
    with eval_mode(captioner):
        for p in params:
            p.requires_grad_(False)
        try:
            for _ in range(n):
                delta.requires_grad_(True)
                loss = objective(x + delta).sum() * sign
                (grad,) = torch.autograd.grad(loss, delta)
                delta = delta.detach() + alpha * geom.direction(grad)
                delta = geom.feasible(geom.project(delta, eps), eps, lo, hi)
        finally:
            for p in params:
                p.requires_grad_(True)
    return (x + delta).clamp_(0.0, 1.0).detach()


def jensen_shannon(p: Tensor, q: Tensor, mask: Tensor) -> float:
    """Mean Jensen–Shannon divergence (nats, 0–ln 2) between attention maps ``p``/``q`` ``(B, T, P)``
    over the steps where ``mask`` ``(B, T)`` is true."""
    eps = 1e-12
    m = 0.5 * (p + q)
    kl = lambda a, b: (a * ((a + eps) / (b + eps)).log()).sum(-1)  # noqa: E731 - local shorthand
    js = 0.5 * kl(p, m) + 0.5 * kl(q, m)
    return float(js[mask].mean()) if mask.any() else 0.0
