"""VQ-VAE (van den Oord et al. 2017): conv encoder, a codebook of K vectors of dimension D, conv decoder.

The encoder keeps the spatial layout (no flattening): ``z_e`` is ``(B, D, h, w)``; every one of its
``h*w`` vectors is replaced by its nearest codebook vector ``e_k`` (squared Euclidean distance), and
the decoder sees ``z_q = z_e + sg(e_k - z_e)``: the value of ``e_k`` with the gradient of ``z_e``
(straight-through estimator). Loss terms (means over elements)::

    codebook   = ||sg(z_e) - e||^2      (absent with EMA codebook updates)
    commitment = ||z_e - sg(e)||^2      (weighted by beta, 0.25 by default)

With ``ema=True`` the codebook follows exponential moving averages of the encoder outputs assigned to
each code (decay 0.99, Laplace-smoothed counts) instead of the codebook loss. With ``restart_dead`` a
code unused for ``restart_after`` training batches is moved onto a random encoder output of the batch.

The model keeps a snapshot of its codebook (and a few encoder outputs) whenever it leaves training
mode after some training steps (the trainer's validation at the end of every epoch) plus one at
construction: :attr:`VQVAE.history`, held in buffers of its state dict, is what the codebook GIF
animates (so it needs ``val_fraction > 0`` for one frame per epoch).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.core.errors import RobustlabError


@dataclass
class VQOutput:
    """What :meth:`VQVAE.forward` returns for ``B`` images ``C×H×W``.

    ``logits``: ``(B, C, H, W)`` decoder output (``sigmoid`` → image in [0, 1]); ``z_e``: ``(B, D, h, w)``
    encoder output; ``z_q``: the straight-through quantised latents (values of the codes); ``indices``:
    ``(B, h, w)`` int64 code of every position; ``codebook_loss`` and ``commit_loss``: scalars.
    """

    logits: torch.Tensor
    z_e: torch.Tensor
    z_q: torch.Tensor
    indices: torch.Tensor
    codebook_loss: torch.Tensor
    commit_loss: torch.Tensor


def code_counts(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """How many positions chose each code: any-shape int64 ``indices`` → float ``(num_codes,)``."""
    return torch.bincount(indices.reshape(-1), minlength=num_codes).float()


def usage_stats(counts: torch.Tensor) -> tuple[int, float]:
    """``(used codes, perplexity)`` of code counts ``(K,)``.

    Perplexity is ``exp(H(p))`` with ``p = counts / counts.sum()`` and ``0 log 0 = 0``: 1 when a single
    code is used, ``K`` when all codes are used equally often. ``(0, 0.0)`` for no counts at all.
    """
    counts = counts.double()
    total = counts.sum()
    if total <= 0:
        return 0, 0.0
    p = counts / total
    nz = p[p > 0]
    return int((counts > 0).sum()), float(torch.exp(-(nz * nz.log()).sum()))


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantisation of ``(B, D, h, w)`` latents onto ``K`` codes of dimension ``D``.

    The codebook ``embedding`` ``(K, D)`` is initialised uniformly in ``[-1/K, 1/K]``; it is a trained
    parameter, or with ``ema=True`` a parameter without gradient updated from moving averages.
    """

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        beta: float = 0.25,
        ema: bool = False,
        decay: float = 0.99,
        eps: float = 1e-5,
        restart_dead: bool = False,
        restart_after: int = 20,
    ) -> None:
        super().__init__()
        self.num_codes, self.code_dim = int(num_codes), int(code_dim)
        self.beta, self.ema, self.decay, self.eps = float(beta), bool(ema), float(decay), float(eps)
        self.restart_dead, self.restart_after = bool(restart_dead), int(restart_after)
        init = torch.empty(num_codes, code_dim).uniform_(-1.0 / num_codes, 1.0 / num_codes)
        self.embedding = nn.Parameter(init, requires_grad=not ema)
        if ema:
            self.register_buffer("ema_count", torch.ones(num_codes))
            self.register_buffer("ema_weight", init.clone())
        self.register_buffer("unused_steps", torch.zeros(num_codes, dtype=torch.long))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code for each row of ``flat`` ``(N, D)``: int64 ``(N,)`` (ties → lowest)."""
        e = self.embedding.float()
        flat = flat.float()
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None, :]
        return d.argmin(dim=1)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(z_q straight-through (B, D, h, w), indices (B, h, w), codebook_loss, commit_loss)``.

        In training mode this also updates the EMA codebook, restarts dead codes and counts a step.
        """
        b, d, h, w = z_e.shape
        if d != self.code_dim:
            raise RobustlabError(f"quantizer expects {self.code_dim}-dimensional latents, got {d}")
        z = z_e.float()
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)
        idx = self.nearest(flat)
        if self.training:
            self._update(flat.detach(), idx)
        q = self.embedding.float()[idx].view(b, h, w, d).permute(0, 3, 1, 2)
        commit = F.mse_loss(z, q.detach())
        codebook = z.new_zeros(()) if self.ema else F.mse_loss(q, z.detach())
        z_q = z + (q - z).detach()
        return z_q.to(z_e.dtype), idx.view(b, h, w), codebook, commit

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        self.steps += 1
        counts = code_counts(idx, self.num_codes)
        if self.ema:
            onehot_sum = torch.zeros_like(self.ema_weight).index_add_(0, idx, flat)
            self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.ema_weight.mul_(self.decay).add_(onehot_sum, alpha=1 - self.decay)
            n = self.ema_count.sum()
            smoothed = (self.ema_count + self.eps) / (n + self.num_codes * self.eps) * n
            self.embedding.data.copy_(self.ema_weight / smoothed[:, None])
        self.unused_steps.add_(1).masked_fill_(counts > 0, 0)
        if self.restart_dead:
            dead = (self.unused_steps >= self.restart_after).nonzero().flatten()
            if dead.numel():
                pick = torch.randint(0, flat.shape[0], (dead.numel(),), device=flat.device)
                new = flat[pick] + 1e-3 * torch.randn(dead.numel(), self.code_dim, device=flat.device)
                self.embedding.data[dead] = new.to(self.embedding.dtype)
                if self.ema:
                    self.ema_count[dead] = 1.0
                    self.ema_weight[dead] = new
                self.unused_steps[dead] = 0


