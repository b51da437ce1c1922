"""Recipes: YAML files that chain whole experiments (train → evaluate → explain → report → compare).

Format::

    name: demo
    description: what it reproduces
    base: {…experiment config shared by every run…}
    smoke: {…overrides applied to every run under --smoke…}
    runs:
      - name: clean
        config: {…overrides of base…}
        smoke: {…this run's own --smoke overrides (e.g. a smaller model variant)…}
      - name: fgsm-rs
        init_from: clean          # start from that run's best checkpoint
        config: {defense: {name: fgsm-rs, params: {eps: 0.1}}}
        explain_with: clean       # Grad-CAM side by side with that run
      - name: lstm-cv
        folds: 5                  # k-fold cross-validation (labs whose data config has folds/fold)
    compare: {title: "…", runs: [clean, fgsm-rs]}

Each run writes ``<out>/<run name>/``; a cross-validated run writes one complete run per fold
(``<out>/<run name>/fold-<i>/``; figures for fold 0) and their aggregate in ``<out>/<run name>/results.json`` (see
:mod:`robustlab.crossval`; ``--smoke`` runs two folds). ``compare`` writes ``<out>/compare.html`` and
the same tables as Markdown in ``<out>/compare.md``.

Under torchrun (``robustlab run --nproc N``) the folds of every cross-validated run are dealt to the
ranks as they free up — each fold trains, is evaluated and reported in one process, exactly as in a
one-process run — and rank 0 then runs the other runs, the aggregates and the comparison alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from robustlab.config import lab_for, parse_config
from robustlab.core import distributed as D
from robustlab.core.config import ExperimentConfig, Strict, deep_merge, load_yaml
from robustlab.core.errors import RobustlabError
from robustlab.core.io import atomic_write_text
from robustlab.core.progress import log
from robustlab.core.runs import RunDir
from robustlab.crossval import fold_configs, fold_dir, write_parent

#: written into a run folder once all its stages finished (a resumed recipe skips such runs)
DONE_MARK = ".recipe-done"
#: prefix of the file a rank writes beside a fold's folder when it takes that fold (torchrun)
CLAIM_PREFIX = ".claim-"


class RecipeRun(Strict):
    """One run of a recipe."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    config: dict[str, Any] = Field(default_factory=dict)
    smoke: dict[str, Any] = Field(default_factory=dict, description="this run's own --smoke overrides")
    init_from: str | None = None
    evaluate: bool = True
    explain: bool = True
    explain_with: str | None = None
    folds: int | None = Field(None, ge=2, le=20, description="k-fold cross-validation: one run per fold")


class CompareSpec(Strict):
    title: str | None = None
    runs: list[str]


class Recipe(Strict):
    """A whole experiment as data."""

    name: str
    description: str = ""
    base: dict[str, Any] = Field(default_factory=dict)
    smoke: dict[str, Any] = Field(default_factory=dict)
    runs: list[RecipeRun]
    compare: CompareSpec | None = None
    notes: str = ""

    @model_validator(mode="after")
    def _references(self) -> Recipe:
        names = [r.name for r in self.runs]
        if len(set(names)) != len(names):
            raise ValueError(f"run names must be unique, got {names}")
        seen: set[str] = set()
        folded = {r.name for r in self.runs if r.folds}
        for r in self.runs:
            for ref in (r.init_from, r.explain_with):
                if ref is not None and ref not in seen:
                    raise ValueError(f"run {r.name!r} refers to {ref!r}, which is not an earlier run")
                if ref is not None and (ref in folded or r.folds):
                    raise ValueError(f"run {r.name!r}: init_from/explain_with do not combine with cross-validated runs")
            seen.add(r.name)
        if self.compare:
            missing = [n for n in self.compare.runs if n not in names]
            if missing:
                raise ValueError(f"compare names unknown run {missing[0]!r}")
        return self


