"""The plan of one robustness evaluation: which attacks, at which budgets, with which noise levels,
and how an attack's rows are combined with the others'."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from robustlab.attacks.norms import Geometry, geometry
from robustlab.evaluation.runner import AttackFactory, AttackPlan, make_plans

if TYPE_CHECKING:
    from robustlab.evaluation.config import EvalConfig


@dataclass
class EvaluationPlan:
    """``K`` attacks (config order), ``M`` budgets, ``S`` noise levels of one evaluation.

    ``eps``: the distinct budgets in increasing order, pixel units of ``norm``; ``sigmas``: Gaussian
    noise standard deviations, config order; ``per_attack``: ``"standalone"`` or ``"cumulative"``
    (see :mod:`robustlab.evaluation.robust`). ``minimal_idx`` lists the indices ``k`` of the
    minimal-perturbation attacks, ``geom`` measures perturbations in ``norm``.
    """

    attacks: list[AttackPlan]
    eps: list[float]
    sigmas: list[float]
    norm: str
    early_exit: bool
    per_attack: str
    minimal_idx: list[int] = field(init=False)
    geom: Geometry = field(init=False)

    def __post_init__(self) -> None:
        self.geom = geometry(self.norm)
        self.minimal_idx = [k for k, p in enumerate(self.attacks) if p.minimal]

    @classmethod
    def from_config(cls, cfg: EvalConfig, factory: AttackFactory | None = None) -> EvaluationPlan:
        """The plan of ``cfg`` (attacks built by ``factory``, default :func:`robustlab.attacks.build_attack`)."""
        return cls(
            attacks=make_plans(cfg, factory),
            eps=sorted({float(e) for e in cfg.eps}),
            sigmas=[float(s) for s in cfg.noise_sigma],
            norm=cfg.norm,
            early_exit=cfg.early_exit,
            per_attack=cfg.per_attack,
        )

    @property
    def names(self) -> list[str]:
        """The attacks' names, in plan order."""
        return [p.name for p in self.attacks]

    @property
    def standalone(self) -> bool:
        """Each attack's rows count only its own smaller budgets as known (not the earlier attacks')."""
        return self.per_attack == "standalone"
