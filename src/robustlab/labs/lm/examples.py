"""Couplet pairs as token ids, and how they are batched.

One example is ``<s> source <sep>`` (the prompt) followed by ``target </s>`` (the continuation). The
ids are built piece by piece — never by tokenizing a concatenated string — so the prompt a model is
trained on is exactly the prompt it is given at generation time. Training batches are right-padded
and carry the label ``-100`` (ignored) on the prompt and on padding: only target tokens and the
closing ``</s>`` are learned and scored, so the model learns to stop. Prompt batches for generation
are left-padded, so every row's next token follows directly on its own prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from robustlab.core.errors import RobustlabError

IGNORE = -100  # the label of positions that are neither learned nor scored


def special_id(tokenizer: PreTrainedTokenizerBase, role: str) -> int:
    """The id of the tokenizer's ``role`` token (``bos``, ``eos``, ``pad``, ``sep``)."""
    token_id = getattr(tokenizer, f"{role}_token_id", None)
    if token_id is None:
        raise RobustlabError(f"the tokenizer has no {role} token; give it one with ensure_special_tokens()")
    return int(token_id)


def prompt_ids(tokenizer: PreTrainedTokenizerBase, source: str) -> list[int]:
    """``<s> source <sep>`` as token ids."""
    body = tokenizer.encode(source, add_special_tokens=False)
    return [special_id(tokenizer, "bos"), *body, special_id(tokenizer, "sep")]


def target_ids(tokenizer: PreTrainedTokenizerBase, target: str) -> list[int]:
    """``target </s>`` as token ids."""
    return [*tokenizer.encode(target, add_special_tokens=False), special_id(tokenizer, "eos")]


@dataclass(frozen=True)
class EncodedPairs(Dataset):
    """Token ids of ``n`` pairs: ``prompts[i]`` (``<s> source <sep>``), ``targets[i]`` (``target </s>``)
    and ``target_chars[i]``, the number of characters (code points) of the target text. Item ``i`` is
    ``{"prompt": (P,) int64, "target": (T,) int64, "target_chars": int}``."""

    prompts: list[list[int]]
    targets: list[list[int]]
    target_chars: list[int]

    def __len__(self) -> int:
        return len(self.prompts)

    def __getitem__(self, i: int) -> dict:
        return {"prompt": torch.tensor(self.prompts[i], dtype=torch.long),
                "target": torch.tensor(self.targets[i], dtype=torch.long), "target_chars": self.target_chars[i]}

    @property
    def prompt_lengths(self) -> list[int]:
        return [len(p) for p in self.prompts]

    @property
    def lengths(self) -> list[int]:
        """Tokens of each whole example (prompt + target)."""
        return [len(p) + len(t) for p, t in zip(self.prompts, self.targets, strict=True)]


def encode_pairs(tokenizer: PreTrainedTokenizerBase, sources: Sequence[str], targets: Sequence[str],
                 max_length: int) -> EncodedPairs:
    """Encode ``sources[i] → targets[i]``. Every example must fit in ``max_length`` tokens: a longer one
    is an error naming it (index, length, limit) — nothing is truncated, since a cut target would
    teach the model to stop mid-verse and a cut prompt would change the task."""
    if len(sources) != len(targets):
        raise RobustlabError(f"{len(sources)} sources but {len(targets)} targets; pairs need one of each")
    prompts = [prompt_ids(tokenizer, s) for s in sources]
    conts = [target_ids(tokenizer, t) for t in targets]
    for i, (p, c) in enumerate(zip(prompts, conts, strict=True)):
        if len(p) + len(c) > max_length:
            raise RobustlabError(f"pair {i} is {len(p) + len(c)} tokens long, over the limit max_length={max_length}")
    return EncodedPairs(prompts, conts, [len(t) for t in targets])


def _pad_rows(rows: Sequence[torch.Tensor], value: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``rows`` padded with ``value`` to the longest, on the ``left`` or right → ``(B, L)`` and its
    ``(B, L)`` int64 mask, 1 on real tokens."""
    longest = max(len(r) for r in rows)
    out = torch.full((len(rows), longest), value, dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for b, r in enumerate(rows):
        span = slice(longest - len(r), longest) if left else slice(0, len(r))
        out[b, span], mask[b, span] = r, 1
    return out, mask


def collate_training(batch: Sequence[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Items of :class:`EncodedPairs` → right-padded ``input_ids (B, L)`` int64, ``attention_mask (B, L)``
    (1 on real tokens, 0 on pads), ``labels (B, L)`` (the input id on target tokens and on ``</s>``,
    ``-100`` on prompt tokens and pads) and ``target_chars (B,)``. Labels are not shifted: position t
    holds token t, and the loss predicts it from the positions before (see :mod:`.perplexity`)."""
    if not batch:
        raise RobustlabError("cannot collate an empty batch")
    rows = [torch.cat([item["prompt"], item["target"]]) for item in batch]
    input_ids, attention_mask = _pad_rows(rows, pad_id, left=False)
    labels = torch.full_like(input_ids, IGNORE)
    for b, item in enumerate(batch):
        start = len(item["prompt"])
        labels[b, start:start + len(item["target"])] = item["target"]
    chars = torch.tensor([item["target_chars"] for item in batch], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "target_chars": chars}


def collate_prompts(prompts: Sequence[Sequence[int] | torch.Tensor], pad_id: int) -> dict[str, torch.Tensor]:
    """Prompt ids → LEFT-padded ``input_ids (B, L)`` int64 and ``attention_mask (B, L)`` (0 on the pads
    at the start of short rows), so that generated tokens follow every row's last prompt token."""
    if not prompts:
        raise RobustlabError("cannot collate an empty list of prompts")
    rows = [torch.as_tensor(p, dtype=torch.long) for p in prompts]
    input_ids, attention_mask = _pad_rows(rows, pad_id, left=True)
    return {"input_ids": input_ids, "attention_mask": attention_mask}
