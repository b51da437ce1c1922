"""Resumable evaluation: the per-sample state of an evaluation, saved after every finished batch,
reloaded when nothing changed, and split by whole batches between the processes of a torchrun job.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from robustlab.core import distributed as D
from robustlab.core.io import atomic_write
from robustlab.core.progress import log
from robustlab.evaluation.plan import EvaluationPlan

STATE_VERSION = 1

PER_SAMPLE_KEYS = ("clean_pred", "cum", "adv_pred", "new_norm", "min_norm", "noise")
"""Entries of the evaluation state indexed by sample along their last dimension."""


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


def empty_state(plan: EvaluationPlan, n: int) -> dict[str, Any]:
    """The state of an evaluation of ``n`` samples before its first batch (``K`` attacks, ``M``
    budgets, ``J`` minimal-perturbation attacks, ``S`` noise levels of ``plan``), on the CPU:

    - ``next_batch``: how many of this process's batches are done;
    - ``clean_pred`` int64 ``(N,)``; ``cum`` bool ``(K, M, N)``: fooled for attack ``k`` at ``eps[m]``
      (``C[k, m]`` of :mod:`robustlab.evaluation.robust`); ``adv_pred`` int64 ``(M, N)``;
    - ``new_norm`` float ``(K, M, N)``: perturbation norm where row ``(k, m)`` newly fooled the
      sample, nan elsewhere; ``min_norm`` float ``(J, N)``; ``noise`` bool ``(S, N)``;
    - ``attacked`` int64 ``(K, M)``: points each row ran on; ``seconds`` float64 ``(K, M)``.
    """
    k, m = len(plan.attacks), len(plan.eps)
    return {
        "next_batch": 0,
        "clean_pred": torch.zeros(n, dtype=torch.long),
        "cum": torch.zeros(k, m, n, dtype=torch.bool),
        "adv_pred": torch.zeros(m, n, dtype=torch.long),
        "new_norm": torch.full((k, m, n), float("nan")),
        "min_norm": torch.full((len(plan.minimal_idx), n), float("nan")),
        "noise": torch.zeros(len(plan.sigmas), n, dtype=torch.bool),
        "attacked": torch.zeros(k, m, dtype=torch.long),
        "seconds": torch.zeros(k, m, dtype=torch.float64),
    }


def rank_state_path(path: str | Path, rank: int, world: int) -> Path:
    """Where rank ``rank`` of ``world`` keeps its evaluation progress: ``eval_state.rank1-of-2.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.rank{rank}-of-{world}{path.suffix}")


def gather_ranks(acc: dict[str, Any], filled: Tensor) -> dict[str, Any]:
    """Every rank's rows (``filled`` ``(N,)``: this rank's) and summed counters, on every rank."""
    out = dict(acc)
    for key in PER_SAMPLE_KEYS:
        out[key] = D.sum_rows_(acc[key], filled)
    for key in ("attacked", "seconds"):
        out[key] = D.sum_(acc[key])
    return out


@dataclass
class BatchProgress:
    """Which batches of an ``n``-sample evaluation this process owns, which of them are done, and
    their state ``acc`` (see :func:`empty_state`), saved to ``path`` after each batch when given.

    Batch ``b`` holds rows ``b·batch_size`` up to ``(b+1)·batch_size`` (the last one may be short).
    With ``W`` processes, rank ``r`` owns batches ``r, r+W, r+2W, …``: the same rows and seeds as
    one process.
    """

    acc: dict[str, Any]
    fingerprint: str
    path: Path | None
    own: list[int]
    n: int
    batch_size: int
    world: int
    filled: Tensor

    @classmethod
    def open(
        cls,
        plan: EvaluationPlan,
        n: int,
        batch_size: int,
        identity: dict[str, Any],
        model: nn.Module,
        labels: Tensor,
        path: str | Path | None,
    ) -> BatchProgress:
        """This process's progress: resumed from ``path`` (this rank's file under torchrun) when its
        fingerprint of ``identity`` (JSON-serialisable: everything the numbers depend on), ``model``
        and ``labels`` ``(N,)`` matches, else from scratch."""
        n_batches = (n + batch_size - 1) // batch_size
        world, rank = D.world_size(), D.rank()
        own = list(range(rank, n_batches, world))
        identity = dict(identity)
        if world > 1:
            identity.update(world=world, rank=rank)
            if path is not None:
                path = rank_state_path(path, rank, world)
        fp = fingerprint(identity, model, labels)
        acc = load_state(path, fp) or empty_state(plan, n)
        if acc["next_batch"]:
            log.info("resuming evaluation: %d of %d batches already done", acc["next_batch"], len(own))
        progress = cls(acc, fp, None if path is None else Path(path), own, n, batch_size, world,
                       torch.zeros(n, dtype=torch.bool))
        for b in own[: acc["next_batch"]]:
            progress.filled[progress.rows_of(b)] = True
        return progress

    @property
    def n_batches(self) -> int:
        """Batches of the whole evaluation, over all processes."""
        return (self.n + self.batch_size - 1) // self.batch_size

    def rows_of(self, b: int) -> slice:
        """The rows of batch ``b``."""
        return slice(b * self.batch_size, min(self.n, (b + 1) * self.batch_size))

    @property
    def todo(self) -> list[int]:
        """This process's batches still to run, in order."""
        return self.own[self.acc["next_batch"] :]

    def done(self, b: int) -> None:
        """Record batch ``b`` (the next of :attr:`todo`, its rows already written to ``acc``) as done
        and save the state."""
        self.acc["next_batch"] += 1
        self.filled[self.rows_of(b)] = True
        if self.path is not None:
            save_state(self.path, {**self.acc, "fingerprint": self.fingerprint})

    def gathered(self) -> dict[str, Any]:
        """The state of the whole evaluation (every process's rows and summed counters) on every process."""
        return gather_ranks(self.acc, self.filled) if self.world > 1 else self.acc
