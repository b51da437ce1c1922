"""How the evaluator builds, calls and checks attacks from :mod:`robustlab.attacks`.

An :class:`AttackPlan` turns one attack name of an :class:`~robustlab.config.EvalConfig` into
concrete attack objects per eps, batch and mode:

- eps-budgeted attacks (``fgsm``, ``pgd``, ``apgd-*``, ``square``, ``gaussian-noise``, ``uap``) get
  ``eps``, the evaluation's ``norm`` and, where the attack takes them, ``steps``/``alpha`` (PGD:
  ``alpha = alpha_ratio · eps``), ``restarts``, a per-call ``seed`` and, in early-exit mode,
  ``stop_on_success=True`` (a sample is frozen once fooled; only fooled samples change);
- minimal-perturbation attacks (``cw-l2``, ``deepfool``) run once, without eps;
- fitted attacks (``uap``: one universal perturbation) are fitted once per eps on the evaluated
  images before the batches are attacked (see :func:`fit_attacks`), then applied per row.

Which kind an attack is comes from its class (the ``minimal``, ``needs_fit``, ``whitebox`` and
``stepped`` flags of :class:`robustlab.attacks.base.Attack`, looked up through the attack registry),
so a new attack never edits the evaluator; a name the registry does not know (a custom factory's)
is an eps-budgeted attack with none of these capabilities.

``cfg.attack_params[name]`` overrides any of these defaults, except ``eps`` (the sweep's) and
``norm`` (the evaluation's threat model) for budgeted attacks. ``attack_params.uap.fit_epochs``
(default 1) is the number of passes over the evaluated images when fitting the UAP. Attack names
are matched like the registry does (:func:`robustlab.core.names.normalize`: case-insensitive,
``_`` = ``-``); ``torchattacks:<Class>`` names reach the torchattacks adapter, which gets
``eps``/``norm`` and, when the wrapped class takes both ``steps`` and ``alpha`` (torchattacks' PGD),
the evaluation's steps and alpha, so a library attack and ours are compared at the same settings;
otherwise its own defaults.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from robustlab.attacks.registry import TORCHATTACKS_PREFIX, attack_class
from robustlab.attacks.torchattacks_adapter import torchattacks_keywords
from robustlab.core.errors import RobustlabError
from robustlab.core.names import normalize
from robustlab.evaluation.config import EvalConfig

SANITY_ATTACKS = frozenset({"pgd", "square"})
"""Attacks the sanity pass runs even when not listed; ``attack_params`` may configure them."""

AttackFactory = Callable[..., Callable[..., Tensor]]

# tolerances for re-checking the threat model of an attack's output (float32 rounding is ~6e-8)
_LINF_TOL = 1e-5
_L2_RTOL = 1e-4


def default_factory() -> AttackFactory:
    """:func:`robustlab.attacks.build_attack`, imported lazily."""
    from robustlab.attacks import build_attack

    return build_attack


def registered_class(name: str) -> type | None:
    """The attack class the registry builds for ``name`` (``torchattacks:<Class>``: the adapter), or
    None for a name it does not know (a custom factory's attack)."""
    try:
        return attack_class(name)
    except RobustlabError:
        return None


def capability(name: str, flag: str) -> bool:
    """The capability ``flag`` (``minimal``, ``needs_fit``, ``whitebox``, ``stepped``) of attack
    ``name``'s class; False for names the registry does not know."""
    return bool(getattr(registered_class(name), flag, False))


def probe_attack(
    factory: AttackFactory, name: str, params: dict[str, Any]
) -> tuple[frozenset[str], str | None]:
    """``(constructor parameters, fixed norm or None)`` of attack ``name``, from an instance built
    with the user's ``params`` only."""
    probe = factory(name, **params)
    if hasattr(probe, "params"):
        accepted = frozenset(probe.params())
    else:
        sig = inspect.signature(type(probe).__init__)
        accepted = frozenset(p for p in sig.parameters if p != "self")
    accepted |= torchattacks_keywords(name)  # the adapter forwards the wrapped class's own keywords
    fixed = None if "norm" in accepted else getattr(probe, "norm", None)
    return accepted, fixed


def accepts_active(attack: Callable[..., Tensor]) -> bool:
    """True when ``attack(model, x, y, active=mask)`` is supported (attack only the masked rows,
    random draws made for the full batch)."""
    try:
        return "active" in inspect.signature(attack).parameters
    except (TypeError, ValueError):
        return False


@dataclass
class AttackPlan:
    """One attack of the evaluation: its name, kind and the parameters it will be built with."""

    name: str
    factory: AttackFactory
    accepted: frozenset[str]
    user_params: dict[str, Any] = field(default_factory=dict)
    fixed_norm: str | None = None
    fit_epochs: int = 1
    fitted: dict[float | None, Any] = field(default_factory=dict)
    norm: str = "linf"
    steps: int = 20
    alpha_ratio: float = 0.25
    restarts: int = 1

    @property
    def minimal(self) -> bool:
        """Minimal-perturbation attack (run once, without eps)."""
        return capability(self.name, "minimal")

    @property
    def needs_fit(self) -> bool:
        """The attack must be fitted on data before use (see :func:`fit_attacks`)."""
        return capability(self.name, "needs_fit")

    @property
    def whitebox(self) -> bool:
        """Per-input gradient (white-box) attack, compared against the black-box check's Square."""
        return capability(self.name, "whitebox")

    @property
    def stepped(self) -> bool:
        """Gets the evaluation's ``steps`` and ``alpha = alpha_ratio · eps``: attacks with a fixed step
        size (PGD), and torchattacks classes taking both ``steps`` and ``alpha``."""
        if self.name.startswith(TORCHATTACKS_PREFIX):
            return {"steps", "alpha"} <= self.accepted
        return capability(self.name, "stepped")

    def params(self, eps: float | None, seed: int, early_exit: bool) -> dict[str, Any]:
        """Constructor arguments for one call: defaults from the config, then the user's overrides."""
        p: dict[str, Any] = {}
        acc = self.accepted
        if eps is not None:
            p["eps"] = float(eps)
            if "norm" in acc:
                p["norm"] = self.norm
            if self.stepped:
                p["steps"] = self.steps
                p["alpha"] = self.alpha_ratio * float(eps)
        elif "norm" in acc and self.minimal:  # a minimal attack measuring in a chosen norm (DeepFool)
            p["norm"] = self.norm
        if "restarts" in acc:
            p["restarts"] = self.restarts
        if "seed" in acc:
            p["seed"] = int(seed % 2**31)
        if "stop_on_success" in acc:
            p["stop_on_success"] = early_exit
        p.update(self.user_params)
        return p

    def build(self, eps: float | None, seed: int, early_exit: bool) -> Callable[..., Tensor]:
        """A ready attack object (see :meth:`params`); for fitted attacks, the one fitted at ``eps``."""
        if self.needs_fit:
            if eps not in self.fitted:
                raise RobustlabError(f"attack {self.name} was not fitted for eps {eps}")
            return self.fitted[eps]
        return self.factory(self.name, **self.params(eps, seed, early_exit))

    def native_norm(self) -> str:
        """The norm the attack measures its own perturbations in (``l2`` for cw-l2)."""
        if self.fixed_norm is not None:
            return self.fixed_norm
        return str(self.user_params.get("norm", self.norm))


def make_plans(cfg: EvalConfig, factory: AttackFactory | None = None) -> list[AttackPlan]:
    """One :class:`AttackPlan` per attack of ``cfg.attacks`` (order kept, duplicates refused)."""
    factory = factory or default_factory()
    keys = [normalize(a) for a in cfg.attacks]
    if len(set(keys)) != len(keys):
        dup = next(a for a in keys if keys.count(a) > 1)
        raise RobustlabError(f"attack {dup!r} is listed twice in evaluate.attacks; list each attack once")
    unknown = {normalize(a) for a in cfg.attack_params} - set(keys) - SANITY_ATTACKS
    if unknown:
        raise RobustlabError(
            f"evaluate.attack_params names {sorted(unknown)[0]!r}, which is neither in evaluate.attacks "
            f"({', '.join(cfg.attacks) or 'none'}) nor a sanity attack ({', '.join(sorted(SANITY_ATTACKS))})"
        )
    plans = []
    user_params = {normalize(k): v for k, v in cfg.attack_params.items()}
    for name in keys:
        user = dict(user_params.get(name, {}))
        minimal = capability(name, "minimal")
        fit_epochs = user.pop("fit_epochs", 1) if capability(name, "needs_fit") else 1
        if "eps" in user and not minimal:
            raise RobustlabError(
                f"attack_params.{name}.eps: set the budgets with evaluate.eps, not per attack"
            )
        if not minimal and user.get("norm", cfg.norm) != cfg.norm:
            raise RobustlabError(
                f"attack_params.{name}.norm is {user['norm']!r} but the evaluation's norm is {cfg.norm!r}; "
                "a worst case over attacks needs one threat model (set evaluate.norm)"
            )
        if user.get("targeted"):
            raise RobustlabError(
                f"attack_params.{name}.targeted: robust accuracy is measured with untargeted attacks; "
                "remove 'targeted'"
            )
        accepted, fixed = probe_attack(factory, name, user)
        if fixed is not None and fixed != cfg.norm and not minimal:
            raise RobustlabError(
                f"attack {name} works in the {fixed} norm only, but evaluate.norm is {cfg.norm!r}; "
                f"remove it or set evaluate.norm to {fixed}"
            )
        plans.append(
            AttackPlan(
                name=name, factory=factory, accepted=accepted, user_params=user, fixed_norm=fixed,
                fit_epochs=fit_epochs, norm=cfg.norm, steps=cfg.steps, alpha_ratio=cfg.alpha_ratio,
                restarts=cfg.restarts,
            )
        )
    return plans


def fit_attacks(
    plans: list[AttackPlan], model: nn.Module, batches: Callable[[], Any], eps: list[float], seed: int,
    amp_context: Callable[[], Any],
) -> dict[tuple[int, float], float]:
    """Fit every fitted attack (UAP) once per positive eps on ``batches()`` (an iterable of
    ``(x, y)`` on the model's device); return the seconds each fit took, keyed ``(plan index, eps)``."""
    import time

    seconds = {}
    for k, plan in enumerate(plans):
        if not plan.needs_fit:
            continue
        for m, e in enumerate(eps):
            if e <= 0 or e in plan.fitted:
                continue
            t0 = time.perf_counter()
            attack = plan.factory(plan.name, **plan.params(e, seed + 1000 * k + m, early_exit=False))
            with amp_context():
                attack.fit(model, batches(), epochs=plan.fit_epochs)
            plan.fitted[e] = attack
            seconds[k, e] = time.perf_counter() - t0
    return seconds


def run_attack(
    attack: Callable[..., Tensor], model: nn.Module, x: Tensor, y: Tensor, active: Tensor
) -> Tensor:
    """Adversarial examples ``(B, ...)`` for the rows ``active`` ``(B,)`` of ``x``; other rows are ``x``.

    If the attack accepts ``active`` it gets the full batch and the mask (its random draws then do
    not depend on which rows are active); otherwise only the active rows are passed.
    """
    if accepts_active(attack):
        return attack(model, x, y, active=active)
    if bool(active.all()):
        return attack(model, x, y)
    idx = active.nonzero().squeeze(1)
    out = x.clone()
    out[idx] = attack(model, x[idx], y[idx]).to(x.dtype)
    return out


def check_threat_model(
    name: str, x: Tensor, x_adv: Tensor, eps: float | None, norm: str, norms: Tensor
) -> None:
    """Raise :class:`RobustlabError` when ``x_adv`` leaves [0, 1] or the ``eps`` ball (``norms`` = the
    per-sample perturbation norms in ``norm``). A violation is a bug in the attack, never rounded away."""
    if x_adv.shape != x.shape:
        raise RobustlabError(f"attack {name} returned shape {tuple(x_adv.shape)} for inputs {tuple(x.shape)}")
    if x_adv.numel() == 0:
        return
    lo, hi = (float(v) for v in torch.aminmax(x_adv.detach().float()))
    if lo < -_LINF_TOL or hi > 1 + _LINF_TOL:
        raise RobustlabError(f"attack {name} returned pixels in [{lo:.6g}, {hi:.6g}], outside [0, 1]")
    if eps is None or norms.numel() == 0:
        return
    limit = eps + _LINF_TOL if norm == "linf" else eps * (1 + _L2_RTOL) + _LINF_TOL
    worst = float(norms.max())
    if worst > limit:
        raise RobustlabError(
            f"attack {name} returned a perturbation of {norm} norm {worst:.6g} > eps {eps:.6g}; "
            "its threat-model projection is broken"
        )
