"""Couplet generation: batched decoding through ``model.generate`` and rhyme-aware reranking.

Prompts are ``<s> source <sep>``, left-padded with an attention mask, so a batch decodes exactly as
its prompts would one at a time (greedy). A row stops at ``</s>``; the text returned is what the
model wrote after ``<sep>``, special tokens removed. ``<s>``, ``<pad>``, ``<sep>`` and ``<unk>``, which
no target contains, are never generated. Sampling is reproducible: batch ``k`` draws from torch's
RNG seeded with ``seed * 1_000_003 + k`` inside a forked RNG state (the caller's RNG streams are left
as they were), so the same prompts, settings, batch size and device give the same text. Decoding
options stored in a checkpoint's ``generation_config.json`` (a repetition penalty, say) are
overridden by neutral values: only :class:`DecodeSettings` decides.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from pydantic import ConfigDict, Field
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from robustlab.core.config import Strict
from robustlab.core.errors import RobustlabError
from robustlab.core.modes import eval_mode
from robustlab.labs.lm.examples import collate_prompts, prompt_ids, special_id


class DecodeSettings(Strict):
    """How continuations are decoded: greedy (``do_sample=False``) or sampled at ``temperature``
    from the ``top_k`` most likely tokens (0 = all) within nucleus ``top_p`` (1 = all);
    ``num_candidates`` samples per prompt for :func:`generate_reranked`; ``seed`` fixes the draws."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(64, ge=1)
    temperature: float = Field(1.0, gt=0.0)
    top_k: int = Field(0, ge=0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    do_sample: bool = False
    num_candidates: int = Field(1, ge=1)
    seed: int = Field(0, ge=0)


def _never_generated(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids a continuation never contains (no target holds them): ``<s>``, ``<pad>``, ``<sep>``, ``<unk>``."""
    ids = {getattr(tokenizer, f"{role}_token_id", None) for role in ("bos", "pad", "sep", "unk")}
    return sorted(i for i in ids - {None, special_id(tokenizer, "eos")})


def _generate_kwargs(settings: DecodeSettings, tokenizer: PreTrainedTokenizerBase, n: int) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "suppress_tokens": _never_generated(tokenizer),
        "max_new_tokens": settings.max_new_tokens, "min_new_tokens": 0, "do_sample": settings.do_sample,
        "num_beams": 1, "num_return_sequences": n, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0,
        "bos_token_id": special_id(tokenizer, "bos"), "eos_token_id": special_id(tokenizer, "eos"),
        "pad_token_id": special_id(tokenizer, "pad"),
    }
    if settings.do_sample:
        kwargs.update(temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p)
    return kwargs


def _context_size(model: PreTrainedModel) -> int | None:
    config = model.config
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def _check_fits(prompts: Sequence[Sequence[int]], settings: DecodeSettings, model: PreTrainedModel) -> None:
    context = _context_size(model)
    if context is None:
        return
    for i, p in enumerate(prompts):
        if len(p) + settings.max_new_tokens > context:
            raise RobustlabError(f"prompt {i} has {len(p)} tokens; with max_new_tokens={settings.max_new_tokens} "
                                 f"it exceeds the model's context of {context} (lower max_new_tokens to "
                                 f"{context - len(p)} or less)")


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Torch's RNG (CPU, and ``device`` when an accelerator) seeded with ``seed`` inside, restored afterwards."""
    accelerated = device.type != "cpu"
    devices, kind = ([device], device.type) if accelerated else ([], None)
    with torch.random.fork_rng(devices=devices, device_type=kind):
        torch.manual_seed(seed)
        yield


def continuation_text(tokenizer: PreTrainedTokenizerBase, new_ids: Sequence[int]) -> str:
    """The text of generated ids up to the first ``</s>``, special tokens removed, outer whitespace
    stripped."""
    ids = list(new_ids)
    eos = special_id(tokenizer, "eos")
    if eos in ids:
        ids = ids[: ids.index(eos)]
    return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False).strip()


def sample_candidates(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                      settings: DecodeSettings, batch_size: int = 16, n: int = 1) -> list[list[str]]:
    """``n`` continuations per prompt (``result[i]`` belongs to ``prompts[i]``), decoded in batches
    of ``batch_size`` prompts, in eval mode. Several candidates need ``do_sample``."""
    if n > 1 and not settings.do_sample:
        raise RobustlabError(f"{n} candidates per prompt need do_sample=True; greedy decoding gives one")
    if batch_size < 1:
        raise RobustlabError(f"batch_size must be >= 1, got {batch_size}")
    ids = [prompt_ids(tokenizer, p) for p in prompts]
    _check_fits(ids, settings, model)
    device = next(model.parameters()).device
    kwargs = _generate_kwargs(settings, tokenizer, n)
    out: list[list[str]] = []
    with eval_mode(model):
        for k, start in enumerate(range(0, len(ids), batch_size)):
            batch = {key: t.to(device) for key, t in collate_prompts(ids[start:start + batch_size],
                                                                     special_id(tokenizer, "pad")).items()}
            with _seeded(settings.seed * 1_000_003 + k, device):
                sequences = model.generate(**batch, **kwargs)
            new = sequences[:, batch["input_ids"].shape[1]:].tolist()
            texts = [continuation_text(tokenizer, row) for row in new]
            out += [texts[j:j + n] for j in range(0, len(texts), n)]
    return out


def generate(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
             settings: DecodeSettings, batch_size: int = 16) -> list[str]:
    """One continuation per prompt (the text the model writes after ``<s> prompt <sep>``, up to
    ``</s>``), in the order of ``prompts``."""
    return [c[0] for c in sample_candidates(model, tokenizer, prompts, settings, batch_size, n=1)]


def _value(score: float) -> float:
    return -math.inf if math.isnan(score) else score


def rerank(candidates: Sequence[Sequence[str]], score: Callable[[int, str], float]) -> list[str]:
    """Per prompt ``i``, the candidate with the highest ``score(i, candidate)`` (ties: the earliest;
    NaN counts as the lowest score)."""
    chosen = []
    for i, options in enumerate(candidates):
        if not options:
            raise RobustlabError(f"prompt {i} has no candidates to choose from")
        values = [_value(score(i, c)) for c in options]
        chosen.append(options[values.index(max(values))])
    return chosen


def generate_reranked(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                      settings: DecodeSettings, score: Callable[[int, str], float],
                      batch_size: int = 16) -> list[str]:
    """Sample ``settings.num_candidates`` continuations per prompt and keep, per prompt, the one
    ``score`` rates best (:func:`rerank`) — e.g. a rhyme check against the prompt's couplet."""
    candidates = sample_candidates(model, tokenizer, prompts, settings, batch_size, n=settings.num_candidates)
    return rerank(candidates, score)
