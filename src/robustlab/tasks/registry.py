"""Task families: what the experiment runner builds for each ``config.task``.

A :class:`TaskFamily` tells :mod:`robustlab.experiment` how to build the model and the task object
for a dataset, and optionally how to evaluate and explain a trained run. Classification is built
in; other families (generative models, sequence models, ...) register themselves here, and the
shared trainer, run folders, CLI and report serve them unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robustlab.core.errors import choice_error


@dataclass(frozen=True)
class TaskFamily:
    """Builders for one kind of experiment.

    ``build_model(cfg, info) -> nn.Module``; ``build_task(cfg, info) -> Task``;
    ``evaluate(run, model, cfg, bundle, device) -> dict`` (sections merged into results.json) and
    ``explain(run, model, cfg, bundle, device) -> {figure name: relative path}`` are optional; when
    absent the classification audit / explain stages are used. ``monitor`` is the metric early
    stopping follows by default.
    """

    name: str
    build_model: Callable[..., Any]
    build_task: Callable[..., Any]
    evaluate: Callable[..., dict[str, Any]] | None = None
    explain: Callable[..., dict[str, str]] | None = None
    description: str = ""


TASK_FAMILIES: dict[str, TaskFamily] = {}


def register_task_family(family: TaskFamily) -> TaskFamily:
    """Make ``family`` available as ``config.task = family.name``."""
    TASK_FAMILIES[family.name] = family
    return family


def get_task_family(name: str) -> TaskFamily:
    """The family registered under ``name`` (one-line error listing the choices otherwise)."""
    _load_builtin_families()
    if name not in TASK_FAMILIES:
        raise choice_error("task", name, TASK_FAMILIES)
    return TASK_FAMILIES[name]


def _load_builtin_families() -> None:
    """Import modules that register families (kept lazy so importing robustlab stays light)."""
    import importlib

    for module in ("robustlab.labs.generative",):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
