"""The stages after training: evaluate → explain → report, on a run folder, through its lab.

Each stage reads what the previous ones left in the folder, so each can also run alone from the
CLI (``robustlab evaluate``, ``explain``, ``report``) on an existing run. The stages know no lab:
they build a :class:`~robustlab.labs.base.RunContext` and call the run's lab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from robustlab.config import lab_for, lab_of
from robustlab.core import distributed as D
from robustlab.core.errors import RobustlabError
from robustlab.core.progress import log
from robustlab.core.runs import RunDir
from robustlab.core.seeding import resolve_device
from robustlab.experiment import load_run_config
from robustlab.labs.base import Lab, RunContext


def run_context(run_dir: str | Path, device: str = "auto", checkpoint: str = "best", **options: Any) -> RunContext:
    """The :class:`RunContext` of a run folder (its config validated by its lab)."""
    if checkpoint not in ("best", "last"):
        raise RobustlabError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    run = RunDir.open(run_dir)
    cfg, smoke = load_run_config(run)
    return RunContext(run, cfg, smoke, resolve_device(device), checkpoint, dict(options))


def load_run_model(run_dir: str | Path, checkpoint: str = "best", device: str = "cpu") -> torch.nn.Module:
    """The trained model of a run folder in eval mode, rebuilt by its lab from the saved config and the
    checkpoint's meta (no data is loaded)."""
    ctx = run_context(run_dir, device=device, checkpoint=checkpoint)
    return lab_of(ctx.cfg).load_model(ctx)


def check_evaluate_options(run_dir: str | Path, options: dict[str, Any]) -> None:
    """Refuse bad evaluation options for ``run_dir``'s lab before any work (one-line errors)."""
    ctx = run_context(run_dir)
    lab_of(ctx.cfg).check_evaluate_options(ctx.cfg, options)


def evaluate_run(
    run_dir: str | Path, overrides: dict[str, Any] | None = None, device: str = "auto", checkpoint: str = "best"
) -> dict[str, Any]:
    """Run the lab's audit of ``run_dir``'s ``checkpoint`` (``best`` or ``last``), with ``overrides``
    of its config's evaluation options; merge the sections into ``results.json`` and return the whole
    document.

    Under torchrun every rank takes part (the lab shares the work; the numbers are those of one
    process); rank 0 alone writes the folder, other ranks return the sections.
    """
    run = RunDir.open(run_dir)
    dev = resolve_device(device)
    D.init_from_env(dev.type)
    ctx = run_context(run.path, device=str(D.local_device(dev)), checkpoint=checkpoint, evaluate=overrides or {})
    lab = lab_of(ctx.cfg)
    if D.is_main():
        run.acquire_lock()
    try:
        sections = lab.evaluate(ctx)
        if not D.is_main():
            return sections
        doc = run.update_results(**sections)
    finally:
        if D.is_main():
            run.release_lock()
    for flag in doc.get("flags", []) or []:
        log.warning("sanity flag [%s] %s — remedy: %s", flag["code"], flag["message"], flag["remedy"])
    return doc


def explain_run_dir(
    run_dir: str | Path, other: str | Path | None = None, n_images: int = 8, device: str = "auto"
) -> dict[str, str]:
    """The lab's explanation figures of ``run_dir`` (optionally beside a second run ``other``) into
    ``run_dir/figures``; record them under ``results.json["figures"]`` and return the merged mapping."""
    ctx = run_context(run_dir, device=device, n_images=n_images)
    lab = lab_of(ctx.cfg)
    if other is not None:
        other_ctx = run_context(other, device=device)
        other_ctx.options["lab"] = lab_of(other_ctx.cfg)
        ctx.options["other"] = other_ctx
    figures = lab.explain(ctx)
    merged = {**ctx.run.results().get("figures", {}), **figures}
    ctx.run.update_results(figures=merged)
    return merged


def report_run(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` from what the folder holds: the shell's generic parts and the
    sections of the run's lab (none when its config cannot be read)."""
    from robustlab.report import build_report
    from robustlab.report.context import load_run

    path = Path(run_dir)
    if not path.is_dir():
        raise RobustlabError(f"cannot build a report: {path} is not a folder")
    data = load_run(path)
    sections, summary = [], None
    try:
        lab = lab_from_folder(path)
    except RobustlabError as e:
        log.warning("report: %s; only the generic sections are shown", e)
    else:
        sections = lab.report_sections(path, data.config, data.results)
        summary = lab.summary(data.results) if data.results else None
    return build_report(path, sections=sections, summary=summary)


def summary_line(run_dir: str | Path) -> str:
    """The run's headline numbers in its lab's words (one line)."""
    run = RunDir.open(run_dir)
    cfg, _ = load_run_config(run)
    return lab_of(cfg).summary(run.results())


def compare_runs(run_dirs: list[str | Path], out: str | Path, title: str | None = None) -> Path:
    """One report across several run folders (HTML, or Markdown tables when ``out`` ends in ``.md``),
    drawn by the lab of the first run."""
    dirs = [RunDir.open(r).path for r in run_dirs]
    if not dirs:
        raise RobustlabError("nothing to compare: give at least one run folder")
    return lab_from_folder(dirs[0]).compare(dirs, Path(out), title=title)


def lab_from_folder(run_dir: str | Path) -> Lab:
    """The lab a run folder's ``config.yaml`` names (``classification`` when it names none), without
    validating the rest of the config — a half-written folder still gets its lab's report."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    raw = None
    if path.is_file():
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError, OSError):
            raw = None
    return lab_for(raw if isinstance(raw, dict) else {}, str(path))
