"""What the generative models contribute to the shared trainer: batch unpacking, loss, metrics.

Both tasks take ordinary ``(x, y)`` image batches (pixels in [0, 1]); with ``colour=True`` the images
are coloured on the fly (:mod:`robustlab.labs.generative.colour`). All metrics are summed per batch and
divided by the number of images (or positions) in :meth:`summarize`, so they are exact epoch means.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.labs.generative.colour import colourize
from robustlab.labs.generative.vae import kl_divergence, reconstruction_loss
from robustlab.labs.generative.vqvae import code_counts, usage_stats
from robustlab.training.task import StepOutput

_CODE = "code_"  # prefix of the per-code assignment counts in the summed metrics


class _ImageTask:
    monitor = "loss"
    higher_is_better = False

    def __init__(self, colour: bool = False, colour_seed: int = 0) -> None:
        self.colour = colour
        self.colour_seed = colour_seed

    def unpack(self, batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x (B, C, H, W) in [0, 1] — coloured to 3 channels when asked —, y (B,))`` on ``device``."""
        x, y = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        if self.colour:
            x = colourize(x, self.colour_seed)
        return x, y


class VAETask(_ImageTask):
    """(C)VAE training: loss per image ``recon + beta * KL`` (nats), averaged over the batch.

    Metrics: ``loss``; ``recon`` (per image, summed over pixels); ``kl`` (per image); and with
    ``recon="bce"`` also ``nelbo``, the negative ELBO ``recon + KL`` in nats per image (independent of
    ``beta``). Note: in eval mode the model decodes ``z = mu``, so validation ``recon`` is that of the
    posterior mean, and ``nelbo`` a one-point (deterministic) estimate.
    """

    def __init__(
        self, conditional: bool, num_classes: int, recon: str = "bce", beta: float = 1.0,
        colour: bool = False, colour_seed: int = 0,
    ) -> None:
        super().__init__(colour, colour_seed)
        self.name = "cvae" if conditional else "vae"
        self.conditional = conditional
        self.num_classes = num_classes
        self.recon = recon
        self.beta = beta

    def forward(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        out = model(inputs, targets if self.conditional else None)
        rec = reconstruction_loss(out.logits, inputs, self.recon)
        kl = kl_divergence(out.mu, out.logvar)
        loss = (rec + self.beta * kl).mean()
        extras = {"recon": rec.mean().detach(), "kl": kl.mean().detach()}
        if self.recon == "bce":
            extras["nelbo"] = (rec + kl).mean().detach()
        return StepOutput(loss, out, targets, extras)

    def batch_metrics(self, out: StepOutput) -> dict[str, torch.Tensor]:
        n = float(out.targets.shape[0])
        sums = {"loss": out.loss.detach().float() * n, "count": torch.tensor(n, device=out.loss.device)}
        sums.update({k: v.float() * n for k, v in out.extras.items()})
        return sums

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums.get("count", 0.0), 1.0)
        return {k: v / n for k, v in sums.items() if k != "count"}


class VQVAETask(_ImageTask):
    """VQ-VAE training: ``loss = recon + codebook + beta * commitment`` (each a mean over elements).

    ``recon`` is the per-pixel mean squared error of ``sigmoid(logits)`` (``recon="mse"``) or the
    per-pixel binary cross-entropy (``"bce"``). Metrics: ``loss``, ``recon``, ``recon_mse`` (per-pixel
    MSE in [0, 1] pixel units, whatever ``recon`` is), ``codebook``, ``commit``, and over the whole
    epoch ``used_codes`` (codes chosen at least once) and ``perplexity`` (exp of the entropy of code use).
    """

    name = "vqvae"

    def __init__(self, num_codes: int, beta: float = 0.25, recon: str = "mse",
                 colour: bool = False, colour_seed: int = 0) -> None:
        super().__init__(colour, colour_seed)
        self.num_codes = num_codes
        self.beta = beta
        self.recon = recon

    def forward(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> StepOutput:
        out = model(inputs)
        x = inputs.float()
        mse = F.mse_loss(torch.sigmoid(out.logits.float()), x)
        rec = mse if self.recon == "mse" else F.binary_cross_entropy_with_logits(out.logits.float(), x)
        loss = rec + out.codebook_loss + self.beta * out.commit_loss
        extras = {"recon": rec.detach(), "recon_mse": mse.detach(), "codebook": out.codebook_loss.detach(),
                  "commit": out.commit_loss.detach()}
        return StepOutput(loss, out, targets, extras)

    def batch_metrics(self, out: StepOutput) -> dict[str, torch.Tensor]:
        n = float(out.targets.shape[0])
        sums = {"loss": out.loss.detach().float() * n, "count": torch.tensor(n, device=out.loss.device)}
        sums.update({k: v.float() * n for k, v in out.extras.items()})
        counts = code_counts(out.outputs.indices.detach(), self.num_codes)
        sums.update({f"{_CODE}{k}": c for k, c in enumerate(counts.unbind())})
        return sums

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums.get("count", 0.0), 1.0)
        res = {k: v / n for k, v in sums.items() if k != "count" and not k.startswith(_CODE)}
        counts = torch.tensor([sums.get(f"{_CODE}{k}", 0.0) for k in range(self.num_codes)])
        used, perplexity = usage_stats(counts)
        res["perplexity"] = perplexity
        res["used_codes"] = float(used)
        return res
