"""A comparison of runs of any lab: one row per run with its headline line, every run's sanity flags
and training curves, as a self-contained HTML page or Markdown."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from robustlab.core.errors import RobustlabError
from robustlab.core.io import atomic_write_text
from robustlab.core.progress import log
from robustlab.report import context as ctx
from robustlab.report.html import data_uri, footer, render, safe_figure
from robustlab.viz import training_curves


def load_runs(run_dirs: Sequence[str | Path]) -> list[ctx.RunData]:
    """The run folders read for a comparison; a one-line error when there are none or one is not a folder."""
    if not run_dirs:
        raise RobustlabError("nothing to compare: give at least one run folder")
    for d in run_dirs:
        if not Path(d).is_dir():
            raise RobustlabError(f"cannot compare: {d} is not a folder")
    return [ctx.load_run(d) for d in run_dirs]


def overview_report(
    run_dirs: Sequence[str | Path], summaries: Sequence[str], out: str | Path, title: str | None = None
) -> Path:
    """Write one page comparing ``run_dirs`` (``summaries[i]``: run i's headline line) to ``out``."""
    runs = load_runs(run_dirs)
    rows = [{"name": r.name, "dataset": ctx.dataset_name(r), "summary": s, "smoke": r.smoke}
            for r, s in zip(runs, summaries, strict=True)]
    with tempfile.TemporaryDirectory(prefix="robustlab-compare-") as tmp:
        curves = []
        for i, run in enumerate(runs):
            p = safe_figure(training_curves, run.metrics, Path(tmp) / f"train_{i}.png", title=run.name)
            if p is not None:
                curves.append({"name": run.name, "uri": data_uri(p)})
    page = render(
        "overview.html", title=title or f"Comparison of {len(runs)} run{'s' if len(runs) != 1 else ''}",
        rows=rows, flags=[{"name": r.name, "flags": ctx.flags(r), "smoke": r.smoke} for r in runs],
        curves=curves, footer=footer(),
    )
    path = atomic_write_text(Path(out), page)
    log.info("comparison written to %s", path)
    return path


def overview_markdown(run_dirs: Sequence[str | Path], summaries: Sequence[str], title: str | None = None) -> str:
    """The same comparison as a Markdown table."""
    runs = load_runs(run_dirs)
    lines = [f"# {title or 'Comparison'}", "", "| run | dataset | results |", "|---|---|---|"]
    lines += [f"| {r.name} | {ctx.dataset_name(r)} | {s} |" for r, s in zip(runs, summaries, strict=True)]
    return "\n".join(lines) + "\n"
