"""Callbacks: what runs beside the training loop at a few named points.

The loop calls, in order: :meth:`Callback.on_fit_start` once (after a resume has restored state),
:meth:`~Callback.on_epoch_start` before each epoch, :meth:`~Callback.after_step` after every optimizer
step, :meth:`~Callback.on_validation_start` / :meth:`~Callback.on_validation_end` around every
validation pass, and :meth:`~Callback.on_epoch_end` after each validation point (the end of an epoch,
or every ``val_every`` steps) with the record about to be logged — a callback may add numbers to it
and ask to stop. :meth:`~Callback.state_dict` goes into every checkpoint and comes back through
:meth:`~Callback.load_state_dict` on ``--resume``, so a resumed run continues bit-exactly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from robustlab.training.trainer import Trainer


class Callback:
    """Does nothing at every point; subclasses override the points they need.

    ``name`` keys the callback's state in checkpoints (unique within a run); ``directions`` says, for
    each metric the callback adds to the record, whether higher is better.
    """

    name: ClassVar[str] = "callback"
    directions: ClassVar[dict[str, bool]] = {}

    def on_fit_start(self, trainer: Trainer) -> None:
        """Training is about to start (or continue after a resume)."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Epoch ``epoch`` (1-based) is about to start."""

    def after_step(self, trainer: Trainer) -> None:
        """An optimizer step has just been taken (``trainer.global_step`` counts them)."""

    def on_validation_start(self, trainer: Trainer) -> None:
        """A validation or test pass is about to run (the model is about to enter eval mode)."""

    def on_validation_end(self, trainer: Trainer) -> None:
        """That pass has ended."""

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> dict[str, Any]:
        """Numbers to add to the validation point's record; ``{"stop": True}`` ends training."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint: tensors and plain data only."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""


class EMA(Callback):
    """An exponential moving average of the trainable weights.

    After optimizer step ``n`` (1-based) each averaged tensor moves toward the weight by
    ``1 - d_n`` with ``d_n = min(decay, (1 + n) / (10 + n))`` (the usual warm-up, so early averages
    are not dominated by the initialisation). With ``evaluate_with_ema`` every validation and test
    pass runs on the averaged weights and the trained weights are put back afterwards. Buffers
    (batch-norm statistics) are not averaged.
    """

    name = "ema"

    def __init__(self, decay: float = 0.999, evaluate_with_ema: bool = True) -> None:
        self.decay = decay
        self.evaluate_with_ema = evaluate_with_ema
        self.updates = 0
        self.shadow: dict[str, torch.Tensor] | None = None
        self._backup: dict[str, torch.Tensor] | None = None

    @staticmethod
    def _params(trainer: Trainer) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in trainer.model.named_parameters() if p.requires_grad}

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.shadow is None:
            self.shadow = {n: p.detach().clone() for n, p in self._params(trainer).items()}
        else:
            self.shadow = {n: t.to(trainer.device) for n, t in self.shadow.items()}

    @torch.no_grad()
    def after_step(self, trainer: Trainer) -> None:
        if self.shadow is None:
            self.on_fit_start(trainer)
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        params = self._params(trainer)
        names = list(self.shadow)
        torch._foreach_lerp_([self.shadow[n] for n in names], [params[n].detach() for n in names], 1.0 - d)

    @torch.no_grad()
    def on_validation_start(self, trainer: Trainer) -> None:
        if not self.evaluate_with_ema or self.shadow is None or self._backup is not None:
            return
        params = self._params(trainer)
        self._backup = {n: params[n].detach().clone() for n in self.shadow}
        for n, t in self.shadow.items():
            params[n].copy_(t)

    @torch.no_grad()
    def on_validation_end(self, trainer: Trainer) -> None:
        if self._backup is None:
            return
        params = self._params(trainer)
        for n, t in self._backup.items():
            params[n].copy_(t)
        self._backup = None

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "shadow": self.shadow or {}, "evaluate_with_ema": self.evaluate_with_ema}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state.get("updates", 0))
        shadow = state.get("shadow") or None
        self.shadow = {n: t.clone() for n, t in shadow.items()} if shadow else None


def averaged_weights(model_state: dict[str, torch.Tensor], checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``model_state`` with the EMA's averaged tensors put in, when ``checkpoint`` holds an EMA that
    evaluates with them; ``model_state`` itself otherwise."""
    ema = (checkpoint.get("callbacks") or {}).get(EMA.name)
    if not ema or not ema.get("shadow") or not ema.get("evaluate_with_ema", True):
        return model_state
    return {**model_state, **ema["shadow"]}
