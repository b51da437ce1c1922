"""The classification lab's report sections: verdict, key numbers, configuration rows and the
robustness block (attack table, robustness and noise curves, per-class and confusion figures,
superclass, minimal perturbation, cross-domain, evaluation cost), rendered from the run folder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from robustlab.labs.classification import figures as figs
from robustlab.labs.classification import report_data as rd
from robustlab.report.context import RunData
from robustlab.report.format import eps_label, is_number
from robustlab.report.html import data_uri, render_fragment, safe_figure
from robustlab.report.section import Section

TEMPLATES = Path(__file__).parent / "templates"

#: the figures this lab's report draws itself from results.json (file names under figures/)
FIGURES = {
    "robustness_curve": "robustness_curve.png",
    "per_class": "per_class.png",
    "confusion": "confusion.png",
    "noise_curve": "noise_curve.png",
}

#: results.json keys the robustness sections show
CLAIMS = frozenset({
    "model", "defense", "clean_accuracy", "test_size", "n_samples", "robust", "worst_case", "noise", "per_class",
    "superclass", "confusion", "min_perturbation", "eval_seconds", "early_exit", "cross_domain", "norm", "attacks",
    "eps", "sanity", "sanity_seconds", "evaluate_config", "class_names", "test_loss", "per_attack",
    "per_sample_file", "eval_processes", "evaluated_checkpoint",
})  # fmt: skip


def _class_names(run: RunData, k: int) -> list[str] | None:
    for source in (run.results.get("class_names"), run.results.get("per_class")):
        if isinstance(source, Sequence | Mapping) and not isinstance(source, str) and len(source) == k:
            return [str(n) for n in source]
    return None


def draw_figures(run: RunData, out_dir: Path) -> dict[str, Path]:
    """Draw the robustness figures of ``run`` into ``out_dir``; ``{name: path}`` of those drawn."""
    res = run.results
    out: dict[str, Path | None] = {}
    out["robustness_curve"] = safe_figure(
        figs.robustness_curve,
        rd.robust_rows(run),
        out_dir / FIGURES["robustness_curve"],
        worst_case=res.get("worst_case") if isinstance(res.get("worst_case"), list) else None,
        clean_accuracy=res.get("clean_accuracy"),
    )
    if isinstance(res.get("per_class"), Mapping):
        out["per_class"] = safe_figure(figs.per_class_bars, res["per_class"], out_dir / FIGURES["per_class"])
    conf = res.get("confusion")
    if isinstance(conf, Mapping):
        clean = conf.get("clean") or conf.get("adversarial")
        k = len(clean) if isinstance(clean, list) else 0
        out["confusion"] = safe_figure(
            figs.confusion_matrices, conf, out_dir / FIGURES["confusion"], class_names=_class_names(run, k)
        )
    if isinstance(res.get("noise"), list):
        out["noise_curve"] = safe_figure(
            figs.noise_curve, res["noise"], out_dir / FIGURES["noise_curve"], clean_accuracy=res.get("clean_accuracy"),
        )
    return {k: v for k, v in out.items() if v is not None}


def _confusion_eps(run: RunData) -> str | None:
    conf = run.results.get("confusion")
    if isinstance(conf, Mapping) and is_number(conf.get("eps")):
        return eps_label(conf["eps"], str(run.results.get("norm") or "linf"))
    return None


def robustness_sections(run_dir: Path, config: dict[str, Any], results: dict[str, Any]) -> list[Section]:
    """The classification sections of ``run_dir``'s report (its figures are (re)drawn into ``figures/``)."""
    run = RunData(path=Path(run_dir), config=config, metrics=[], results=results)  # the shell read the files
    drawn = draw_figures(run, run.path / "figures")
    uris = {k: data_uri(v) for k, v in drawn.items()}
    html = render_fragment(
        TEMPLATES, "robustness.html",
        attack_table=rd.attack_table(run),
        per_attack=run.results.get("per_attack", "cumulative"),
        attack_details=rd.attack_details(run),
        figures=uris,
        per_class=rd.per_class_rows(run),
        superclass=rd.superclass(run),
        noise=rd.noise_rows(run),
        min_perturbation=rd.min_perturbation(run),
        cross_domain=rd.cross_domain(run),
        cost=rd.evaluation_cost(run),
        standalone=rd.standalone(run),
        confusion_eps=_confusion_eps(run),
    )
    return [Section(
        title="Robustness", key="robustness", html=html, cards=rd.key_numbers(run), config_rows=rd.config_rows(run),
        verdict=rd.verdict(run), claims=CLAIMS, embedded=[run.path / "figures" / f for f in FIGURES.values()],
    )]
