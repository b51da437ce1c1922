"""Training tasks of the lab: the captioner (teacher-forced cross-entropy + the doubly stochastic
attention penalty; validated by free-running BLEU-4), scheduled sampling as a step strategy, and the
encoder's per-cell pretraining."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustlab.labs.captioning.decoder import doubly_stochastic_penalty
from robustlab.labs.captioning.decoding import greedy_decode
from robustlab.labs.captioning.metrics import corpus_bleu, short_hypotheses
from robustlab.labs.captioning.text import EOS, PAD, SOS
from robustlab.training.metrics import CorpusMetric
from robustlab.training.step import StepFn, StepStrategy
from robustlab.training.task import StepOutput, Task

if TYPE_CHECKING:
    from robustlab.training.trainer import Trainer


class CaptionTask:
    """Batches ``(source, captions (B, L), lengths (B,), references (B, R, Lr))`` (source: uint8 pixels
    or a cached float16 grid, see :class:`~robustlab.labs.captioning.model.Captioner`).

    The loss is the token-mean cross-entropy of the next word (``<eos>`` included, padding excluded)
    plus ``alpha_c`` × the doubly stochastic penalty. Training feeds the true previous word with
    probability ``teacher_forcing`` (set by :class:`ScheduledSampling`); evaluation always does and
    also decodes greedily up to ``max_length`` words, so :class:`FreeRunningBleu` scores what the
    model *says*, not what it predicts with the answer in its input. Best by ``bleu4``."""

    name = "captioning"
    monitor = "bleu4"
    higher_is_better = True
    directions: ClassVar[dict[str, bool]] = {"token_accuracy": True, "perplexity": False}

    def __init__(self, alpha_c: float, max_length: int, reads_features: bool) -> None:
        self.alpha_c, self.max_length, self.reads_features = alpha_c, max_length, reads_features
        self.teacher_forcing = 1.0

    def unpack(self, batch: Any, device: torch.device) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor]:
        source, captions, lengths, refs = batch
        source = source.to(device, non_blocking=True)
        source = source.float() if self.reads_features else source.float().div_(255)
        return (source, captions.to(device), lengths.to(device)), refs.to(device)

    def forward(self, model: nn.Module, inputs: tuple[Tensor, Tensor, Tensor], targets: Tensor) -> StepOutput:
        source, captions, lengths = inputs
        tf = self.teacher_forcing if model.training else 1.0
        logits, alpha = model(source, captions, lengths, tf)
        words = captions[:, 1 : logits.shape[1] + 1]
        mask = words != PAD
        ce = F.cross_entropy(logits[mask].float(), words[mask])
        penalty = doubly_stochastic_penalty(alpha.float())
        loss = ce + self.alpha_c * penalty
        outputs: dict[str, Tensor] = {"logits": logits, "words": words, "mask": mask}
        if not model.training:
            decoded = greedy_decode(model.decoder, model.source_annotations(source), self.max_length)
            outputs["decoded"] = F.pad(decoded.tokens, (0, self.max_length + 1 - decoded.tokens.shape[1]), value=PAD)
        return StepOutput(loss, outputs, targets, extras={"ce": ce.detach(), "attention_penalty": penalty.detach()})

    def batch_metrics(self, out: StepOutput) -> dict[str, Tensor]:
        o = out.outputs
        n = o["mask"].sum().float()
        logits = o["logits"].detach()
        correct = ((logits.argmax(-1) == o["words"]) & o["mask"]).sum().float()
        return {"loss": out.loss.detach().float() * n, "nll": out.extras["ce"].float() * n, "correct": correct,
                "count": n}

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums.get("count", 0.0), 1.0)
        nll = sums["nll"] / n
        return {"loss": sums["loss"] / n, "perplexity": math.exp(min(nll, 50.0)), "token_accuracy": sums["correct"] / n}


def ids_to_words(rows: Tensor, words: tuple[str, ...]) -> list[list[str]]:
    """Token ids ``(N, T)`` → word lists, stopping at ``<eos>``, skipping ``<pad>``/``<sos>``."""
    out = []
    for row in rows.tolist():
        ws = []
        for i in row:
            if i == EOS:
                break
            if i not in (PAD, SOS):
                ws.append(words[i])
        out.append(ws)
    return out


class FreeRunningBleu(CorpusMetric):
    """Corpus BLEU-1..4 (nltk, 0–1) of the greedy captions decoded during evaluation against every
    reference of the image, in words: hypotheses through the vocabulary ``itos``, references through
    the ``lexicon`` (so they never hold ``<unk>``). Also ``short_captions``: the share of hypotheses
    under 4 words (where nltk's BLEU-4 differs from pycocoevalcap's)."""

    name = "free_running_bleu"
    directions: ClassVar[dict[str, bool]] = {"bleu1": True, "bleu2": True, "bleu3": True, "bleu4": True,
                                             "short_captions": False}

    def __init__(self, itos: tuple[str, ...], lexicon: tuple[str, ...]) -> None:
        super().__init__()
        self.itos, self.lexicon = itos, lexicon

    def update(self, out: StepOutput) -> None:
        if "decoded" in out.outputs:
            self.keep(hyp=out.outputs["decoded"], refs=out.targets)

    def score(self, rows: dict[str, Tensor]) -> dict[str, float]:
        from robustlab.labs.captioning.prepare import reference_words

        hyps = ids_to_words(rows["hyp"], self.itos)
        refs = reference_words(rows["refs"], self.lexicon)
        b = corpus_bleu(refs, hyps)
        return {"bleu1": b[0], "bleu2": b[1], "bleu3": b[2], "bleu4": b[3],
                "short_captions": short_hypotheses(hyps) / max(len(hyps), 1)}


def teacher_forcing_probability(kind: str, progress: float, epoch: float, minimum: float, k: float) -> float:
    """The probability of feeding the true previous word: 1 for ``always``; ``linear`` from 1 at
    ``progress`` 0 to ``minimum`` at 1; ``inverse-sigmoid`` ``k / (k + exp(epoch / k))`` (Bengio et
    al. 2015), never below ``minimum``."""
    if kind == "always":
        return 1.0
    linear = 1.0 - (1.0 - minimum) * min(max(progress, 0.0), 1.0)
    value = linear if kind == "linear" else k / (k + math.exp(epoch / k))
    return max(minimum, min(1.0, value))


class ScheduledSampling(StepStrategy):
    """Plain training steps with the task's teacher-forcing probability set from the optimizer step
    count before each batch (so a resumed run continues the schedule exactly)."""

    name = "scheduled-sampling"

    def __init__(self, kind: str, minimum: float, k: float) -> None:
        self.kind, self.minimum, self.k = kind, minimum, k
        self.total_steps, self.steps_per_epoch, self.step_count = 1, 1, 0

    def setup(self, *, num_classes: int, device: torch.device, epochs: int, steps_per_epoch: int) -> None:
        self.steps_per_epoch = max(steps_per_epoch, 1)
        self.total_steps = max(epochs * self.steps_per_epoch, 1)

    def on_fit_start(self, trainer: Trainer) -> None:
        self.step_count = trainer.global_step

    def after_step(self, trainer: Trainer) -> None:
        self.step_count = trainer.global_step

    def probability(self) -> float:
        return teacher_forcing_probability(self.kind, self.step_count / self.total_steps,
                                           self.step_count / self.steps_per_epoch, self.minimum, self.k)

    def train_batch(self, model: nn.Module, inputs: Any, targets: Any, task: Task, step: StepFn) -> StepOutput:
        if isinstance(task, CaptionTask):
            task.teacher_forcing = self.probability()
        return super().train_batch(model, inputs, targets, task, step)

    def on_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> dict[str, Any]:
        return {} if self.kind == "always" else {"teacher_forcing": self.probability()}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "decay": self.kind, "minimum": self.minimum, "k": self.k}


class AdversarialCaptionTraining(ScheduledSampling):
    """PGD adversarial training of the captioner (Madry et al.): every batch's pixels are replaced by
    a ``steps``-step L∞ PGD point within ``eps`` that raises the loss of the batch's (true) captions,
    then one ordinary step on them; scheduled sampling as configured. Needs pixel rows (the encoder
    is on the attacked path, so its grids are not cached)."""

    name = "pgd-adversarial"

    def __init__(self, eps: float, steps: int, kind: str, minimum: float, k: float, seed: int = 0) -> None:
        super().__init__(kind, minimum, k)
        self.eps, self.steps, self.seed = eps, steps, seed

    def train_batch(self, model: nn.Module, inputs: Any, targets: Any, task: Task, step: StepFn) -> StepOutput:
        from robustlab.labs.captioning.robustness import caption_attack

        pixels, captions, lengths = inputs
        inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
        adv = caption_attack(inner, pixels, captions, lengths, self.eps, "pgd", self.steps,
                             seed=self.seed + self.step_count)
        return super().train_batch(model, (adv, captions, lengths), targets, task, step)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "name": self.name, "eps": self.eps, "steps": self.steps}


class CellTask:
    """Encoder pretraining on batches ``(images uint8 (B, 3, S, S), shape (B, g²), colour (B, g²))``:
    per-cell cross-entropy of the shape and the colour (class 0 = empty cell). Best by ``loss``."""

    name = "captioning-encoder"
    monitor = "loss"
    higher_is_better = False
    directions: ClassVar[dict[str, bool]] = {"cell_accuracy": True}

    def unpack(self, batch: Any, device: torch.device) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        images, shape, colour = batch
        return images.to(device).float().div_(255), (shape.to(device), colour.to(device))

    def forward(self, model: nn.Module, inputs: Tensor, targets: tuple[Tensor, Tensor]) -> StepOutput:
        shape_logits, colour_logits = model(inputs)
        shape, colour = targets
        loss = F.cross_entropy(shape_logits.flatten(0, 1).float(), shape.flatten()) + F.cross_entropy(
            colour_logits.flatten(0, 1).float(), colour.flatten())
        return StepOutput(loss, (shape_logits, colour_logits), targets)

    def batch_metrics(self, out: StepOutput) -> dict[str, Tensor]:
        (sl, cl), (shape, colour) = out.outputs, out.targets
        both = (sl.detach().argmax(-1) == shape) & (cl.detach().argmax(-1) == colour)
        n = float(shape.shape[0])
        return {"loss": out.loss.detach().float() * n, "correct": both.float().mean(1).sum(), "count": torch.tensor(n)}

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums.get("count", 0.0), 1.0)
        return {"loss": sums["loss"] / n, "cell_accuracy": sums["correct"] / n}
