"""The unit of extension: a :class:`Lab` owns one experiment family end to end.

A lab declares its typed config (``config_model``, whose ``task`` literal names the lab), builds its
data (:class:`robustlab.data.bundle.DataBundle`), its model and task, the split-level metrics of its
validation, evaluates and explains a trained run folder, supplies the report's sections for it and a
one-line summary of its results. The spine — trainer, run folders, CLI, recipes, report shell — calls
these members and nothing else, so adding a lab adds one package and no central file changes.

Labs are found through the ``robustlab.labs`` entry-point group (robustlab's own labs are declared
there too, in ``pyproject.toml``), so a third-party package registers its lab with::

    [project.entry-points."robustlab.labs"]
    my-lab = "my_package.lab:LAB"

where ``LAB`` is an instance of a :class:`Lab` subclass. :data:`LABS` is the registry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from robustlab.core.checkpoint import load_checkpoint, load_model_state, read_state_dict
from robustlab.core.config import ExperimentConfig
from robustlab.core.errors import RobustlabError
from robustlab.core.registry import Registry
from robustlab.core.runs import RunDir
from robustlab.data.bundle import DataBundle
from robustlab.report.section import Section
from robustlab.training.callbacks import Callback, averaged_weights
from robustlab.training.metrics import Metric
from robustlab.training.step import StepStrategy
from robustlab.training.task import Task

ENTRY_POINT_GROUP = "robustlab.labs"


@dataclass
class RunContext:
    """A trained run folder as a lab's ``evaluate``/``explain`` sees it.

    ``options`` holds stage options from the CLI or a recipe (e.g. ``attacks``/``eps`` overrides of
    an evaluation, ``other`` run folder of an explanation); ``checkpoint`` is ``best`` or ``last``.
    """

    run: RunDir
    cfg: Any
    smoke: bool
    device: torch.device
    checkpoint: str = "best"
    options: dict[str, Any] = field(default_factory=dict)


class Lab(ABC):
    """One experiment family. Subclasses set ``name``, ``description`` and ``config_model`` and
    implement every abstract member; the defaults of the others are the plain choices."""

    name: ClassVar[str]
    description: ClassVar[str]
    config_model: ClassVar[type[ExperimentConfig]]
    #: merged into every ``--smoke`` run's raw config before the recipe's own smoke sections
    smoke_defaults: ClassVar[dict[str, Any]] = {}

    # -- before anything is written -----------------------------------------------------------------
    def check(self, cfg: Any) -> None:
        """Check what the typed config cannot (registry names, files that must exist) with one-line
        errors; called for every run of a recipe before the first one trains. Nothing by default."""
        return None

    def check_evaluate_options(self, cfg: Any, options: dict[str, Any]) -> None:
        """Refuse bad stage options of ``evaluate`` (from the CLI) before any work; this lab takes
        none by default."""
        if options:
            raise RobustlabError(f"lab {self.name} takes no evaluation options, got {', '.join(options)}")

    def smoke_overrides(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The raw config of a ``--smoke`` run after the recipe's smoke sections (e.g. a narrower
        model); unchanged by default."""
        return raw

    # -- training -----------------------------------------------------------------------------------
    @abstractmethod
    def build_data(self, cfg: Any, smoke: bool = False) -> DataBundle:
        """The run's data streams; ``smoke`` replaces real data with small fabricated data of the
        same kind, so a recipe's pipeline runs in seconds without the files."""

    @abstractmethod
    def model_meta(self, cfg: Any, data: DataBundle) -> dict[str, Any]:
        """JSON-able facts about the data the model is sized by (shapes, classes, vocabulary size),
        saved in every checkpoint so the model is rebuilt without loading the data."""

    @abstractmethod
    def build_model(self, cfg: Any, meta: dict[str, Any]) -> nn.Module:
        """The untrained model for ``cfg`` and ``meta`` (see :meth:`model_meta`)."""

    @abstractmethod
    def build_task(self, cfg: Any, meta: dict[str, Any]) -> Task:
        """The task: batch unpacking, loss, per-batch metrics, monitored metric and its direction."""

    @abstractmethod
    def metrics(self, cfg: Any, meta: dict[str, Any]) -> list[Metric]:
        """Split-level metrics computed on every validation and test pass (may be empty)."""

    def load_initial_weights(self, model: nn.Module, path: str) -> None:
        """Start ``model`` from the weights in ``path`` (``train.init_from``: a robustlab checkpoint,
        safetensors or a plain state dict); by default every tensor must fit exactly (one-line error
        naming the first that does not)."""
        load_model_state(model, read_state_dict(path), path)

    def build_strategy(self, cfg: Any) -> StepStrategy:
        """How a batch becomes optimizer steps; the plain step by default."""
        return StepStrategy()

    def callbacks(self, cfg: Any, strategy: StepStrategy) -> list[Callback]:
        """Further callbacks of a training run (EMA comes from ``train.ema``); none by default."""
        return []

    def monitor(self, cfg: Any, strategy: StepStrategy) -> str | None:
        """The metric best.pt follows when the config names none (None: the task's)."""
        return None

    def training_results(
        self, cfg: Any, data: DataBundle, test: dict[str, float], strategy: StepStrategy
    ) -> dict[str, Any]:
        """What results.json records after training, from the test split's metrics ``test``
        (already prefixed ``test_``) and the step strategy that trained it."""
        return {"dataset": cfg.data.dataset, **test}

    # -- after training -----------------------------------------------------------------------------
    @abstractmethod
    def evaluate(self, ctx: RunContext) -> dict[str, Any]:
        """The lab's audit of a trained run: sections merged into results.json (on every rank under
        DDP; rank 0 writes)."""

    @abstractmethod
    def explain(self, ctx: RunContext) -> dict[str, str]:
        """Figures written into ``run/figures``: ``{name: "figures/<file>"}``."""

    @abstractmethod
    def report_sections(self, run_dir: Path, config: dict[str, Any], results: dict[str, Any]) -> list[Section]:
        """The report's sections for this lab, from the folder's config and results (never raises on a
        missing or partial section)."""

    @abstractmethod
    def summary(self, results: dict[str, Any]) -> str:
        """One line of the run's headline numbers, in this lab's words (printed by the CLI)."""

    def compare(self, run_dirs: list[Path], out: Path, title: str | None = None) -> Path:
        """One page (HTML, or Markdown when ``out`` ends in ``.md``) comparing runs of this lab; by
        default a row per run with its :meth:`summary` line, flags and training curves."""
        from robustlab.core.io import atomic_write_text, read_json
        from robustlab.report.overview import overview_markdown, overview_report

        summaries = [self.summary(read_json(d / "results.json") if (d / "results.json").exists() else {})
                     for d in run_dirs]
        if out.suffix.lower() == ".md":
            return atomic_write_text(out, overview_markdown(run_dirs, summaries, title))
        return overview_report(run_dirs, summaries, out, title)

    def pooled_folds(self, fold_dirs: list[Path]) -> dict[str, Any]:
        """What the lab computes from the finished folds of a cross-validation together (e.g. tables
        over the pooled out-of-fold predictions), stored beside the per-fold aggregate; none by default."""
        return {}

    # -- shared helpers -----------------------------------------------------------------------------
    def load_model(self, ctx: RunContext) -> nn.Module:
        """The trained model of ``ctx.run`` (``ctx.checkpoint``, else ``last``) in eval mode on
        ``ctx.device``, rebuilt from the checkpoint's config and meta alone (EMA weights when the run
        evaluates with them)."""
        path = ctx.run.checkpoint(ctx.checkpoint)
        if not path.exists():
            path = ctx.run.checkpoint("last")
        if not path.exists():
            raise RobustlabError(f"{ctx.run.path} has no checkpoint yet; train it first")
        state = load_checkpoint(path)
        meta = state.get("meta")
        if not isinstance(meta, dict) or not meta:
            raise RobustlabError(f"{path} records no model meta (made by an older robustlab?); retrain the run")
        model = self.build_model(without_pretrained(ctx.cfg), meta)
        load_model_state(model, averaged_weights(state["model"], state), path)
        return model.to(ctx.device).eval()


def without_pretrained(cfg: Any) -> Any:
    """``cfg`` with ``model.pretrained`` cleared (a trained run's weights replace them anyway, and the
    file may be gone)."""
    model = getattr(cfg, "model", None)
    if model is None or getattr(model, "pretrained", None) is None:
        return cfg
    return cfg.model_copy(update={"model": model.model_copy(update={"pretrained": None})})


LABS: Registry[Lab] = Registry("lab", entry_point_group=ENTRY_POINT_GROUP)


def get_lab(name: str) -> Lab:
    """The lab registered under ``name``; a one-line error listing the labs otherwise."""
    lab = LABS.get(name)
    if not isinstance(lab, Lab):
        raise RobustlabError(f"lab {name!r} is registered with a {type(lab).__name__}, not a Lab instance")
    return lab
