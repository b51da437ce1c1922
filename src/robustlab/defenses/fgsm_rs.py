"""FGSM adversarial training with a random start ("fast is better than free", Wong et al. 2020).

Each batch: ``δ ~ U(ball(eps))`` (clamped into the pixel box), one signed-gradient step of size
``alpha = 1.25 · eps`` from there (L2: normalised gradient), projection back onto the ball and the
pixel box, then a weight update on ``x + δ`` — the paper's Algorithm 3. The step is written here with
the attack package's norm geometry rather than as the registry's ``PGD(steps=1, alpha=1.25·eps,
random_start=True)``: that attack returns, per sample, the last iterate found misclassified, which
for one step is the *random start* whenever the start already fools the model, whereas FGSM-RS
always trains on the stepped point. The gradient is taken in eval mode w.r.t. the input only.

FGSM training can *catastrophically overfit*: within an epoch, PGD accuracy falls to ~0 while the
accuracy on FGSM examples (and clean accuracy) jumps up. The guard here follows the paper's early
stopping: a fixed batch of training inputs (the first ``guard_batch`` examples the defense sees) is
attacked with PGD (``guard_steps`` steps, ``alpha = eps/4``) at the end of every epoch; the number is
logged as ``guard_pgd_accuracy`` (and ``guard_clean_accuracy``), and when it collapses the defense
asks the trainer to stop. Set ``train.monitor: guard_pgd_accuracy`` so that ``best.pt`` is the last
model before the collapse (with the default ``val_accuracy`` monitor the collapsed model, whose clean
accuracy is often higher, could be kept). :attr:`FGSMRandomStart.preferred_monitor` names it.

Reference: Wong, Rice & Kolter, "Fast is better than free: Revisiting adversarial training",
ICLR 2020.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from robustlab.core.checks import check_int, check_number
from robustlab.defenses._common import (
    AdversarialDefense,
    check_norm,
    classification_loss,
    make_attack,
    next_seed,
    resolve_eps,
    unwrap,
)
from robustlab.defenses.base import StepFn
from robustlab.defenses.registry import register_defense
from robustlab.training.task import StepOutput, Task

#: below this robust accuracy (with clean accuracy at least ``CLEAN_MIN``) the model has collapsed
COLLAPSE_FLOOR = 0.02
CLEAN_MIN = 0.5
#: the ratio rule only applies once the best robust accuracy seen is at least this
RATIO_MIN_BEST = 0.05


def detect_collapse(pgd_accuracy: float, best_pgd_accuracy: float | None, clean_accuracy: float,
                    collapse_ratio: float) -> bool:
    """Whether robust accuracy on the guard batch has collapsed (catastrophic overfitting).

    True when ``pgd_accuracy < collapse_ratio · best_pgd_accuracy`` (with a best of at least
    ``RATIO_MIN_BEST``, so noise around zero early on does not count), or when it is ~0
    (``<= COLLAPSE_FLOOR``) while clean accuracy is high (``>= CLEAN_MIN``).
    """
    if best_pgd_accuracy is not None and best_pgd_accuracy >= RATIO_MIN_BEST \
            and pgd_accuracy < collapse_ratio * best_pgd_accuracy:
        return True
    return pgd_accuracy <= COLLAPSE_FLOOR and clean_accuracy >= CLEAN_MIN


@register_defense
class FGSMRandomStart(AdversarialDefense):
    """FGSM-RS adversarial training (Wong 2020): random start + one 1.25·eps step, collapse guard.

    Args:
        eps: budget in pixel units (None: 8/255 for linf, 0.5 for l2).
        alpha: step size (None: ``1.25 · eps``, the paper's choice).
        norm: ``linf`` or ``l2``.
        guard_batch: training examples kept for the catastrophic-overfitting check (0 disables it).
        guard_steps: PGD steps of the check (step size ``eps / 4``).
        collapse_ratio: stop when guard PGD accuracy drops below this fraction of the best seen.

    Metrics per epoch: ``guard_clean_accuracy``, ``guard_pgd_accuracy``, ``guard_collapsed`` (0/1).
    """

    name = "fgsm-rs"
    preferred_monitor = "guard_pgd_accuracy"
    directions: ClassVar[dict[str, bool]] = {"guard_pgd_accuracy": True, "guard_clean_accuracy": True}

    def __init__(self, eps: float | None = None, alpha: float | None = None, norm: str = "linf",
                 guard_batch: int = 256, guard_steps: int = 10, collapse_ratio: float = 0.5) -> None:
        from robustlab.attacks.norms import geometry

        self.norm = check_norm(norm)
        self.eps = resolve_eps(eps, self.norm)
        self.alpha = 1.25 * self.eps if alpha is None else check_number("alpha", alpha, min=0.0)
        self.guard_batch = check_int("guard_batch", guard_batch, min=0)
        self.guard_steps = check_int("guard_steps", guard_steps)
        self.collapse_ratio = check_number("collapse_ratio", collapse_ratio, min=0.0, max=1.0)
        self.geometry = geometry(self.norm)
        self.guard_attack = make_attack(
            "pgd", {"eps": self.eps, "alpha": self.eps / 4, "steps": self.guard_steps, "norm": self.norm,
                    "random_start": True, "seed": 0},
        )
        self._guard_x: torch.Tensor | None = None
        self._guard_y: torch.Tensor | None = None
        self.best_guard: float | None = None
        self._record(eps=self.eps, alpha=self.alpha, norm=self.norm, guard_batch=self.guard_batch,
                     guard_steps=self.guard_steps, collapse_ratio=self.collapse_ratio)

    # -- training ---------------------------------------------------------------------------------
    def _collect_guard(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        have = 0 if self._guard_x is None else self._guard_x.shape[0]
        need = self.guard_batch - have
        if need <= 0:
            return
        x, y = inputs[:need].detach().float().clone(), targets[:need].detach().clone()
        if self._guard_x is None or self._guard_y is None:
            self._guard_x, self._guard_y = x, y
        else:
            self._guard_x = torch.cat([self._guard_x, x.to(self._guard_x.device)])
            self._guard_y = torch.cat([self._guard_y, y.to(self._guard_y.device)])

    def train_batch(
        self, model: nn.Module, inputs: Any, targets: Any, task: Task, step: StepFn
    ) -> StepOutput:
        if self.guard_batch:
            self._collect_guard(inputs, targets)
        x_adv = self.perturb(unwrap(model), inputs, targets, task).to(inputs.dtype)
        out = task.forward(model, x_adv, targets)
        step(out.loss)
        return out

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                task: Task | None = None) -> torch.Tensor:
        """``x + δ``: random start in the ball, one ``alpha`` step up the loss, projection (eval mode).

        The loss is the task's (cross-entropy with its label smoothing) or plain cross-entropy; the
        random start uses torch's global (checkpointed) generator; no parameter gradient is created.
        """
        from robustlab.core.modes import eval_mode

        x = x.detach().float()
        lo, hi = self.geometry.bounds(x, self.eps)
        gen = torch.Generator(device=x.device).manual_seed(next_seed())
        delta = self.geometry.feasible(self.geometry.random_start(x, self.eps, gen), self.eps, lo, hi)
        delta.requires_grad_(True)
        with eval_mode(model), torch.enable_grad():
            logits = model(x + delta)
            loss = classification_loss(task, logits, y)
            (g,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = delta.detach() + self.alpha * self.geometry.direction(g.float())
            delta = self.geometry.feasible(delta, self.eps, lo, hi)
        return (x + delta).clamp_(0.0, 1.0)

    # -- the guard ----------------------------------------------------------------------------------
    def guard_accuracy(self, model: nn.Module) -> tuple[float, float]:
        """``(clean, PGD)`` accuracy of ``model`` on the guard batch (summed over DDP ranks)."""
        from robustlab.core import distributed as D
        from robustlab.core.modes import eval_mode

        assert self._guard_x is not None and self._guard_y is not None
        device = next((p.device for p in model.parameters()), self._guard_x.device)
        x, y = self._guard_x.to(device), self._guard_y.to(device)
        with eval_mode(model), torch.no_grad():
            clean = (model(x).argmax(1) == y).sum().float()
        x_adv = self.guard_attack(model, x, y)
        with eval_mode(model), torch.no_grad():
            robust = (model(x_adv).argmax(1) == y).sum().float()
        sums = D.all_reduce_sums({"clean": clean, "robust": robust, "count": torch.tensor(float(y.numel()),
                                                                                          device=device)})
        n = max(sums["count"], 1.0)
        return sums["clean"] / n, sums["robust"] / n

    def on_epoch_end(self, trainer: Any, record: dict[str, Any]) -> dict[str, Any]:
        if not self.guard_batch or self._guard_x is None:
            return {}
        epoch = record["epoch"]
        clean, robust = self.guard_accuracy(trainer.model)
        collapsed = detect_collapse(robust, self.best_guard, clean, self.collapse_ratio)
        if not collapsed and (self.best_guard is None or robust > self.best_guard):
            self.best_guard = robust
        out: dict[str, Any] = {"guard_clean_accuracy": clean, "guard_pgd_accuracy": robust,
                               "guard_collapsed": float(collapsed)}
        if collapsed:
            from robustlab.core.progress import log

            log.warning("fgsm-rs: catastrophic overfitting at epoch %d (guard PGD accuracy %.3f, best %.3f); "
                        "stopping", epoch, robust, self.best_guard or 0.0)
            out["stop"] = True
        return out

    # -- checkpoint ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"best_guard": self.best_guard}
        if self._guard_x is not None and self._guard_y is not None:
            state["guard_x"] = self._guard_x.detach().cpu()
            state["guard_y"] = self._guard_y.detach().cpu()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_guard = state.get("best_guard")
        self._guard_x = state.get("guard_x")
        self._guard_y = state.get("guard_y")
