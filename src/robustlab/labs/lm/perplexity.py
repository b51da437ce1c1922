"""Perplexity and bits per character of target couplets, done right.

The score is token-weighted over target tokens only: the summed negative log-likelihood of every
target token and closing ``</s>`` of the split, divided by their number — not a mean of batch means,
never counting prompt tokens or pads. The causal shift is explicit: the logits at position t predict
the token at t + 1 (a position-aligned loss would reward a model that copies its input). Sums and
counts are kept in float64 / int and added over ranks under torch.distributed, so the result is the
same for any batch size, padding or number of processes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F

from robustlab.core.distributed import sum_
from robustlab.core.errors import RobustlabError
from robustlab.core.modes import eval_mode
from robustlab.labs.lm.examples import IGNORE


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def shifted_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``logits (B, L, V)`` and unshifted ``labels (B, L)`` (``-100`` = not scored) → the summed NLL
    of ``labels[:, t]`` under ``logits[:, t - 1]`` as a float64 scalar (differentiable), and how many
    tokens it sums. Only the scored rows are taken, in float64, before the cross-entropy."""
    targets = labels[:, 1:]
    scored = targets != IGNORE
    picked = logits[:, :-1][scored].double()
    nll = F.cross_entropy(picked, targets[scored], reduction="sum", ignore_index=IGNORE)
    return nll, int(scored.sum())


def target_nll(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """The summed NLL (float64 scalar tensor on the model's device, differentiable) of the batch's
    labelled tokens — labels != -100, i.e. target tokens and ``</s>`` — and their number. ``batch``
    holds ``input_ids``, ``attention_mask`` and ``labels`` ``(B, L)`` as made by
    :func:`~robustlab.labs.lm.examples.collate_training`; they are moved to the model's device. The
    mean loss to train on is ``nll / n``; gradients and dropout follow the caller's mode."""
    device = _device(model)
    ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
    logits = model(input_ids=ids, attention_mask=mask).logits
    return shifted_nll(logits, batch["labels"].to(device))


class CorpusNLL:
    """Accumulates the NLL, token count and character count of target texts over a whole split.

    ``perplexity() = exp(total NLL / total tokens)`` and ``bits_per_char() = total NLL / ln 2 / total
    characters`` — token-weighted over target tokens only (not a mean of batch means, no prompt, no
    pads). Characters are code points of the target texts; the ``</s>`` token adds NLL but no
    character. Under torch.distributed the totals are summed over ranks when read, so every rank must
    call :meth:`totals` (and the methods built on it) together; ``device`` is where the sums of a
    rank that adds no batch live (the collective backend's device: CUDA under NCCL)."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self._empty = torch.zeros(3, dtype=torch.float64, device=device)
        self._sums: torch.Tensor | None = None  # (3,) float64: nll, tokens, characters

    def add(self, nll_sum: torch.Tensor | float, n_tokens: int, n_chars: int = 0) -> None:
        """Count one batch: its summed NLL, number of scored tokens and of target characters."""
        nll = torch.as_tensor(nll_sum).detach().to(torch.float64).reshape(())
        row = torch.stack([nll, nll.new_tensor(float(n_tokens)), nll.new_tensor(float(n_chars))])
        self._sums = row if self._sums is None else self._sums + row.to(self._sums.device)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, int]:
        """Score one batch (no gradients; the caller chooses eval mode) and count it, with its
        characters from ``batch["target_chars"]`` when present. Returns the batch's ``(nll, tokens)``."""
        nll, n = target_nll(model, batch)
        chars = int(batch["target_chars"].sum()) if "target_chars" in batch else 0
        self.add(nll, n, chars)
        return float(nll), n

    def totals(self) -> tuple[float, int, int]:
        """``(NLL, tokens, characters)`` summed over every batch added on every rank."""
        sums = self._sums if self._sums is not None else self._empty
        nll, tokens, chars = sum_(sums).tolist()
        return nll, round(tokens), round(chars)

    def perplexity(self) -> float:
        """``exp(NLL / tokens)`` over the target tokens of all batches (>= 1)."""
        nll, tokens, _ = self.totals()
        if tokens == 0:
            raise RobustlabError("no target tokens were scored; perplexity is undefined")
        return math.exp(nll / tokens)

    def bits_per_char(self) -> float:
        """``NLL / ln 2 / characters`` over the target texts of all batches (>= 0)."""
        nll, _, chars = self.totals()
        if chars == 0:
            raise RobustlabError("no target characters were counted; bits per character is undefined")
        return nll / math.log(2) / chars

    def summary(self) -> dict[str, float]:
        """``nll``, ``tokens``, ``chars``, ``perplexity`` and ``bits_per_char`` (NaN when undefined)
        from one reduction."""
        nll, tokens, chars = self.totals()
        return {"nll": nll, "tokens": tokens, "chars": chars,
                "perplexity": math.exp(nll / tokens) if tokens else math.nan,
                "bits_per_char": nll / math.log(2) / chars if chars else math.nan}


def corpus_nll(model: torch.nn.Module, batches: Iterable[dict[str, torch.Tensor]]) -> CorpusNLL:
    """Score every batch of a split (this rank's share of it under torch.distributed) in eval mode,
    without gradients; the model's train/eval mode is restored afterwards."""
    corpus = CorpusNLL(_device(model))
    with eval_mode(model):
        for batch in batches:
            corpus.update(model, batch)
    return corpus


def shuffled_prompts(sources: Sequence[str], seed: int) -> list[str]:
    """``sources`` permuted so that no position keeps its own entry (a random derangement: one
    cycle, Sattolo's algorithm, drawn from ``seed``): pairing ``shuffled[i]`` with ``target[i]`` gives
    the baseline of a model that ignores its input. Entries with equal text at different positions
    may still meet. Needs at least two sources (none gives an empty list)."""
    n = len(sources)
    if n == 1:
        raise RobustlabError("cannot shuffle a single prompt away from its own target; need at least 2")
    order = list(range(n))
    rng = random.Random(seed)
    for i in range(n - 1, 0, -1):
        j = rng.randrange(i)
        order[i], order[j] = order[j], order[i]
    return [sources[k] for k in order]
