"""Per-sample outcomes of a robustness evaluation, saved next to ``results.json``.

``results.json`` holds accuracies; ``per_sample.safetensors`` says *which* images were robust, so
two models, two runs or a one-process and a torchrun evaluation can be compared image by image.
Tensors (``N`` evaluated images in dataset order, ``K`` attacks, ``M`` budgets, ``S`` noise levels,
``J`` minimal-perturbation attacks):

- ``labels`` int64 ``(N,)``, ``clean_pred`` int64 ``(N,)``;
- ``robust`` uint8 ``(K, M, N)``: 1 where the image stayed correct under attack ``k`` at ``eps[m]``
  (see :mod:`robustlab.evaluation.robust` for standalone vs cumulative rows);
- ``worst_case`` uint8 ``(M, N)``: 1 where every attack failed at every budget ≤ ``eps[m]``;
- ``adv_pred`` int64 ``(M, N)``: prediction on the first verified adversarial example within ``eps[m]``;
- ``noise_correct`` uint8 ``(S, N)``; ``min_norm`` float32 ``(J, N)`` (inf: none found, nan: wrong clean).

The metadata (strings) holds JSON lists ``attacks``, ``eps``, ``noise_sigma``, ``min_norm_attacks`` and
the strings ``norm`` and ``per_attack``. The file is written atomically and read without unpickling.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from robustlab.core.errors import RobustlabError
from robustlab.core.io import atomic_write_bytes
from robustlab.evaluation.result import EvaluationResult

FILENAME = "per_sample.safetensors"


def _stack(rows: list[Tensor], n: int, dtype: torch.dtype) -> Tensor:
    if not rows:
        return torch.zeros(0, n, dtype=dtype)
    return torch.stack([r.to(dtype) for r in rows])


def per_sample_tensors(result: EvaluationResult, per_attack: str = "standalone") -> tuple[dict[str, Tensor],
                                                                                          dict[str, str]]:
    """``(tensors, metadata)`` of ``result`` in the layout of the module docstring."""
    n = result.labels.numel()
    eps = list(result.eps)
    robust = [torch.stack([result.robust_correct[a][e] for e in eps]) if eps else torch.zeros(0, n)
              for a in result.attacks]
    tensors = {
        "labels": result.labels.long().contiguous(),
        "clean_pred": result.clean_pred.long().contiguous(),
        "robust": (torch.stack(robust).to(torch.uint8) if robust else torch.zeros(0, len(eps), n, dtype=torch.uint8)),
        "worst_case": _stack([result.worst_case[e] for e in eps], n, torch.uint8),
        "adv_pred": _stack([result.adv_pred[e] for e in eps], n, torch.int64),
        "noise_correct": _stack(list(result.noise_correct.values()), n, torch.uint8),
        "min_norm": _stack(list(result.min_norms.values()), n, torch.float32),
    }
    meta = {
        "attacks": json.dumps(list(result.attacks)),
        "eps": json.dumps(eps),
        "noise_sigma": json.dumps(list(result.noise_correct)),
        "min_norm_attacks": json.dumps(list(result.min_norms)),
        "norm": result.norm,
        "per_attack": per_attack,
    }
    return {k: v.contiguous() for k, v in tensors.items()}, meta


def save_per_sample(result: EvaluationResult, path: str | Path, per_attack: str = "standalone") -> Path:
    """Write ``result``'s per-sample outcomes to ``path`` (safetensors, atomically); return ``path``."""
    from safetensors.torch import save

    tensors, meta = per_sample_tensors(result, per_attack)
    return atomic_write_bytes(path, save(tensors, metadata=meta))


def load_per_sample(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """``(tensors, metadata)`` from a file written by :func:`save_per_sample`; JSON metadata decoded."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise RobustlabError(f"no per-sample file at {path}; run `robustlab evaluate` on the run first")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not a dict)
            raw = f.metadata() or {}
    except Exception as exc:
        raise RobustlabError(f"{path} is not a valid per-sample file ({str(exc)[:120]})") from None
    meta: dict[str, Any] = dict(raw)
    for key in ("attacks", "eps", "noise_sigma", "min_norm_attacks"):
        if key in meta:
            meta[key] = json.loads(meta[key])
    return tensors, meta
