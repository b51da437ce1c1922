"""Self-contained HTML reports: one file, images embedded as base64, inline CSS, no script and
nothing loaded from the network, so a report opens anywhere (e-mail attachment, air-gapped box).

:func:`build_report` renders one run folder into its ``report.html`` (atomically) and never fails
on a missing section; :mod:`robustlab.report.compare` renders several runs side by side.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup

import robustlab
from robustlab.core.errors import RobustlabError
from robustlab.core.io import atomic_write_text
from robustlab.core.progress import log
from robustlab.report import context as ctx
from robustlab.report.format import eps_label, norm_label, num, pct, seconds
from robustlab.report.section import Section
from robustlab.report.sections import other_sections
from robustlab.viz import training_curves

TEMPLATES = Path(__file__).parent / "templates"
MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}

# titles of the figures that the classification lab's explain stage writes; shown first, in this order
EXPLAIN_TITLES = {
    "gradcam": "Grad-CAM: where the model looks, on clean and adversarial images",
    "umap": "UMAP of penultimate features (train, test, adversarial test)",
    "adversarial_grid": "Adversarial examples and their amplified perturbations",
}
TRAINING_CURVES = "training_curves.png"


def render(template: str, template_dir: Path | None = None, **values: Any) -> str:
    """Render ``<template_dir>/<template>`` (which may extend the shell's ``base.html``), or the shell's
    own ``templates/<template>``, with autoescaping on (every value is HTML-escaped)."""
    return _env(template_dir).get_template(template).render(**values)


def render_fragment(template_dir: Path, template: str, **values: Any) -> Markup:
    """A lab's HTML fragment for a :class:`~robustlab.report.section.Section` (values escaped)."""
    return Markup(render(template, template_dir=template_dir, **values))


def _env(template_dir: Path | None = None) -> Environment:
    dirs = [str(template_dir)] if template_dir is not None else []
    loader = FileSystemLoader([*dirs, str(TEMPLATES)])
    env = Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(pct=pct, num=num, seconds=seconds, eps_label=eps_label, norm_label=norm_label)
    return env


def data_uri(path: str | Path) -> str | None:
    """The image at ``path`` as a ``data:<mime>;base64,...`` URI, or ``None`` if it is missing or not
    a raster image (png, jpeg, gif, webp)."""
    p = Path(path)
    mime = MIME.get(p.suffix.lower())
    if mime is None or not p.is_file():
        return None
    try:
        payload = base64.b64encode(p.read_bytes()).decode("ascii")
    except OSError:
        return None
    return f"data:{mime};base64,{payload}"


def safe_figure(draw: Callable[..., Path | None], *args: Any, **kwargs: Any) -> Path | None:
    """Draw a figure; log and return ``None`` instead of failing the report on odd data."""
    try:
        return draw(*args, **kwargs)
    except Exception as e:  # a bad section must never cost the whole report
        log.warning("report: could not draw %s: %s", getattr(draw, "__name__", "figure"), e)
        return None


def inside(path: Path, root: Path) -> bool:
    """True when ``path`` (resolved) lies inside the folder ``root``."""
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def _resolve_figure(run_path: Path, rel: Any) -> Path | None:
    """A figure path from results' ``figures`` (relative to the run folder or to ``figures/``),
    only when it lies inside the run folder."""
    if not isinstance(rel, str) or not rel:
        return None
    for cand in (run_path / rel, run_path / "figures" / rel):
        if cand.is_file() and inside(cand, run_path):
            return cand
    return None


def gallery(run: ctx.RunData, exclude: set[Path]) -> list[dict[str, str]]:
    """Figures recorded in results' ``figures`` plus any other image in ``figures/``, each embedded
    once: ``[{name, title, uri}]`` with the explain figures first."""
    # figures shown by their own sections are left out, also a stale one whose data is gone
    seen = {p.resolve() for p in exclude} | {(run.path / "figures" / TRAINING_CURVES).resolve()}
    items: list[tuple[int, dict[str, str]]] = []
    recorded = run.results.get("figures")
    entries: list[tuple[str, Path | None]] = []
    if isinstance(recorded, Mapping):
        entries += [(str(name), _resolve_figure(run.path, rel)) for name, rel in recorded.items()]
    fig_dir = run.path / "figures"
    if fig_dir.is_dir():
        entries += [(p.stem, p) for p in sorted(fig_dir.iterdir()) if p.suffix.lower() in MIME]
    order = list(EXPLAIN_TITLES)
    for name, path in entries:
        if path is None or path.resolve() in seen:
            continue
        uri = data_uri(path)
        if uri is None:
            continue
        seen.add(path.resolve())
        title = EXPLAIN_TITLES.get(name, name.replace("_", " ").replace("-", " "))
        rank = order.index(name) if name in order else len(order)
        items.append((rank, {"name": name, "title": title, "uri": uri}))
    items.sort(key=lambda t: t[0])
    return [it for _, it in items]


def footer() -> dict[str, str]:
    return {"version": robustlab.__version__, "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def build_report(run_dir: str | Path, sections: Sequence[Section] = (), summary: str | None = None) -> Path:
    """Render ``run_dir/report.html`` (atomically) from the run's ``config.yaml``, ``metrics.jsonl``,
    ``results.json`` and ``figures/``, with the lab's ``sections``, and return its path.

    The page holds: a one-line verdict (the first section's, else ``summary``), the sanity flags (or a
    green "no sanity flags"), the configuration (shared rows and the sections' own), the sections'
    headline cards, their bodies, the training curves, whatever else results.json holds (as generic
    tables), the remaining figures and a footer. Missing parts are left out; the training-curve figure
    is written to ``figures/`` as well. Raises :class:`RobustlabError` if ``run_dir`` is not a folder.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RobustlabError(f"cannot build a report: {path} is not a folder")
    run = ctx.load_run(path)
    curves = safe_figure(training_curves, run.metrics, path / "figures" / TRAINING_CURVES)
    extra_rows = [row for sec in sections for row in sec.config_rows]
    claimed = set().union(*(sec.claims for sec in sections)) if sections else set()
    shown = [p for sec in sections for p in sec.embedded] + ([curves] if curves else [])
    lab_sections = [{
        "title": sec.title, "html": sec.html, "note": sec.note, "kv": sec.kv,
        "table": vars(sec.table) if sec.table is not None else None,
        "figures": [(caption, data_uri(p)) for caption, p in sec.figures if data_uri(p)],
    } for sec in sections]
    shown += [p for sec in sections for _, p in sec.figures]
    page = render(
        "report.html",
        title=run.name,
        verdict=verdict_line(run, next((s.verdict for s in sections if s.verdict), None) or summary),
        flags=ctx.flags(run),
        smoke=run.smoke,
        has_results=bool(run.results),
        config_rows=ctx.config_rows(run, extra_rows) + ctx.tail_rows(run),
        key_numbers=[card for sec in sections for card in sec.cards],
        lab_sections=lab_sections,
        figures={"training_curves": data_uri(curves) if curves else None},
        gallery=gallery(run, exclude=set(shown)),
        other=other_sections(run, claimed),
        footer=footer(),
    )
    out = atomic_write_text(path / "report.html", page)
    log.info("report written to %s", out)
    return out


def verdict_line(run: ctx.RunData, text: str | None) -> str:
    """The page's verdict: ``text`` (what the run is and how it did), then whether sanity flags need
    attention; prefixed with a warning for smoke runs."""
    text = text or run.name
    fl = ctx.flags(run)
    serious = [f for f in fl if f["severity"] in ("error", "warning")]
    if serious:
        plural = "s" if len(serious) > 1 else ""
        text += f". {len(serious)} sanity flag{plural}: read them before trusting these numbers."
    else:
        text += "."
    if run.smoke:
        text = "Smoke run on fabricated data (numbers are meaningless). " + text
    return text
