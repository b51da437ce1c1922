"""Resumable evaluation: progress saved after every finished batch, reloaded when nothing changed.

The state file holds the per-sample tensors of the batches done so far plus a *fingerprint* of
everything the numbers depend on (evaluation config, batch size, seed, amp, number of samples, the
labels and the model's weights). :func:`load_state` returns the saved progress only when the
fingerprint matches, so a changed config or model silently starts over instead of mixing results.

Writes are atomic (:func:`robustlab.core.io.atomic_write` + ``torch.save``); reads use
``torch.load(weights_only=True)``: the file holds only tensors, numbers and strings.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from robustlab.core.io import atomic_write
from robustlab.core.progress import log

STATE_VERSION = 1


def _tensor_bytes(t: Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def fingerprint(config: dict[str, Any], model: nn.Module, labels: Tensor) -> str:
    """SHA-256 over ``config`` (JSON-serialisable), the model's state dict and the labels ``(N,)``."""
    h = hashlib.sha256()
    h.update(json.dumps({"version": STATE_VERSION, **config}, sort_keys=True, default=str).encode())
    for key, value in model.state_dict().items():
        h.update(key.encode())
        if isinstance(value, Tensor):
            h.update(str(value.dtype).encode())
            h.update(_tensor_bytes(value))
    h.update(_tensor_bytes(labels.long()))
    return h.hexdigest()


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors moved to the CPU) to ``path`` atomically."""
    cpu = {k: (v.detach().cpu() if isinstance(v, Tensor) else v) for k, v in state.items()}
    atomic_write(path, lambda f: torch.save(cpu, f))


def load_state(path: str | Path | None, expected_fingerprint: str) -> dict[str, Any] | None:
    """The saved state at ``path`` if it exists, loads, and has ``expected_fingerprint``; else None."""
    if path is None or not Path(path).is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: start over rather than fail
        log.warning("ignoring unreadable evaluation state %s (%s); starting over", path, type(exc).__name__)
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != expected_fingerprint:
        log.info("evaluation state %s belongs to another config or model; starting over", path)
        return None
    return state
