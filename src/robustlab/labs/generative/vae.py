"""MLP variational autoencoders (Kingma & Welling 2014) and their conditional version (Sohn et al. 2015).

The encoder maps a flattened image (and, for the CVAE, the one-hot label) through ``hidden`` widths to
the mean and log-variance of a diagonal Gaussian ``q(z|x[,y])``; the decoder mirrors it from ``z``
(and the one-hot label) to per-pixel logits. The loss per image is ``recon + beta * KL`` in nats:
with ``recon="bce"`` and ``beta=1`` it is the negative ELBO under a Bernoulli decoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class VAEOutput:
    """What :meth:`MLPVAE.forward` returns for a batch of ``B`` images of shape ``C×H×W``.

    ``logits``: ``(B, C, H, W)`` decoder logits (``sigmoid(logits)`` is the mean image in [0, 1]);
    ``mu``, ``logvar``: ``(B, latent_dim)`` of ``q(z|x)``; ``z``: ``(B, latent_dim)`` the sample used.
    """

    logits: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` in nats, per row: ``(B, d)`` → ``(B,)``.

    Closed form ``-0.5 * sum(1 + logvar - mu^2 - exp(logvar))``, computed in float32.
    """
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)


def reconstruction_loss(logits: torch.Tensor, x: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Reconstruction error per image, summed over pixels: ``(B, ...)`` → ``(B,)``.

    ``bce``: binary cross-entropy of ``sigmoid(logits)`` against ``x`` in [0, 1] (nats; the negative
    Bernoulli log-likelihood); ``mse``: squared error of ``sigmoid(logits)`` against ``x``.
    """
    logits, x = logits.float(), x.float()
    if kind == "bce":
        per = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    elif kind == "mse":
        per = (torch.sigmoid(logits) - x).pow(2)
    else:
        raise ValueError(f"recon must be bce or mse, got {kind!r}")
    return per.flatten(1).sum(dim=1)


def _mlp(sizes: Sequence[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers)


class MLPVAE(nn.Module):
    """A VAE (``num_classes=0``) or CVAE (``num_classes>0``) with MLP encoder and decoder.

    Args:
        image_shape: ``(C, H, W)`` of the images, pixels in [0, 1].
        hidden: widths of the encoder's hidden layers; the decoder uses them reversed.
        latent_dim: dimension of ``z``.
        num_classes: 0 for a plain VAE; the number of labels for a CVAE (encoder and decoder both
            receive the one-hot label).
    """

    arch = "mlp_vae"

    def __init__(
        self, image_shape: Sequence[int], hidden: Sequence[int] = (512, 256), latent_dim: int = 2, num_classes: int = 0
    ) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.latent_dim = int(latent_dim)
        self.num_classes = int(num_classes)
        self.conditional = self.num_classes > 0
        n_pix = 1
        for s in self.image_shape:
            n_pix *= s
        hidden = [int(h) for h in hidden]
        self.encoder = _mlp([n_pix + self.num_classes, *hidden])
        self.to_mu = nn.Linear(hidden[-1], self.latent_dim)
        self.to_logvar = nn.Linear(hidden[-1], self.latent_dim)
        self.decoder = nn.Sequential(
            _mlp([self.latent_dim + self.num_classes, *reversed(hidden)]), nn.Linear(hidden[0], n_pix)
        )

    def _label(self, y: torch.Tensor | None, n: int, device: torch.device) -> torch.Tensor | None:
        if not self.conditional:
            return None
        if y is None:
            raise ValueError("a CVAE needs labels y")
        return F.one_hot(y.to(device).long(), self.num_classes).float()

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, each ``(B, latent_dim)``, of ``q(z | x[, y])`` for images ``(B, C, H, W)``."""
        h = x.flatten(1)
        onehot = self._label(y, h.shape[0], h.device)
        if onehot is not None:
            h = torch.cat([h, onehot.to(h.dtype)], dim=1)
        h = self.encoder(h)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(B, C, H, W)`` of ``p(x | z[, y])`` for latents ``(B, latent_dim)``."""
        onehot = self._label(y, z.shape[0], z.device)
        h = z if onehot is None else torch.cat([z, onehot.to(z.dtype)], dim=1)
        return self.decoder(h).view(z.shape[0], *self.image_shape)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> VAEOutput:
        """Encode, sample ``z = mu + exp(logvar/2) * eps`` (reparameterisation; ``z = mu`` in eval
        mode), decode."""
        mu, logvar = self.encode(x, y)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return VAEOutput(self.decode(z, y), mu, logvar, z)

    @torch.no_grad()
    def sample(
        self, n: int, y: torch.Tensor | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` mean images ``(n, C, H, W)`` in [0, 1] decoded from ``z ~ N(0, I)`` (and labels ``y``
        of shape ``(n,)`` for a CVAE)."""
        device = next(self.parameters()).device
        z = torch.randn(n, self.latent_dim, generator=generator).to(device)
        return torch.sigmoid(self.decode(z, y))
