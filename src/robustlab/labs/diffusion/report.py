"""The diffusion lab's report sections, from a run's results alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robustlab.report.section import Section, Table

GUIDANCE_COLUMNS = ("judge_accuracy", "fd", "precision", "recall", "diversity")
DREAMBOOTH_COLUMNS = ("concept_fidelity", "concept_digit", "language_drift", "copy_fraction", "copy_distance",
                      "diversity", "other_accuracy", "other_fd")
SUBJECT_COLUMNS = ("instance_distance", "copy_fraction", "diversity", "class_drift")
CURVE_COLUMNS = ("concept_fidelity", "language_drift", "copy_fraction", "class_digit")


def _f(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, int | float) and not isinstance(v, bool) else "–"


def run_sections(run_dir: Path, results: dict[str, Any]) -> list[Section]:
    figures = {k: run_dir / v for k, v in (results.get("figures") or {}).items()}
    out = []
    g = results.get("guidance")
    if isinstance(g, dict) and g.get("rows"):
        rows = [[_f(r["scale"], 1) + (f" (rescale {r['rescale']:g})" if r.get("rescale") else ""),
                 *(_f(r.get(k)) for k in GUIDANCE_COLUMNS)] for r in g["rows"]]
        out.append(Section(
            title="Classifier-free guidance", key="diffusion-guidance",
            table=Table(["scale", *GUIDANCE_COLUMNS], rows, [False] + [True] * len(GUIDANCE_COLUMNS)),
            note=f"{g.get('per_prompt')} samples per digit prompt, {g.get('steps')} steps of {g.get('sampler')}, "
                 f"seed {g.get('seed')}. Convention: {g.get('convention')}. Judge: a CNN trained on the real digits "
                 f"(its label accuracy = label following); FD on its features (not FID), floor real test vs real "
                 f"train = {_f(g.get('fd_floor'))}; precision/recall: improved k-NN manifolds (k = 3); diversity: "
                 f"intra-class spread relative to real. Balanced scale (stated rule in studies.balanced_scale): "
                 f"{g.get('balanced_scale')}.",
            figures=[(k, figures[k]) for k in ("guidance_curves", "guidance_grids") if k in figures],
            claims=frozenset({"guidance"})))
    db = results.get("dreambooth")
    if isinstance(db, dict) and db.get("after"):
        proxies = "measures" in db
        columns = SUBJECT_COLUMNS if proxies else DREAMBOOTH_COLUMNS
        rows = [[name, *(_f(db[name].get(k)) for k in columns)] for name in ("before", "after")
                if isinstance(db.get(name), dict)]
        meaning = ("instance_distance: instance-prompt samples to the nearest instance image; class_drift: "
                   "class-prompt samples to the starting model's from the same seeds (1 = as far as another seed); "
                   f"{db['measures']}" if proxies else
                   "concept_fidelity: instance-prompt samples the style detector calls the subject's style; "
                   "language_drift: class-prompt samples it calls the subject's style")
        out.append(Section(
            title="DreamBooth", key="diffusion-dreambooth",
            table=Table(["model", *columns], rows, [False] + [True] * len(columns)),
            note=f"Instance prompt {db.get('instance_prompt')!r} on {db.get('instance_images')} instance images, class "
                 f"prompt {db.get('class_prompt')!r}, prior preservation {db.get('prior_preservation')}, sampled at "
                 f"scale {db.get('scale')}. {meaning}; copying: samples nearer an instance image than the stated "
                 "threshold.",
            figures=[("dreambooth", figures["dreambooth"])] if "dreambooth" in figures else [],
            claims=frozenset({"dreambooth"})))
        curve = db.get("curve")
        if isinstance(curve, dict) and curve.get("rows"):
            out.append(Section(
                title="DreamBooth overfitting curve", key="diffusion-dreambooth-curve",
                table=Table(["step", *CURVE_COLUMNS], [[str(r["step"]), *(_f(r.get(k)) for k in CURVE_COLUMNS)]
                                                       for r in curve["rows"]], [True] * (1 + len(CURVE_COLUMNS))),
                note=f"Scored at every validation point of fine-tuning. Step to keep: {curve.get('chosen_step')} "
                     f"({curve.get('rule')}).",
                claims=frozenset({"dreambooth"})))
    return out
