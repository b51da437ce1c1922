"""Judge networks for the diffusion lab: small CNNs trained on real digits, so no download is needed.

* :class:`JudgeCNN` — a two-convolution CNN for ``(N, 1, 8, 8)`` images in ``[0, 1]``; its 64-d
  penultimate layer (:meth:`JudgeCNN.features`) is the feature space of the measures in
  :mod:`robustlab.labs.diffusion.measures` ("FD (judge features)", precision / recall, diversity).
* :func:`train_judge` — the digit judge (which class does a sample look like?), seeded and fast.
* :func:`mirror`, :func:`train_style_detector` — the DreamBooth style detector: is a 3 drawn normally
  (class 0) or horizontally mirrored (class 1)?
* :func:`embed` — features and logits of a batch, without gradients, on the CPU.
* :func:`digits_split`, :func:`digits_judge`, :func:`digits_style_detector` — robustlab's fixed digits
  split as tensors, and the two judges trained on its train part (memoised for the process).

Training is deterministic: weights are initialised inside :func:`torch.random.fork_rng` seeded with
``seed``, and shuffling and augmentation draw from a private :class:`torch.Generator`, so two calls with the
same inputs and seed return equal weights and the global RNG is left untouched.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.core.errors import RobustlabError
from robustlab.core.modes import eval_mode

FEATURE_DIM = 64  # width of the penultimate layer
IMAGE_SHAPE = (1, 8, 8)
NORMAL, MIRRORED = 0, 1  # the style detector's classes


class JudgeCNN(nn.Module):
    """A small CNN classifier of ``(N, 1, 8, 8)`` images in ``[0, 1]`` into ``num_classes`` classes.

    conv 3×3 (1 → 32) → ReLU → conv 3×3 (32 → 64) → ReLU → max-pool 2 → flatten (64·4·4) →
    linear (→ 64) → ReLU [the features] → linear (→ ``num_classes``) [the logits].
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        if num_classes < 2:
            raise RobustlabError(f"JudgeCNN needs at least 2 classes; got {num_classes}")
        self.num_classes = num_classes
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(64 * 4 * 4, FEATURE_DIM), nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer: ``(N, 64)`` non-negative features of images ``x`` ``(N, 1, 8, 8)``."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` of images ``x`` ``(N, 1, 8, 8)`` in ``[0, 1]``."""
        return self.head(self.body(x))


