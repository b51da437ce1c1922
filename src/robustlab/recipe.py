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
    compare: {title: "…", runs: [clean, fgsm-rs]}

Each run writes ``<out>/<run name>/``; ``compare`` writes ``<out>/compare.html`` and the same tables as
Markdown in ``<out>/compare.md``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from robustlab.config import lab_for, parse_config
from robustlab.core.config import ExperimentConfig, Strict, deep_merge, load_yaml
from robustlab.core.errors import RobustlabError
from robustlab.core.io import atomic_write_text
from robustlab.core.progress import log
from robustlab.core.runs import RunDir

#: written into a run folder once all its stages finished (a resumed recipe skips such runs)
DONE_MARK = ".recipe-done"


class RecipeRun(Strict):
    """One run of a recipe."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    config: dict[str, Any] = Field(default_factory=dict)
    smoke: dict[str, Any] = Field(default_factory=dict, description="this run's own --smoke overrides")
    init_from: str | None = None
    evaluate: bool = True
    explain: bool = True
    explain_with: str | None = None


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
        for r in self.runs:
            for ref in (r.init_from, r.explain_with):
                if ref is not None and ref not in seen:
                    raise ValueError(f"run {r.name!r} refers to {ref!r}, which is not an earlier run")
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
        except RobustlabError as e:
            raise RobustlabError(f"{where}: {e}") from None
        out.append((r, cfg))
    return out


def run_recipe(
    recipe: Recipe, out: str | Path, smoke: bool = False, resume: bool = False, overwrite: bool = False,
    device: str | None = None,
) -> dict[str, Any]:
    """Run every stage of ``recipe`` into ``out``; return ``{run name: results}`` (+ ``compare`` path)."""
    from robustlab.experiment import train_experiment
    from robustlab.pipeline import compare_runs, evaluate_run, explain_run_dir, report_run

    out = Path(out)
    configs = run_configs(recipe, smoke=smoke)
    if out.exists() and any(out.iterdir()) and not (resume or overwrite):
        raise RobustlabError(
            f"output folder {out} already exists; pass --resume to continue it or --overwrite to replace it"
        )
    summary: dict[str, Any] = {}
    for r, cfg in configs:
        if device:
            cfg = cfg.model_copy(update={"device": device})
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
        run_resume = resume and run_path.exists() and any(run_path.iterdir())
        train_experiment(cfg, run_path, resume=run_resume, overwrite=overwrite and not run_resume, smoke=smoke)
        if r.evaluate:
            evaluate_run(run_path, device=cfg.device)
        if r.explain:
            explain_run_dir(run_path, other=out / r.explain_with if r.explain_with else None, device=cfg.device)
        report_run(run_path)
        atomic_write_text(run_path / DONE_MARK, "every stage of this run finished\n")
        summary[r.name] = RunDir(run_path).results()
    if recipe.compare:
        dirs: list[str | Path] = [out / n for n in recipe.compare.runs]
        title = recipe.compare.title or recipe.name
        summary["compare"] = str(compare_runs(dirs, out / "compare.html", title=title))
        summary["compare_markdown"] = str(compare_runs(dirs, out / "compare.md", title=title))
    return summary


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
