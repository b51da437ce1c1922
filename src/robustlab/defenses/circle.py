"""Metric learning with the circle loss, plus a cross-entropy head.

The backbone's penultimate features ``model.embed(x)`` are L2-normalised and trained with the circle
loss (pytorch-metric-learning's ``losses.CircleLoss``: pairwise similarities within the batch,
positives pulled above ``1 − m``, negatives pushed below ``m``, each weighted by how far it is from
its optimum, scale ``gamma``). The model's own linear ``head`` is trained at the same time with
cross-entropy weighted by ``ce_weight``.

Classification at test time is done by a k-nearest-neighbour vote in the embedding space
(:mod:`robustlab.defenses.knn`). The CE head matters for robustness evaluation: gradient attacks
(FGSM, PGD) need logits to differentiate, so they are computed through the CE head, and their
adversarial examples are then classified by the kNN. With ``ce_weight=0`` the head is untrained and
such attacks are meaningless (see :func:`robustlab.defenses.knn.knn_under_attack`).

Reference: Sun, Cheng, Zhang, Zhang, Zheng, Wang & Wei, "Circle Loss: A Unified Perspective of Pair
Similarity Optimization", CVPR 2020.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robustlab.core.checks import check_number
from robustlab.core.errors import RobustlabError
from robustlab.defenses._common import ParamsMixin, classification_loss, unwrap
from robustlab.defenses.base import Defense, StepFn
from robustlab.defenses.registry import register_defense
from robustlab.training.task import StepOutput, Task


@register_defense
class CircleLossTraining(ParamsMixin, Defense):
    """Circle-loss metric learning (Sun 2020) on normalised embeddings + a weighted CE head term.

    Args:
        m: relaxation margin of the circle loss (0.25 as in the paper).
        gamma: scale factor of the circle loss (256 as in the paper).
        ce_weight: weight of the cross-entropy term on the model's ``head`` (>= 0).

    The loss is ``circle(normalize(embed(x)), y) + ce_weight · CE(head(embed(x)), y)``; one forward
    through the model (so DDP synchronises the gradients), the embedding being taken at the head's
    input. Logged: ``train_circle`` and ``train_ce``; ``train_accuracy`` is the CE head's.
    """

    name = "circle"

    def __init__(self, m: float = 0.25, gamma: float = 256.0, ce_weight: float = 1.0) -> None:
        self.m = check_number("m", m, min=0.0)
        self.gamma = check_number("gamma", gamma, min=0.0, min_open=True)
        self.ce_weight = check_number("ce_weight", ce_weight, min=0.0)
        from pytorch_metric_learning import losses

        self.circle = losses.CircleLoss(m=self.m, gamma=self.gamma)
        self._record(m=self.m, gamma=self.gamma, ce_weight=self.ce_weight)

    def train_batch(
        self, model: nn.Module, inputs: Any, targets: Any, task: Task, step: StepFn
    ) -> StepOutput:
        head = getattr(unwrap(model), "head", None)
        if not isinstance(head, nn.Module):
            raise RobustlabError(
                "the circle defense needs a model with .embed() and a .head (robustlab models have them)"
            )
        captured: list[torch.Tensor] = []
        hook = head.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            logits = model(inputs)
        finally:
            hook.remove()
        emb = F.normalize(captured[-1].float(), dim=1)
        circle = self.circle(emb, targets)
        ce = classification_loss(task, logits, targets)
        loss = circle + self.ce_weight * ce
        step(loss)
        return StepOutput(loss, logits, targets, extras={"circle": circle.detach(), "ce": ce.detach()})
