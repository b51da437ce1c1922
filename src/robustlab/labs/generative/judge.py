"""Judges of generated images: which class does a sample look like?

Used to score how well CVAE samples follow the label they were drawn for. Two judges, both fitted on
the run's own training images (so they work for any dataset, coloured or not, and for ``--smoke``):
a nearest-class-mean classifier in pixel space and a small MLP classifier trained on the fly.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

Judge = Callable[[torch.Tensor], torch.Tensor]  # images (N, C, H, W) in [0, 1] → predicted labels (N,)


@torch.no_grad()
def nearest_class_mean(x: torch.Tensor, y: torch.Tensor, num_classes: int) -> Judge:
    """The judge that predicts the class whose mean training image (pixel space, Euclidean) is nearest.
    ``x``: ``(N, C, H, W)`` training images; ``y``: ``(N,)`` labels. Absent classes are never predicted."""
    flat = x.flatten(1).double()
    sums = torch.zeros(num_classes, flat.shape[1], dtype=torch.float64, device=x.device).index_add_(0, y, flat)
    counts = torch.bincount(y, minlength=num_classes).double()
    means = (sums / counts.clamp_min(1)[:, None]).float()
    absent = counts == 0

    def judge(images: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(images.flatten(1).float(), means)
        d[:, absent] = float("inf")
        return d.argmin(1)

    return judge


def mlp_judge(x: torch.Tensor, y: torch.Tensor, num_classes: int, seed: int = 0, epochs: int = 4,
              hidden: int = 256, batch_size: int = 128) -> Judge:
    """The judge that predicts with an MLP (pixels → ``hidden`` → classes) trained on ``(x, y)`` with Adam
    (lr 1e-3, ``epochs`` passes, seeded, the global RNG untouched); returned in eval mode, no gradients."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Flatten(), nn.Linear(x[0].numel(), hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    net = net.to(x.device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(x.shape[0], generator=g).to(x.device)
            for i in range(0, x.shape[0], batch_size):
                idx = order[i: i + batch_size]
                loss = F.cross_entropy(net(x[idx].float()), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    net.eval()

    @torch.no_grad()
    def judge(images: torch.Tensor) -> torch.Tensor:
        return net(images.float()).argmax(1)

    return judge
