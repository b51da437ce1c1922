"""Which way a monitored metric should move: the task and the callbacks say, never the metric's name."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from robustlab.core.errors import RobustlabError

PREFIXES = ("val_", "train_", "test_")


def metric_direction(metric: str, task: Any, declarers: Iterable[Any] = (), mode: str = "auto") -> bool:
    """True when a larger ``metric`` is better.

    ``mode`` ``"max"``/``"min"`` (the config's ``train.monitor_mode``) decides outright. With ``"auto"``
    the metric's name without its ``val_``/``train_``/``test_`` prefix is looked up in what the task
    declares (its ``monitor`` with ``higher_is_better``, and its ``directions`` mapping) and in the
    ``directions`` of ``declarers`` (callbacks, split-level metrics); ``loss`` — the task's objective —
    always falls. An undeclared metric is a one-line error asking for ``train.monitor_mode``.
    """
    if mode in ("max", "min"):
        return mode == "max"
    base = metric
    for p in PREFIXES:
        if base.startswith(p):
            base = base[len(p):]
            break
    declared: dict[str, bool] = {"loss": False}
    for d in declarers:
        declared.update(getattr(d, "directions", {}) or {})
    declared.update(getattr(task, "directions", {}) or {})
    declared[task.monitor] = bool(task.higher_is_better)
    if base not in declared:
        raise RobustlabError(
            f"train.monitor {metric!r}: the task does not declare whether it should rise or fall; "
            "set train.monitor_mode to max or min"
        )
    return declared[base]