def expand_env(value: Any) -> Any:
    """Replace ``${VAR}`` in every string of a nested structure with the environment's value
    (e.g. ``pretrained: ${ROBUSTLAB_VIT_B16}``); unset variables are left as written."""
    if isinstance(value, str):
        return os.path.expandvars(value)
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    return value


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a recipe file (``${VAR}`` expanded from the environment); errors name the bad key."""
    return parse_config(expand_env(load_yaml(path)), where=str(path), model=Recipe)


def run_configs(recipe: Recipe, smoke: bool = False) -> list[tuple[RecipeRun, ExperimentConfig]]:
    """The validated experiment config of every run, each checked by its lab (registry names, files)
    — all before any training, so a typo in the last run fails before the first one trains."""
    out = []
    for r in recipe.runs:
        where = f"recipe {recipe.name}, run {r.name}"
        merged = deep_merge(recipe.base, r.config)
        lab = lab_for(merged, where)
        if smoke:
            merged = deep_merge(deep_merge(merged, lab.smoke_defaults), recipe.smoke)
            merged = deep_merge(merged, r.smoke)
            merged = lab.smoke_overrides(merged)
        merged["name"] = r.name
        cfg = parse_config(merged, where=where)
        try:
            lab.check(cfg)
            if r.folds:
                fold_configs(cfg, run_folds(r, smoke))
        except RobustlabError as e:
            raise RobustlabError(f"{where}: {e}") from None
        out.append((r, cfg))
    return out


def run_folds(run: RecipeRun, smoke: bool) -> int:
    """How many folds a cross-validated run trains (two under ``--smoke``; 0: not cross-validated)."""
    return min(run.folds, 2) if run.folds and smoke else (run.folds or 0)


def run_recipe(
    recipe: Recipe, out: str | Path, smoke: bool = False, resume: bool = False, overwrite: bool = False,
    device: str | None = None,
) -> dict[str, Any]:
    """Run every stage of ``recipe`` into ``out``; return ``{run name: results}`` (+ ``compare`` path).

    Under torchrun every rank calls this; ranks other than 0 return ``{}`` once the folds are trained."""
    out = Path(out)
    configs = run_configs(recipe, smoke=smoke)
    if device:
        configs = [(r, cfg.model_copy(update={"device": device})) for r, cfg in configs]
    problem = None
    if D.is_main() and out.exists() and any(out.iterdir()) and not (resume or overwrite):
        problem = f"output folder {out} already exists; pass --resume to continue it or --overwrite to replace it"
    problem = D.broadcast_json(problem)
    if problem:
        raise RobustlabError(problem)
    dealt: set[Path] = set()
    if D.world_size() > 1:
        dealt = _deal_folds(configs, out, smoke, resume, overwrite)
        if not D.is_main():
            return {}
    with D.solo():
        return _run_all(recipe, configs, out, smoke, resume, overwrite, dealt)


def _run_all(recipe: Recipe, configs: list[tuple[RecipeRun, ExperimentConfig]], out: Path, smoke: bool,
             resume: bool, overwrite: bool, dealt: set[Path]) -> dict[str, Any]:
    """Every run in order (folds in ``dealt`` already finished by this invocation), then the comparison."""
    from robustlab.pipeline import compare_runs

    summary: dict[str, Any] = {}
    for r, cfg in configs:
        if r.init_from:
            cfg = cfg.model_copy(update={"train": cfg.train.model_copy(
                update={"init_from": str(RunDir(out / r.init_from).checkpoint("best"))})})
        run_path = out / r.name
        done = (run_path / DONE_MARK).exists()
        if resume and done and (run_path / "report.html").exists():
            log.info("recipe %s: run %s already complete, skipping", recipe.name, r.name)
            summary[r.name] = RunDir(run_path).results()
            continue
        log.info("recipe %s: run %s", recipe.name, r.name)
        if r.folds:
            summary[r.name] = _cross_validate(r, cfg, run_path, smoke, resume, overwrite, dealt)
            continue
        _run_stages(r, cfg, run_path, out, smoke, resume, overwrite)
        summary[r.name] = RunDir(run_path).results()
    if recipe.compare:
        dirs: list[str | Path] = [out / n for n in recipe.compare.runs]
        title = recipe.compare.title or recipe.name
        summary["compare"] = str(compare_runs(dirs, out / "compare.html", title=title))
        summary["compare_markdown"] = str(compare_runs(dirs, out / "compare.md", title=title))
    return summary


def _run_stages(r: RecipeRun, cfg: ExperimentConfig, run_path: Path, out: Path, smoke: bool, resume: bool,
                overwrite: bool, explain: bool = True) -> None:
    """Train, evaluate, explain (unless ``explain`` is False) and report one run folder, then mark it done."""
    from robustlab.experiment import train_experiment
    from robustlab.pipeline import evaluate_run, explain_run_dir, report_run

    run_resume = resume and run_path.exists() and any(run_path.iterdir())
    train_experiment(cfg, run_path, resume=run_resume, overwrite=overwrite and not run_resume, smoke=smoke)
    if r.evaluate:
        evaluate_run(run_path, device=cfg.device)
    if r.explain and explain:
        explain_run_dir(run_path, other=out / r.explain_with if r.explain_with else None, device=cfg.device)
    report_run(run_path)
    atomic_write_text(run_path / DONE_MARK, "every stage of this run finished\n")


def _cross_validate(r: RecipeRun, cfg: ExperimentConfig, parent: Path, smoke: bool, resume: bool,
                    overwrite: bool, dealt: set[Path] | frozenset[Path] = frozenset()) -> dict[str, Any]:
    """Every fold of a cross-validated run (finished folds skipped on resume, folds in ``dealt``
    already trained by this invocation's ranks; the figures of the explain stage drawn for the first
    fold only), then the parent's aggregate, pooled views and report."""
    from robustlab.config import lab_of
    from robustlab.pipeline import report_run

    folds = run_folds(r, smoke)
    if not dealt and parent.exists() and any(parent.iterdir()) and not (resume or overwrite):
        raise RobustlabError(f"output folder {parent} already exists; pass --resume or --overwrite")
    parent.mkdir(parents=True, exist_ok=True)
    for i, fold_cfg in enumerate(fold_configs(cfg, folds)):
        path = fold_dir(parent, i)
        if path in dealt or (resume and (path / DONE_MARK).exists()):
            log.info("recipe run %s: fold %d already complete, skipping", r.name, i)
            continue
        log.info("recipe run %s: fold %d of %d", r.name, i + 1, folds)
        _run_stages(r, fold_cfg, path, parent, smoke, resume, overwrite, explain=i == 0)
    pooled = lab_of(cfg).pooled_folds([fold_dir(parent, i) for i in range(folds)])
    doc = write_parent(parent, cfg, folds, pooled, smoke)
    report_run(parent)
    atomic_write_text(parent / DONE_MARK, "every fold and the aggregate finished\n")
    return doc