def _conv_encoder(in_ch: int, channels: Sequence[int], code_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    c = in_ch
    for width in channels:
        layers += [nn.Conv2d(c, width, 4, stride=2, padding=1), nn.ReLU()]
        c = width
    layers += [nn.Conv2d(c, c, 3, padding=1), nn.ReLU(), nn.Conv2d(c, code_dim, 1)]
    return nn.Sequential(*layers)


def _conv_decoder(out_ch: int, channels: Sequence[int], code_dim: int) -> nn.Sequential:
    rev = list(reversed(channels))
    layers: list[nn.Module] = [nn.Conv2d(code_dim, rev[0], 3, padding=1), nn.ReLU()]
    for a, b in zip(rev, rev[1:], strict=False):
        layers += [nn.ConvTranspose2d(a, b, 4, stride=2, padding=1), nn.ReLU()]
    layers += [nn.ConvTranspose2d(rev[-1], out_ch, 4, stride=2, padding=1)]
    return nn.Sequential(*layers)


class VQVAE(nn.Module):
    """Conv encoder → :class:`VectorQuantizer` → conv decoder, for images ``(B, C, H, W)`` in [0, 1].

    Each entry of ``channels`` is a stride-2 conv (4×4) layer, so latents are ``H / 2**len(channels)``
    on a side (28 → 7 with two layers); the decoder mirrors it with transposed convs and returns logits
    of the input's size.

    Codebook history: up to ``max_snapshots`` snapshots (step, codebook, ``snapshot_points`` encoder
    outputs of the latest training batch) kept in fixed-size buffers, so they travel in the ordinary
    state dict (tensors only). When the buffers are full the last slot is overwritten, so the newest
    codebook is always kept.
    """

    arch = "conv_vqvae"

    def __init__(
        self,
        image_shape: Sequence[int],
        channels: Sequence[int] = (32, 64),
        codebook_size: int = 3,
        code_dim: int = 2,
        beta: float = 0.25,
        ema: bool = False,
        decay: float = 0.99,
        restart_dead: bool = False,
        restart_after: int = 20,
        snapshot_points: int = 256,
        max_snapshots: int = 64,
    ) -> None:
        super().__init__()
        c, h, w = (int(s) for s in image_shape)
        if min(h, w) < 2 ** len(channels):
            raise RobustlabError(
                f"images of {h}x{w} are too small for {len(channels)} stride-2 layers; use fewer model.options.channels"
            )
        self.image_shape = (c, h, w)
        self.num_classes = 0
        self.encoder = _conv_encoder(c, channels, code_dim)
        self.quantizer = VectorQuantizer(codebook_size, code_dim, beta, ema, decay,
                                         restart_dead=restart_dead, restart_after=restart_after)
        self.decoder = _conv_decoder(c, channels, code_dim)
        self.snapshot_points = int(snapshot_points)
        m = max(2, int(max_snapshots))
        self.register_buffer("hist_len", torch.zeros((), dtype=torch.long))
        self.register_buffer("hist_steps", torch.zeros(m, dtype=torch.long))
        self.register_buffer("hist_codebooks", torch.zeros(m, codebook_size, code_dim))
        self.register_buffer("hist_points", torch.zeros(m, self.snapshot_points, code_dim))
        self.register_buffer("hist_npoints", torch.zeros(m, dtype=torch.long))
        self._last_points: torch.Tensor | None = None
        self._snapshot()

    # -- the model ----------------------------------------------------------------------------------
    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C, H, W)`` from quantised latents ``(B, D, h, w)``."""
        out = self.decoder(z_q)
        if out.shape[-2:] != self.image_shape[1:]:
            out = F.interpolate(out, size=self.image_shape[1:], mode="bilinear", align_corners=False)
        return out

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, C, H, W)`` decoded from a map of codes ``(B, h, w)`` int64."""
        q = self.quantizer.embedding[indices].permute(0, 3, 1, 2)
        return self.decode(q)

    def forward(self, x: torch.Tensor) -> VQOutput:
        z_e = self.encoder(x)
        if self.training and self.snapshot_points:
            flat = z_e.detach().float().permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])
            stride = max(1, flat.shape[0] // self.snapshot_points)
            self._last_points = flat[::stride][: self.snapshot_points]
            if int(self.quantizer.steps) == 0 and int(self.hist_len) == 1 and int(self.hist_npoints[0]) == 0:
                self._store_points(0, self._last_points)  # the frame before any update
        z_q, idx, codebook, commit = self.quantizer(z_e)
        return VQOutput(self.decode(z_q), z_e, z_q, idx, codebook, commit)

    # -- codebook history -------------------------------------------------------------------------
    @torch.no_grad()
    def _store_points(self, slot: int, points: torch.Tensor | None) -> None:
        n = 0 if points is None else min(points.shape[0], self.snapshot_points)
        if n:
            self.hist_points[slot, :n] = points[:n].to(self.hist_points)
        self.hist_npoints[slot] = n

    @torch.no_grad()
    def _snapshot(self) -> None:
        slot = min(int(self.hist_len), self.hist_steps.shape[0] - 1)
        self.hist_steps[slot] = self.quantizer.steps
        self.hist_codebooks[slot] = self.quantizer.embedding.detach().to(self.hist_codebooks)
        self._store_points(slot, self._last_points)
        self.hist_len.fill_(slot + 1)

    def train(self, mode: bool = True) -> VQVAE:
        """Switch modes; leaving training after new optimisation steps records a codebook snapshot."""
        if not mode and self.training and int(self.hist_len) > 0:
            last = int(self.hist_steps[int(self.hist_len) - 1])
            if int(self.quantizer.steps) > last:
                self._snapshot()
        return super().train(mode)

    @property
    def history(self) -> list[dict[str, torch.Tensor]]:
        """Codebook snapshots, oldest first: ``{"step": training steps so far (int64 scalar), "codebook":
        (K, D), "points": (<= snapshot_points, D) encoder outputs of the latest training batch}``, on CPU."""
        return history_from_state({k: v for k, v in self.state_dict().items() if k.startswith("hist_")})


def history_from_state(state: dict[str, torch.Tensor], prefix: str = "") -> list[dict[str, torch.Tensor]]:
    """The codebook history held in a :class:`VQVAE` state dict (keys ``{prefix}hist_*``)."""
    n = int(state[f"{prefix}hist_len"])
    steps, books = state[f"{prefix}hist_steps"], state[f"{prefix}hist_codebooks"]
    points, npoints = state[f"{prefix}hist_points"], state[f"{prefix}hist_npoints"]
    return [
        {"step": steps[i].cpu().clone(), "codebook": books[i].float().cpu().clone(),
         "points": points[i, : int(npoints[i])].float().cpu().clone()}
        for i in range(n)
    ]
