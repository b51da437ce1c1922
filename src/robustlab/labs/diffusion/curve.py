"""DreamBooth's overfitting curve: at every validation point of a fine-tuning run, the model as it is
then is sampled and judged (concept fidelity, language drift, copying), so the step to keep is chosen
from the curve instead of guessed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

from robustlab.core import distributed as D
from robustlab.core.modes import eval_mode
from robustlab.labs.diffusion import studies
from robustlab.labs.diffusion.config import DiffusionConfig
from robustlab.labs.diffusion.judges import JudgeCNN, digits_split, train_judge, train_style_detector
from robustlab.training.callbacks import Callback

if TYPE_CHECKING:
    from robustlab.training.trainer import Trainer

CURVE_KEYS = ("concept_fidelity", "language_drift", "copy_fraction", "class_digit")
"""The numbers of :func:`studies.dreambooth_row` each validation point logs (prefixed ``db_``)."""


def judges(cfg: DiffusionConfig) -> tuple[JudgeCNN, JudgeCNN]:
    """The label judge and the style detector of a run, trained on the real digits from the run's
    seed (the global RNG is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        x, y = digits_split("train")
        judge = train_judge(x, y, 10, seed=cfg.seed, epochs=cfg.evaluate.judge_epochs)
        style = train_style_detector(x[y == 3], seed=cfg.seed)
    return judge, style


class DreamBoothCurve(Callback):
    """Adds ``db_concept_fidelity``, ``db_language_drift``, ``db_copy_fraction`` and ``db_class_digit``
    (see :func:`studies.dreambooth_row`) to every validation record of a DreamBooth run on the digits,
    from ``curve_per_prompt`` samples of the instance and the class prompt at the audit's scale, steps
    and seed (the same noise at every point, so the curve compares like with like). Computed on the
    main process; the training RNG is not touched."""

    name = "dreambooth_curve"
    directions: ClassVar[dict[str, bool]] = {"db_concept_fidelity": True, "db_language_drift": False,
                                             "db_copy_fraction": False, "db_class_digit": True}

    def __init__(self, cfg: DiffusionConfig, instance: torch.Tensor) -> None:
        self.cfg, self.instance = cfg, instance
        self._judges: tuple[JudgeCNN, JudgeCNN] | None = None

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> dict[str, Any]:
        if not D.is_main():
            return {}
        if self._judges is None:
            self._judges = judges(self.cfg)
        judge, style = self._judges
        d, e = self.cfg.data, self.cfg.evaluate
        model = trainer.model
        with eval_mode(model), torch.random.fork_rng(devices=[]):
            sks = model.generate([d.instance_prompt] * e.curve_per_prompt, e.dreambooth_scale, e.steps, e.sample_seed)
            cls = model.generate([d.class_prompt] * e.curve_per_prompt, e.dreambooth_scale, e.steps,
                                 e.sample_seed + 1)
        xt, yt = digits_split("test")
        row = studies.dreambooth_row("curve", sks, cls, self.instance, style, judge, None, xt, yt)
        return {f"db_{k}": row[k] for k in CURVE_KEYS}


def curve_rows(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The curve's rows ``{step, concept_fidelity, language_drift, copy_fraction, class_digit}`` from a
    run's metrics log (records without the curve's numbers are skipped)."""
    rows = []
    for r in metrics:
        if all(f"db_{k}" in r for k in CURVE_KEYS) and "step" in r:
            rows.append({"step": int(r["step"]), **{k: float(r[f"db_{k}"]) for k in CURVE_KEYS}})
    return sorted(rows, key=lambda r: r["step"])


def curve_section(metrics: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``{"rows", "chosen_step", "rule"}`` of a run's curve (None when it logged none); the step is
    :func:`studies.overfitting_choice` over the rows."""
    rows = curve_rows(metrics)
    if not rows:
        return None
    return {"rows": rows, "chosen_step": studies.overfitting_choice(rows),
            "rule": (f"earliest step with concept fidelity ≥ {studies.FIDELITY_RATIO:g} × the curve's best, language "
                     f"drift ≤ {studies.MAX_DRIFT:g} and copying ≤ {studies.MAX_COPYING:g}")}