def _check_images(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise RobustlabError(f"{name} must be images of shape (N, 1, 8, 8); got {shape}")
    if not torch.is_floating_point(x):
        raise RobustlabError(f"{name} must be floating point in [0, 1]; got dtype {x.dtype}")


def mirror(x: torch.Tensor) -> torch.Tensor:
    """Images flipped left–right (along the last axis): same shape, a new tensor."""
    return x.flip(-1)


def _shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image of ``x`` ``(B, C, H, W)`` shifted by its own random offset in ``{-1, 0, 1}`` px per axis
    (zero fill), the offsets drawn from ``g``."""
    b, _, h, w = x.shape
    padded = F.pad(x, (1, 1, 1, 1))
    dy, dx = (torch.randint(0, 3, (2, b), generator=g)).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None, :])[:, None, :, None]  # (B, 1, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None, :])[:, None, None, :]  # (B, 1, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, chans, rows, cols]


def train_judge(x: torch.Tensor, y: torch.Tensor, num_classes: int, seed: int = 0, epochs: int = 20,
                augment: bool = True, batch_size: int = 64, lr: float = 3e-3, threads: int | None = 1) -> JudgeCNN:
    """A :class:`JudgeCNN` trained on images ``x`` ``(N, 1, 8, 8)`` in ``[0, 1]`` with labels ``y`` ``(N,)``
    in ``[0, num_classes)``; returned in eval mode on ``x``'s device.

    Adam (``lr``, cosine-decayed to 0 over the run), cross-entropy, ``epochs`` shuffled passes of
    ``batch_size``; with ``augment`` every training image is shifted by a random ``±1`` px per axis.
    Deterministic for a given ``seed`` (see the module docstring); the global RNG is untouched. While
    training, torch uses at most ``threads`` CPU threads (restored afterwards; ``None`` leaves the setting
    alone): batches of 64 tiny images are too small for threads, which then only fight for cores. On the
    digits train split (1,437 images) the defaults take a few seconds on one CPU core and reach about 99 %
    test accuracy.
    """
    _check_images(x, "x")
    y = torch.as_tensor(y)
    if y.shape != (x.shape[0],) or torch.is_floating_point(y) or y.dtype == torch.bool:
        raise RobustlabError(f"y must be integer labels of shape ({x.shape[0]},); got {tuple(y.shape)} {y.dtype}")
    if x.shape[0] == 0 or int(y.min()) < 0 or int(y.max()) >= num_classes:
        raise RobustlabError(f"train_judge needs at least one image and labels in [0, {num_classes})")
    if epochs < 1 or batch_size < 1:
        raise RobustlabError(f"train_judge needs epochs >= 1 and batch_size >= 1; got {epochs}, {batch_size}")
    if threads is not None and threads < 1:
        raise RobustlabError(f"train_judge needs threads >= 1 or None; got {threads}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(min(threads, before))
    try:
        return _fit(x.float(), y.long().to(x.device), num_classes, seed, epochs, augment, batch_size, lr)
    finally:
        torch.set_num_threads(before)


def _fit(x: torch.Tensor, y: torch.Tensor, num_classes: int, seed: int, epochs: int, augment: bool,
         batch_size: int, lr: float) -> JudgeCNN:
    """The training loop of :func:`train_judge` (arguments already validated)."""
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = JudgeCNN(num_classes).to(x.device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = epochs * -(-x.shape[0] // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    net.train()
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(x.shape[0], generator=g).to(x.device)
            for i in range(0, x.shape[0], batch_size):
                idx = order[i:i + batch_size]
                xb = _shift(x[idx], g) if augment else x[idx]
                loss = F.cross_entropy(net(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    return net.eval()


def style_pairs(x3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The style detector's data: ``x3`` ``(N, 1, 8, 8)`` followed by ``mirror(x3)``, labelled
    ``0`` (normal) and ``1`` (mirrored): images ``(2N, 1, 8, 8)`` and labels ``(2N,)``."""
    _check_images(x3, "x3")
    labels = torch.cat([torch.full((x3.shape[0],), NORMAL), torch.full((x3.shape[0],), MIRRORED)])
    return torch.cat([x3, mirror(x3)]), labels.to(x3.device)


def train_style_detector(x3: torch.Tensor, seed: int = 0, epochs: int = 40) -> JudgeCNN:
    """A 2-class :class:`JudgeCNN`: class ``0`` = a normal 3, class ``1`` = a horizontally mirrored 3.

    Trained (:func:`train_judge`, ±1 px shifts) on the real 3s ``x3`` ``(N, 1, 8, 8)`` in ``[0, 1]`` and
    their mirrors (:func:`style_pairs`), so both classes hold the same strokes and only the orientation
    separates them. On the digits split (about 145 train 3s) it labels held-out 3s and their mirrors
    correctly (≈ 100 %). Deterministic for a given ``seed``; the global RNG is untouched.
    """
    x, y = style_pairs(x3)
    return train_judge(x, y, 2, seed=seed, epochs=epochs, augment=True)


@torch.no_grad()
def embed(judge: JudgeCNN, x: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, logits)`` of images ``x`` ``(N, 1, 8, 8)`` under ``judge``: float32 CPU tensors
    ``(N, 64)`` and ``(N, K)``, computed in eval mode without gradients, in batches of ``batch_size``
    on the judge's device (the judge's train / eval mode is restored afterwards)."""
    _check_images(x, "x")
    device = next(judge.parameters()).device
    feats, logits = [], []
    with eval_mode(judge):
        for i in range(0, x.shape[0], batch_size):
            f = judge.features(x[i:i + batch_size].to(device).float())
            feats.append(f.cpu())
            logits.append(judge.head(f).cpu())
    if not feats:
        return torch.zeros(0, FEATURE_DIM), torch.zeros(0, judge.num_classes)
    return torch.cat(feats), torch.cat(logits)


def digits_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """robustlab's fixed digits ``"train"`` (1,437) or ``"test"`` (360) split as tensors: images float32
    ``(N, 1, 8, 8)`` in ``[0, 1]`` and labels int64 ``(N,)`` in ``0..9`` (new tensors on each call)."""
    if split not in ("train", "test"):
        raise RobustlabError(f"digits split must be 'train' or 'test'; got {split!r}")
    from robustlab.data.digits import load_digits_split

    ds = load_digits_split(split)
    return ds.data.float().clone(), ds.targets.clone()


@lru_cache(maxsize=4)
def digits_judge(seed: int = 0) -> JudgeCNN:
    """The digit judge (10 classes, :func:`train_judge` defaults) trained on the digits train split,
    memoised per ``seed`` for the process: a shared model, read it and do not train it."""
    x, y = digits_split("train")
    return train_judge(x, y, 10, seed=seed)


@lru_cache(maxsize=4)
def digits_style_detector(seed: int = 0) -> JudgeCNN:
    """The style detector (:func:`train_style_detector`) trained on the 3s of the digits train split,
    memoised per ``seed`` for the process: a shared model, read it and do not train it."""
    x, y = digits_split("train")
    return train_style_detector(x[y == 3], seed=seed)
