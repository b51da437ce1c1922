"""Run any torchattacks attack through robustlab's interface (torchattacks is a dev-only dependency)."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from robustlab.attacks.base import Attack, AttackContext
from robustlab.core.errors import RobustlabError


def _torchattacks() -> Any:
    try:
        import torchattacks
    except ImportError:
        raise RobustlabError(
            "torchattacks is not installed; install it with `pip install torchattacks` "
            "(or `pip install -e '.[dev]'`) to use the torchattacks adapter"
        ) from None
    return torchattacks


def _resolve(attack: str | type) -> type:
    if isinstance(attack, type):
        return attack
    if not isinstance(attack, str):
        raise RobustlabError(f"attack must be a torchattacks class or its name, got {type(attack).__name__}")
    ta = _torchattacks()
    names = {n.lower(): n for n in dir(ta) if isinstance(getattr(ta, n), type) and n[0].isupper()}
    key = attack.lower()
    if key not in names or not issubclass(getattr(ta, names[key]), ta.attack.Attack):
        allowed = sorted(n for n in names.values() if issubclass(getattr(ta, n), ta.attack.Attack))
        raise RobustlabError(f"unknown torchattacks attack {attack!r}; choose one of: {', '.join(allowed)}")
    return getattr(ta, names[key])


def wrapped_params(attack: str | type) -> frozenset[str]:
    """Constructor keywords of the torchattacks class ``attack`` (name or class), ``model`` excluded:
    ``wrapped_params("PGD")`` → ``{"eps", "alpha", "steps", "random_start"}``."""
    sig = inspect.signature(_resolve(attack).__init__)
    return frozenset(p for p, v in sig.parameters.items()
                     if p not in ("self", "model") and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD))


def torchattacks_keywords(name: str) -> frozenset[str]:
    """:func:`wrapped_params` of the class named by a registry name ``"torchattacks:<Class>"``; empty for
    any other name (robustlab's own attacks), without importing torchattacks."""
    prefix, _, cls = name.strip().partition(":")
    return wrapped_params(cls.strip()) if prefix.lower() == "torchattacks" and cls.strip() else frozenset()


class TorchattacksAttack(Attack):
    """Adapter: ``TorchattacksAttack("PGD", eps=8/255, alpha=2/255, steps=10)(model, x, y)``.

    The torchattacks class is built per call on the given model with ``**kwargs``; its own
    keyword names are used (see its documentation). robustlab's guarantees are added around it:
    model modes restored and parameter ``.grad`` fields put back as they were (some torchattacks
    attacks call ``backward()``), the global RNG untouched (the attack runs under
    ``torch.random.fork_rng`` seeded with ``seed``), the input copied, and — when ``eps`` is among
    the kwargs — the output clipped into the ``norm`` ball (``norm`` defaults to "l2" for classes
    whose name contains "L2", else "linf").

    Args:
        attack: a torchattacks attack class or its (case-insensitive) name, e.g. "PGD", "CW".
        targeted: if True, ``y`` are target labels (torchattacks' ``set_mode_targeted_by_label``).
        norm: the threat model for ``eps`` ("linf"/"l2"), or None to infer it from the class name.
        seed: seed of torchattacks' global-RNG draws (restored afterwards); None: fresh entropy.
        **kwargs: arguments of the torchattacks class (not ``model``).

    Reference: Kim, "Torchattacks: A PyTorch Repository for Adversarial Attacks", arXiv:2010.01950.
    """

    name = "torchattacks"
    description = "Adapter: any torchattacks attack (attack=NAME + its kwargs) under robustlab's guarantees"
    reference = "Kim, Torchattacks: A PyTorch Repository for Adversarial Attacks, arXiv:2010.01950"
    # The wrapped class is known per instance only, so the adapter claims no capability: the evaluator
    # runs it as an eps-budgeted attack, does not count it among the white-box attacks of the
    # black-box check (torchattacks has black-box attacks too), and passes it the evaluation's steps
    # and alpha when the wrapped class takes both.
    minimal = False
    needs_fit = False
    whitebox = False
    stepped = False

    def __init__(
        self,
        attack: str | type,
        *,
        targeted: bool = False,
        norm: str | None = None,
        seed: int | None = 0,
        **kwargs: Any,
    ) -> None:
        self.cls = _resolve(attack)
        self.attack = self.cls.__name__
        sig = inspect.signature(self.cls.__init__)
        allowed = [p for p in sig.parameters if p not in ("self", "model")]
        has_var_kw = any(p.kind == p.VAR_KEYWORD for p in sig.parameters.values())
        for k in kwargs:
            if k not in allowed and not has_var_kw:
                raise RobustlabError(
                    f"unknown parameter {k!r} for torchattacks.{self.attack}; allowed: {', '.join(allowed) or '(none)'}"
                )
        self.kwargs = dict(kwargs)
        if norm is None:
            norm = "l2" if "L2" in self.attack else "linf"
        eps = kwargs.get("eps")
        self._init_common(eps=eps, norm=norm, targeted=targeted, seed=seed, eps_default=False)

    def params(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "targeted": self.targeted,
            "norm": self.norm,
            "seed": self.seed,
            **self.kwargs,
        }

    def _run(self, ctx: AttackContext) -> Tensor:
        model = ctx.model
        if not isinstance(model, nn.Module):
            raise RobustlabError("the torchattacks adapter needs the model to be a torch.nn.Module")
        atk = self.cls(model, **self.kwargs)
        if self.targeted:
            atk.set_mode_targeted_by_label(quiet=True)
        x = ctx.x.to(ctx.input_dtype)
        assert ctx.y is not None
        dev = x.device
        devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
        grads = [(p, p.grad) for p in model.parameters()]
        for p, _ in grads:  # so that a backward() inside torchattacks cannot accumulate into them
            p.grad = None
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed if self.seed is not None else ctx.gen.initial_seed())
                out = atk(x, ctx.y)
        finally:
            for p, g in grads:
                p.grad = g
        if isinstance(out, tuple | list):
            out = out[0]
        return out.detach().to(ctx.x.dtype)
