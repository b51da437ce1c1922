"""The training task of a causal language model on (prompt, target) examples: batches from
``collate_training``, the loss is the mean NLL over target tokens (``</s>`` included, prompt and pads
never), and the split's numbers are token-weighted over the whole split — loss, perplexity and bits
per character from summed NLL, never a mean of batch means."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from robustlab.labs.lm.perplexity import shifted_nll
from robustlab.training.task import StepOutput


class CausalLMTask:
    name = "lm"
    monitor = "loss"
    higher_is_better = False
    directions: ClassVar[dict[str, bool]] = {"perplexity": False, "bits_per_char": False}

    def unpack(self, batch: dict[str, torch.Tensor], device: torch.device) -> tuple[dict[str, torch.Tensor], Any]:
        inputs = {"input_ids": batch["input_ids"].to(device), "attention_mask": batch["attention_mask"].to(device)}
        return inputs, (batch["labels"].to(device), batch["target_chars"].to(device))

    def forward(self, model: nn.Module, inputs: dict[str, torch.Tensor], targets: Any) -> StepOutput:
        labels, chars = targets
        logits = model(**inputs).logits
        nll, tokens = shifted_nll(logits, labels)
        loss = (nll / max(tokens, 1)).float()
        return StepOutput(loss, nll.detach(), (tokens, chars))

    def batch_metrics(self, out: StepOutput) -> dict[str, torch.Tensor]:
        tokens, chars = out.targets
        return {"nll": out.outputs.double(), "tokens": torch.tensor(float(tokens), dtype=torch.float64),
                "chars": chars.sum().double(), "count": torch.tensor(float(chars.numel()))}

    def summarize(self, sums: dict[str, float]) -> dict[str, float]:
        nll, tokens, chars = sums.get("nll", 0.0), max(sums.get("tokens", 0.0), 1.0), max(sums.get("chars", 0.0), 1.0)
        loss = nll / tokens
        return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "bits_per_char": nll / math.log(2) / chars}
