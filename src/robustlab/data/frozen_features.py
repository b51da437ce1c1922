"""Features of a frozen network computed once: batched extraction (inference mode, channels-last) and
a cache of fp16 safetensors files keyed by the network's weights and the exact images."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor, nn

from robustlab.core.io import atomic_write_bytes
from robustlab.core.modes import eval_mode

CACHE_FORMAT = "robustlab-frozen-tokens-1"
"""Bumped when the file layout changes (old files then miss the cache and are recomputed)."""


def extract_features(backbone: nn.Module, images: Tensor, batch_size: int = 128,
                     device: torch.device = torch.device("cpu"), channels_last: bool = True) -> Tensor:
    """The backbone's float16 outputs ``(N, ...)`` (on the CPU) of uint8 images ``(N, 3, S, S)``, computed in
    batches of ``batch_size`` under :func:`torch.inference_mode` with the backbone in eval mode
    (its own flags restored afterwards)."""
    out: list[Tensor] = []
    with eval_mode(backbone), torch.inference_mode():
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].to(device, non_blocking=True).float().div_(255)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(backbone(x).to(torch.float16).cpu())
    return torch.cat(out) if out else torch.empty(0)


def fingerprint(backbone: nn.Module, images: Tensor) -> str:
    """A hex key of the backbone's weights (every tensor's name, shape, dtype and bytes) and the
    image tensor's bytes: equal keys mean equal features."""
    h = hashlib.sha256(CACHE_FORMAT.encode())
    for name, t in backbone.state_dict().items():
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())  # 0-dim buffers too
    h.update(f"images:{tuple(images.shape)}:{images.dtype}".encode())
    h.update(images.contiguous().view(torch.uint8).numpy())
    return h.hexdigest()[:32]


def cached_features(backbone: nn.Module, images: Tensor, cache_dir: Path, batch_size: int = 128,
                    device: torch.device = torch.device("cpu")) -> tuple[Tensor, Path, bool]:
    """The features of :func:`extract_features`, read from ``cache_dir/<fingerprint>.safetensors`` when
    that file exists and written there (atomically) otherwise: ``(tokens, file, was_cached)``."""
    from safetensors.torch import load, save

    path = Path(cache_dir) / f"{fingerprint(backbone, images)}.safetensors"
    if path.is_file():
        try:
            return load(path.read_bytes())["tokens"], path, True
        except Exception:  # noqa: BLE001 - a damaged cache file is recomputed, never trusted
            pass
    tokens = extract_features(backbone, images, batch_size, device)
    atomic_write_bytes(path, save({"tokens": tokens.contiguous()}, metadata={"format": CACHE_FORMAT}))
    return tokens, path, False
