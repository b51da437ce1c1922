"""Mixed precision: the one place that turns an ``amp`` setting into an autocast context."""

from __future__ import annotations

import contextlib

import torch

from robustlab.core.errors import RobustlabError

AMP_MODES = ("none", "bf16", "fp16")


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to bfloat16 or float16 on ``device`` for ``amp`` "bf16" or "fp16"; a null
    context for "none". Raises :class:`RobustlabError` for another ``amp``, and for fp16 on a CPU
    (CPUs autocast to bfloat16 only) — call it once up front to fail before any work is done."""
    if amp not in AMP_MODES:
        raise RobustlabError(f"unknown --amp {amp!r}; choose one of: {', '.join(AMP_MODES)}")
    if amp == "none":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type == "cpu":
        raise RobustlabError("--amp fp16 needs a CUDA GPU; use --amp bf16 on CPU")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