def _fold_jobs(configs: list[tuple[RecipeRun, ExperimentConfig]], out: Path, smoke: bool,
               resume: bool) -> list[tuple[RecipeRun, ExperimentConfig, Path, int]]:
    """Every fold of every cross-validated run still to train: (run, fold config, folder, fold index)."""
    jobs = []
    for r, cfg in configs:
        if not r.folds or (resume and (out / r.name / DONE_MARK).exists()):
            continue
        for i, fold_cfg in enumerate(fold_configs(cfg, run_folds(r, smoke))):
            path = fold_dir(out / r.name, i)
            if not (resume and (path / DONE_MARK).exists()):
                jobs.append((r, fold_cfg, path, i))
    return jobs


def _claim_file(path: Path) -> Path:
    return path.parent / f"{CLAIM_PREFIX}{path.name}"


def _claim(path: Path) -> bool:
    """Take the fold in ``path`` for this rank unless another rank took it first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(_claim_file(path), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(f"rank {D.rank()}\n")
    return True


def _deal_folds(configs: list[tuple[RecipeRun, ExperimentConfig]], out: Path, smoke: bool, resume: bool,
                overwrite: bool) -> set[Path]:
    """Train the folds of every cross-validated run on the ranks of this torchrun job, each fold in one
    process, taken in recipe order by whichever rank is free; return the fold folders now finished.
    A rank's one-line error is raised on every rank once all have stopped taking folds."""
    jobs = _fold_jobs(configs, out, smoke, resume)
    if D.is_main():
        for _, _, path, _ in jobs:  # claims left by an earlier, interrupted invocation
            _claim_file(path).unlink(missing_ok=True)
    D.barrier()
    error = None
    for r, fold_cfg, path, i in jobs:
        if not _claim(path):
            continue
        log.info("recipe run %s: fold %d of %d on rank %d", r.name, i + 1, run_folds(r, smoke), D.rank())
        try:
            with D.solo():
                _run_stages(r, fold_cfg, path, out / r.name, smoke, resume, overwrite, explain=i == 0)
        except RobustlabError as e:
            error = f"recipe run {r.name}, fold {i}: {e}"
            break
    errors = [e for e in _gather_json(error) if e]
    if D.is_main():
        for _, _, path, _ in jobs:
            _claim_file(path).unlink(missing_ok=True)
    if errors:
        raise RobustlabError(errors[0])
    return {path for _, _, path, _ in jobs}


def _gather_json(obj: Any) -> list[Any]:
    """Every rank's JSON-serialisable ``obj``, in rank order, on every rank."""
    return [D.broadcast_json(obj, src=k) for k in range(D.world_size())]


def demo_recipe(dataset: str = "fashion-mnist") -> Recipe:
    """The built-in demo recipe (``robustlab demo``), on ``fashion-mnist`` or ``digits``."""
    from importlib.resources import files

    text = files("robustlab.builtin").joinpath("demo.yaml").read_text(encoding="utf-8")
    import yaml

    raw = yaml.safe_load(text)
    if dataset not in ("fashion-mnist", "digits"):
        raise RobustlabError(f"the demo runs on fashion-mnist or digits, got {dataset!r}")
    if dataset == "digits":
        raw["base"]["data"].update({"dataset": "digits", "test_subset": None, "batch_size": 64})
        raw["base"]["train"]["epochs"] = 15
    return parse_config(raw, where="demo recipe", model=Recipe)
