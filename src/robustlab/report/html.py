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

import robustlab
from robustlab.core.errors import RobustlabError
from robustlab.core.io import atomic_write_text
from robustlab.core.progress import log
from robustlab.report import context as ctx
from robustlab.report import figures as figs
from robustlab.report import sections as sec
from robustlab.report.format import eps_label, is_number, norm_label, num, pct, seconds

TEMPLATES = Path(__file__).parent / "templates"
MIME = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
}

# figures the report draws itself from metrics.jsonl / results.json (file names under figures/)
STANDARD_FIGURES = {
    "training_curves": "training_curves.png",
    "robustness_curve": "robustness_curve.png",
    "per_class": "per_class.png",
    "confusion": "confusion.png",
    "noise_curve": "noise_curve.png",
}
# titles of the figures that ``robustlab.explain`` writes; shown first, in this order
EXPLAIN_TITLES = {
    "gradcam": "Grad-CAM: where the model looks, on clean and adversarial images",
    "umap": "UMAP of penultimate features (train, test, adversarial test)",
    "adversarial_grid": "Adversarial examples and their amplified perturbations",
}


def render(template: str, **values: Any) -> str:
    """Render ``templates/<template>`` with autoescaping on (every value is HTML-escaped)."""
    return _env().get_template(template).render(**values)


def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, trim_blocks=True, lstrip_blocks=True)
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


def _class_names(run: ctx.RunData, k: int) -> list[str] | None:
    for source in (run.results.get("class_names"), run.results.get("per_class")):
        if isinstance(source, Sequence | Mapping) and not isinstance(source, str) and len(source) == k:
            return [str(n) for n in source]
    return None


def draw_standard_figures(run: ctx.RunData, out_dir: Path) -> dict[str, Path]:
    """Draw the report's own figures of ``run`` into ``out_dir``; ``{name: path}`` of those drawn."""
    res = run.results
    out: dict[str, Path | None] = {}
    f = STANDARD_FIGURES
    out["training_curves"] = safe_figure(figs.training_curves, run.metrics, out_dir / f["training_curves"])
    out["robustness_curve"] = safe_figure(
        figs.robustness_curve,
        ctx.robust_rows(run),
        out_dir / f["robustness_curve"],
        worst_case=res.get("worst_case") if isinstance(res.get("worst_case"), list) else None,
        clean_accuracy=res.get("clean_accuracy"),
    )
    if isinstance(res.get("per_class"), Mapping):
        out["per_class"] = safe_figure(figs.per_class_bars, res["per_class"], out_dir / f["per_class"])
    conf = res.get("confusion")
    if isinstance(conf, Mapping):
        clean = conf.get("clean") or conf.get("adversarial")
        k = len(clean) if isinstance(clean, list) else 0
        out["confusion"] = safe_figure(
            figs.confusion_matrices, conf, out_dir / f["confusion"], class_names=_class_names(run, k)
        )
    if isinstance(res.get("noise"), list):
        out["noise_curve"] = safe_figure(
            figs.noise_curve,
            res["noise"],
            out_dir / f["noise_curve"],
            clean_accuracy=res.get("clean_accuracy"),
        )
    return {k: v for k, v in out.items() if v is not None}


def gallery(run: ctx.RunData, exclude: set[Path]) -> list[dict[str, str]]:
    """Figures recorded in results' ``figures`` plus any other image in ``figures/``, each embedded
    once: ``[{name, title, uri}]`` with the explain figures first."""
    # the report's own figures have their sections; a stale one (its data gone) is not shown either
    seen = {p.resolve() for p in exclude} | {(run.path / "figures" / n).resolve() for n in STANDARD_FIGURES.values()}
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


def _confusion_eps(run: ctx.RunData) -> str | None:
    conf = run.results.get("confusion")
    if isinstance(conf, Mapping) and is_number(conf.get("eps")):
        return eps_label(conf["eps"], str(run.results.get("norm") or "linf"))
    return None


def footer() -> dict[str, str]:
    return {"version": robustlab.__version__, "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}


def build_report(run_dir: str | Path) -> Path:
    """Render ``run_dir/report.html`` (atomically) from the run's ``config.yaml``, ``metrics.jsonl``,
    ``results.json`` and ``figures/``, and return its path.

    The page holds: a one-line verdict, the sanity flags (or a green "no sanity flags"), the
    configuration, headline numbers, the robustness table (clean / each attack / worst case per eps,
    in %), training, robustness, noise, per-class and confusion figures, superclass, minimal
    perturbation and cross-domain tables, the explain figures and the evaluation cost. Missing
    sections are left out. The report's own figures are written to ``figures/`` as well.
    Raises :class:`RobustlabError` if ``run_dir`` is not a folder.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RobustlabError(f"cannot build a report: {path} is not a folder")
    run = ctx.load_run(path)
    standard = draw_standard_figures(run, path / "figures")
    uris = {k: data_uri(v) for k, v in standard.items()}
    page = render(
        "report.html",
        title=run.name,
        verdict=ctx.verdict(run),
        flags=ctx.flags(run),
        smoke=run.smoke,
        has_results=bool(run.results),
        config_rows=ctx.config_rows(run),
        key_numbers=ctx.key_numbers(run),
        attack_table=ctx.attack_table(run),
        per_attack=run.results.get("per_attack", "cumulative"),
        attack_details=ctx.attack_details(run),
        figures=uris,
        per_class=sec.per_class_rows(run),
        superclass=sec.superclass(run),
        noise=sec.noise_rows(run),
        min_perturbation=sec.min_perturbation(run),
        cross_domain=sec.cross_domain(run),
        gallery=gallery(run, exclude=set(standard.values())),
        cost=sec.evaluation_cost(run),
        standalone=sec.standalone(run),
        other=sec.other_sections(run),
        confusion_eps=_confusion_eps(run),
        footer=footer(),
    )
    out = atomic_write_text(path / "report.html", page)
    log.info("report written to %s", out)
    return out
