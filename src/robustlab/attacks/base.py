"""The attack base class: argument checks, model-mode handling, seeding, AMP-aware gradients, and the
final enforcement of the threat model.

An :class:`Attack` is a configuration (no model inside). ``attack(model, x, y)`` returns
adversarial examples and promises, for every attack:

- ``x_adv`` has the shape, dtype and device of ``x``, does not require grad, and lies in
  ``[0, 1]`` and (when the attack has an ``eps``) in the ``norm`` ball of radius ``eps`` around
  ``x`` — enforced once more at the end, so float rounding cannot break the contract;
- the model is left as it was: every submodule's ``training`` flag is restored, no parameter
  ``.grad`` is created (gradients are taken with ``torch.autograd.grad`` w.r.t. the input only),
  batch-norm statistics are not updated (the attack runs in eval mode), ``x`` is not mutated;
- the global RNG is not touched; randomness comes from a ``torch.Generator`` seeded with ``seed``
  on every call (``seed=None`` draws fresh entropy), so the same seed gives the same output;
- under ``torch.autocast`` the model's forward runs in the autocast dtype, while the perturbation,
  its steps and projections stay in float32 (float64 inputs stay float64).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from robustlab.attacks.losses import LossFn
from robustlab.attacks.norms import geometry, per_sample
from robustlab.core.checks import check_bool, check_number, check_seed
from robustlab.core.errors import RobustlabError
from robustlab.core.modes import eval_mode

Model = Callable[[Tensor], Tensor]

# ----------------------------------------------------------------------------------------------
# model and RNG handling


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    """A generator on ``device`` seeded with ``seed`` (fresh entropy when None); never the global RNG."""
    gen = torch.Generator(device=device)
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype perturbations are computed in: float32, or float64 for float64 inputs."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def round_toward(v: Tensor, x: Tensor) -> Tensor:
    """Cast ``v`` to ``x.dtype`` rounding each element toward ``x`` (never away from it).

    Rounding to nearest could push a perturbation of exactly ``eps`` past ``eps`` in half or
    bfloat16; rounding toward ``x`` keeps ``|x_adv − x|`` elementwise no larger than in ``v``, hence
    within the ball for every norm, and keeps ``[0, 1]`` (``x`` and ``v`` both lie in it).
    """
    r = v.to(x.dtype)
    xv = x.to(v.dtype)
    over = (r.to(v.dtype) - xv).abs() > (v - xv).abs()
    return torch.where(over, torch.nextafter(r, x), r)


# ----------------------------------------------------------------------------------------------


class AttackContext:
    """What one call of an attack works with: the model, the inputs and the generator.

    ``x`` is a detached copy of the user's input in the working dtype (float32/float64); ``y`` are
    int64 labels on ``x``'s device. :meth:`logits` runs the model (under whatever autocast is
    active) and checks its output; :meth:`loss_grad` also returns the gradient w.r.t. the input.
    """

    def __init__(
        self,
        attack: Attack,
        model: Model,
        x: Tensor,
        y: Tensor | None,
        gen: torch.Generator,
        input_dtype: torch.dtype,
        rows: Tensor | None = None,
        full_n: int | None = None,
    ) -> None:
        self.attack = attack
        self.model = model
        self.x = x
        self.y = y
        self.gen = gen
        self.input_dtype = input_dtype
        self.rows = rows
        self.full_n = x.shape[0] if full_n is None else full_n
        self.num_classes: int | None = None

    def full_rows(self, idx: Tensor | None = None) -> Tensor | None:
        """Positions in the caller's full batch of the rows ``idx`` of :attr:`x` (None: identity)."""
        if self.rows is None:
            return idx
        return self.rows if idx is None else self.rows[idx]

    def draw(
        self,
        make: Callable[[tuple[int, ...]], Tensor],
        idx: Tensor | None = None,
        tail: tuple[int, ...] | None = None,
    ) -> Tensor:
        """Random values for the rows ``idx`` of :attr:`x` (all rows when None).

        ``make(shape)`` draws a tensor for the caller's *full* batch: ``shape`` is
        ``(full batch size, *tail)``, ``tail`` defaulting to the shape of one sample;
        the rows asked for are then picked out. So a sample's random draws depend on its position
        in the full batch and on the seed only, never on which other rows are being attacked —
        early-exit evaluation gets the same numbers as attacking everything.
        """
        full = make((self.full_n, *(self.x.shape[1:] if tail is None else tail)))
        rows = self.full_rows(idx)
        return full if rows is None else full[rows]

    def logits(self, x_adv: Tensor) -> Tensor:
        """Model logits ``(n, K)`` for pixels ``x_adv`` ``(n, ...)``; raises if the output is not that."""
        inp = x_adv if x_adv.dtype == self.input_dtype else x_adv.to(self.input_dtype)
        z = self.model(inp)
        n = x_adv.shape[0]
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[0] != n:
            got = f"shape {tuple(z.shape)}" if isinstance(z, Tensor) else f"a {type(z).__name__}"
            raise RobustlabError(f"the model must return logits of shape (N, num_classes) = ({n}, K), got {got}")
        if self.num_classes is None:
            self._first_logits(z)
        return z

    def _first_logits(self, z: Tensor) -> None:
        k = z.shape[1]
        self.num_classes = k
        if self.y is not None and self.y.numel():
            top = int(self.y.max())
            if top >= k:
                raise RobustlabError(f"label {top} is out of range for a model with {k} classes (allowed: 0..{k - 1})")
        self.attack._check_num_classes(k)

    def loss_grad(
        self, x_adv: Tensor, y: Tensor, loss_fn: LossFn, need_grad: bool = True
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """``(loss (n,), logits (n, K), grad of loss.sum() w.r.t. x_adv or None)``, all detached.

        One forward and (when ``need_grad``) one backward restricted to the input: parameter
        ``.grad`` fields are never touched.
        """
        if not need_grad:
            with torch.no_grad():
                z = self.logits(x_adv)
                return loss_fn(z, y), z, None
        xa = x_adv.detach().requires_grad_(True)
        with torch.enable_grad():
            z = self.logits(xa)
            loss = loss_fn(z, y)
        (g,) = torch.autograd.grad(loss.sum(), xa)
        return loss.detach(), z.detach(), g


class Attack:
    """Base class of every attack: a configuration applied as ``attack(model, x, y)``.

    Subclasses implement :meth:`_run` on an :class:`AttackContext` and declare ``name``,
    ``description`` and ``reference``, plus the capability flags below that differ from the
    defaults (the evaluator reads them from the class, so a new attack never edits it). Common
    attributes: ``eps`` (None for unbounded minimal-perturbation attacks), ``norm`` ("linf" or
    "l2"), ``targeted``, ``seed``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    reference: ClassVar[str] = ""
    needs_labels: ClassVar[bool] = True

    #: searches the smallest adversarial perturbation instead of using an eps budget (CW, DeepFool):
    #: the evaluator runs it once, without eps, and reads the perturbation norm
    minimal: ClassVar[bool] = False
    #: must be fitted on data (``fit(model, loader)``) before it is applied (UAP: one perturbation for
    #: all inputs); the evaluator fits it once per eps on the evaluated images
    needs_fit: ClassVar[bool] = False
    #: a per-input white-box attack driven by the model's input gradients; the sanity pass checks
    #: that a black-box attack (Square) does not beat these
    whitebox: ClassVar[bool] = False
    #: takes ``steps`` and a fixed step size ``alpha``; the evaluator passes its ``steps`` and
    #: ``alpha = alpha_ratio · eps``
    stepped: ClassVar[bool] = False
    #: a multi-step gradient attack that must be at least as strong as one FGSM step (a sanity flag
    #: fires when it is not)
    iterative: ClassVar[bool] = False

    eps: float | None = None
    norm: str = "linf"
    targeted: bool = False
    seed: int | None = 0

    # -- public -------------------------------------------------------------------------------

    def __call__(self, model: Model, x: Tensor, y: Tensor | None = None, *, active: Tensor | None = None) -> Tensor:
        """Adversarial examples for ``x``.

        Args:
            model: a module (or callable) mapping pixels ``(N, ...)`` in [0, 1] to logits ``(N, K)``.
            x: float pixels in [0, 1], shape ``(N, C, H, W)`` (any ``(N, ...)`` works for attacks
                that do not look at the image layout).
            y: int labels ``(N,)`` in ``[0, K)``: true labels, or target labels if ``targeted``.
            active: optional bool mask ``(N,)``: attack only these rows and return the others
                unchanged. Random draws are made for the full batch, so each attacked row gets the
                same result as without the mask (up to float non-associativity of batched
                kernels) — the hook for early-exit evaluation. (The torchattacks adapter draws
                from its own RNG stream for the active rows only.)

        Returns:
            ``x_adv`` like ``x`` (shape, dtype, device), in [0, 1] and within ``eps`` of ``x``.
        """
        self._check_model(model)
        y = self._check_inputs(x, y)
        rows = self._check_active(x, active)
        with torch.inference_mode(False):
            xw = x.detach().to(work_dtype(x.dtype), copy=True)
            yw = None if y is None else y.detach().to(device=x.device, dtype=torch.long, copy=True)
            xs, ys = xw, yw
            if rows is not None:
                xs = xw[rows]
                ys = None if yw is None else yw[rows]
            if xs.shape[0] == 0:
                return x.detach().clone()
            gen = make_generator(self.seed, x.device)
            with eval_mode(model):
                ctx = AttackContext(self, model, xs, ys, gen, x.dtype, rows=rows, full_n=x.shape[0])
                x_adv = self._run(ctx)
            if rows is not None:
                full = xw.clone()
                full[rows] = x_adv.to(full.dtype)
                x_adv = full
            return self._finalize(x, xw, x_adv)

    @staticmethod
    def _check_active(x: Tensor, active: Any) -> Tensor | None:
        if active is None:
            return None
        if not isinstance(active, Tensor) or active.dtype != torch.bool or tuple(active.shape) != (x.shape[0],):
            got = f"dtype {active.dtype}, shape {tuple(active.shape)}" if isinstance(active, Tensor) else type(active)
            raise RobustlabError(f"active must be a bool tensor of shape ({x.shape[0]},), got {got}")
        active = active.to(x.device)
        if bool(active.all()):
            return None
        return active.nonzero().squeeze(1)

    def params(self) -> dict[str, Any]:
        """The constructor arguments of this configuration and their current values."""
        sig = inspect.signature(type(self).__init__)
        return {
            p: getattr(self, p)
            for p, prm in sig.parameters.items()
            if p != "self" and prm.kind not in (prm.VAR_KEYWORD, prm.VAR_POSITIONAL) and hasattr(self, p)
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    # -- for subclasses -------------------------------------------------------------------------

    def _run(self, ctx: AttackContext) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_num_classes(self, num_classes: int) -> None:
        """Raise when the attack is undefined for a model with ``num_classes`` outputs."""
        if self.targeted and num_classes < 2:
            raise RobustlabError(f"a targeted attack needs at least 2 classes, the model has {num_classes}")

    def _init_common(
        self, *, eps: float | None, norm: str, targeted: bool, seed: int | None, eps_default: bool = True
    ) -> None:
        self.norm = geometry(norm).name
        if eps is None and eps_default:
            from robustlab.attacks.norms import default_eps

            eps = default_eps(self.norm)
        self.eps = None if eps is None else check_number("eps", eps, min=0.0)
        self.targeted = check_bool("targeted", targeted)
        self.seed = check_seed(seed)

    # -- checks and finalisation ----------------------------------------------------------------

    @staticmethod
    def _check_model(model: Any) -> None:
        if not callable(model):
            raise RobustlabError(
                f"model must be a torch module or callable returning logits, got {type(model).__name__}"
            )

    def _check_inputs(self, x: Any, y: Any) -> Tensor | None:
        if not isinstance(x, Tensor):
            raise RobustlabError(f"x must be a torch.Tensor of pixels in [0, 1], got {type(x).__name__}")
        if not x.is_floating_point():
            raise RobustlabError(f"x must be a floating-point tensor of pixels in [0, 1], got dtype {x.dtype}")
        if x.dim() < 2:
            raise RobustlabError(f"x must have shape (N, C, H, W) (at least 2 dimensions), got {tuple(x.shape)}")
        if x.numel():
            xd = x.detach()
            if not bool(((xd >= 0) & (xd <= 1)).all()):
                if not bool(torch.isfinite(xd).all()):
                    raise RobustlabError("x contains NaN or inf; pixels must be finite values in [0, 1]")
                raise RobustlabError(
                    f"x must hold pixels in [0, 1], got values in [{float(xd.min()):.4g}, {float(xd.max()):.4g}]"
                )
        if y is None:
            if self.needs_labels:
                raise RobustlabError(f"attack {self.name} needs labels y: an int tensor of shape ({x.shape[0]},)")
            return None
        if not isinstance(y, Tensor):
            raise RobustlabError(f"labels y must be a torch.Tensor of class indices, got {type(y).__name__}")
        if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
            raise RobustlabError(f"labels y must be an integer tensor (class indices), got dtype {y.dtype}")
        if tuple(y.shape) != (x.shape[0],):
            raise RobustlabError(f"labels y must have shape ({x.shape[0]},) to match x, got {tuple(y.shape)}")
        if y.numel() and bool((y < 0).any()):
            raise RobustlabError(f"labels y must be class indices >= 0, got {int(y.min())}")
        return y

    def _ball(self) -> tuple[str, float] | None:
        """``(norm, eps)`` the output must satisfy, or None when unbounded."""
        return None if self.eps is None else (self.norm, self.eps)

    def _finalize(self, x_user: Tensor, x: Tensor, x_adv: Tensor) -> Tensor:
        """Clamp to [0, 1], enforce the ball (touching only violating samples/pixels), cast back."""
        x_adv = x_adv.detach().to(x.dtype).clamp(0.0, 1.0)
        ball = self._ball()
        if ball is not None:
            norm, eps = ball
            if norm == "linf":
                x_adv = torch.minimum(torch.maximum(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)
            else:
                geom = geometry(norm)
                d = x_adv - x
                bad = geom.norms(d) > eps
                x_adv = torch.where(per_sample(bad, d), (x + geom.project(d, eps)).clamp_(0.0, 1.0), x_adv)
        if x_adv.dtype != x_user.dtype:
            x_adv = round_toward(x_adv, x_user.detach())
        return x_adv


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return repr(v)
