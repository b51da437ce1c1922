"""Shared pieces of the frozen-features tests: tiny DINOv2-architecture widths and weights saved in
both local formats (timm safetensors and the original facebookresearch layout)."""

from __future__ import annotations

from pathlib import Path

import torch

from robustlab.labs.frozen.backbones import seeded_vit

TINY = {"embed_dim": 48, "depth": 2, "heads": 3}
REG4 = "vit_small_patch14_reg4_dinov2"
PLAIN = "vit_small_patch14_dinov2"

def original_layout(state: dict[str, torch.Tensor], registers: bool) -> dict[str, torch.Tensor]:
    """A timm DINOv2 state dict written back in the facebookresearch checkpoint layout (the inverse of
    timm's conversion): a ``mask_token``, and for register models ``register_tokens`` with the CLS
    position folded out of ``cls_token`` into ``pos_embed``."""
    out = {k: v.clone() for k, v in state.items()}
    dim = out["cls_token"].shape[-1]
    out["mask_token"] = torch.zeros(1, dim)
    if registers:
        pos0 = torch.randn(1, 1, dim, generator=torch.Generator().manual_seed(5)) * 0.02
        out["register_tokens"] = out.pop("reg_token")
        out["pos_embed"] = torch.cat([pos0, out["pos_embed"]], 1)
        out["cls_token"] = out["cls_token"] - pos0
    return out


def save_tiny_weights(folder: Path, arch: str = REG4, fmt: str = "safetensors", size: int = 56, seed: int = 1,
                      **widths: int) -> tuple[Path, torch.nn.Module]:
    """A tiny ViT of ``arch`` with seeded weights saved in ``folder`` as ``safetensors`` (timm layout)
    or ``original`` (facebookresearch ``.pth``): ``(path, the model in eval mode)``."""
    from safetensors.torch import save_file

    model = seeded_vit(arch, size, seed, **{**TINY, **widths})
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if fmt == "safetensors":
        path = folder / f"{arch}-{seed}.safetensors"
        save_file(state, str(path))
    else:
        path = folder / f"{arch}-{seed}_pretrain.pth"
        torch.save(original_layout(state, "reg4" in arch), path)
    return path, model.eval()
