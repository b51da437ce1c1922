"""Checkpoints that are safe to load and that say when they are damaged.

File format (version 1): ``torch.save`` of ``{"format": "robustlab-checkpoint", "version": 1,
"sha256": hex, "payload": uint8 tensor}``, where ``payload`` is itself a ``torch.save`` of the
state (model/optimizer/scheduler state dicts, epoch, RNG states, config). Both levels are read
with ``torch.load(weights_only=True)``, so a file crafted to run code when unpickled is refused.
Writes are atomic: a crash or a full disk during a save leaves the previous file intact.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from robustlab.core.errors import RobustlabError
from robustlab.core.io import atomic_write

FORMAT = "robustlab-checkpoint"
VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically."""
    buf = io.BytesIO()
    torch.save(state, buf)
    raw = buf.getvalue()
    payload = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    outer = {"format": FORMAT, "version": VERSION, "sha256": hashlib.sha256(raw).hexdigest(), "payload": payload}
    return atomic_write(path, lambda f: torch.save(outer, f))


def _safe_torch_load(source: Any, what: str) -> Any:
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RobustlabError(
            f"refusing to load {what}: it holds objects other than tensors and plain data "
            f"(possibly code that would run when unpickled): {first[:160]}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RobustlabError(f"{what} is truncated or corrupt and cannot be read ({msg[:160]})") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; verify its format, version and checksum.

    Raises :class:`RobustlabError` (one line) when the file is missing, corrupt, truncated, of an
    unknown version, fails its checksum, or would unpickle anything but tensors and plain data.
    """
    path = Path(path)
    if not path.is_file():
        raise RobustlabError(f"checkpoint {path} does not exist")
    outer = _safe_torch_load(path, f"checkpoint {path}")
    if not isinstance(outer, dict) or outer.get("format") != FORMAT:
        raise RobustlabError(f"{path} is not a robustlab checkpoint (no '{FORMAT}' header)")
    if outer.get("version") != VERSION:
        raise RobustlabError(
            f"checkpoint {path} has format version {outer.get('version')}; this robustlab reads {VERSION}"
        )
    payload = outer.get("payload")
    if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8:
        raise RobustlabError(f"checkpoint {path} is corrupt (payload missing)")
    raw = payload.numpy().tobytes()
    if hashlib.sha256(raw).hexdigest() != outer.get("sha256"):
        raise RobustlabError(f"checkpoint {path} failed its checksum (corrupt or modified)")
    state = _safe_torch_load(io.BytesIO(raw), f"checkpoint {path}")
    if not isinstance(state, dict):
        raise RobustlabError(f"checkpoint {path} is corrupt (state is not a mapping)")
    return state


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read model weights from a robustlab checkpoint, a safetensors file or a plain ``torch.save``
    state dict (optionally wrapped in ``{"state_dict": ...}`` or ``{"model": ...}``), safely."""
    path = Path(path)
    if not path.is_file():
        raise RobustlabError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # safetensors raises its own error types
            raise RobustlabError(f"weights file {path} is not valid safetensors ({str(e)[:120]})") from None
    obj = _safe_torch_load(path, f"weights file {path}")
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        obj = load_checkpoint(path)
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise RobustlabError(f"weights file {path} does not hold a state dict of tensors")
    return obj


def load_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load ``state`` into ``model`` exactly; on a mismatch raise one line naming the first
    differing tensor (shape, missing or unexpected key) and the architecture it came from."""
    own = model.state_dict()
    arch = getattr(model, "arch", "") or type(model).__name__
    for key, value in state.items():
        if key in own and isinstance(value, torch.Tensor) and own[key].shape != value.shape:
            raise RobustlabError(
                f"checkpoint {source} does not fit model {arch}: {key} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(own[key].shape)} (another architecture, width or number of classes?)"
            )
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise RobustlabError(
            f"checkpoint {source} does not fit model {arch}: {len(missing)} missing and {len(unexpected)} "
            f"unexpected tensors ({what})"
        )
    model.load_state_dict(state)


def load_submodule_state(module: torch.nn.Module, path: str | Path, prefix: str, runs: str) -> None:
    """Load the ``<prefix>.*`` tensors of the weights file ``path`` into ``module`` exactly (see
    :func:`load_model_state`); a file without any is one line saying which ``runs`` hold them."""
    head = f"{prefix}."
    state = {k[len(head):]: v for k, v in read_state_dict(path).items() if k.startswith(head)}
    if not state:
        raise RobustlabError(f"{path} holds no {prefix} ({head}* tensors); give {runs} checkpoint")
    load_model_state(module, state, path)
