"""SMILES tokenisers and the vocabulary of a training split.

The default ``regex`` tokeniser is the standard SMILES pattern (Schwaller et al. 2019): a bracket
atom (``[C@@H]``, ``[nH]``, ``[Na+]``) is one token, ``Cl``/``Br`` are one token, ring-bond digits and
``%nn`` closures are tokens; joining the tokens gives the string back. ``char`` splits per character,
as a one-hot-per-character baseline does (``Cl`` then becomes ``C`` + ``l``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from robustlab.core.errors import RobustlabError

SMILES_PATTERN = re.compile(
    r"(\[[^\]]+]|Br?|Cl?|N|O|S|P|F|I|b|c|n|o|s|p|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>|\*|\$|%[0-9]{2}|[0-9])"
)
PAD, UNK = "<pad>", "<unk>"


def tokenize(smiles: str, kind: str = "regex") -> list[str]:
    """The tokens of one SMILES string; ``"".join(tokenize(s)) == s`` for every valid SMILES."""
    if kind == "char":
        return list(smiles)
    if kind != "regex":
        raise RobustlabError(f"unknown tokenizer {kind!r}; choose regex or char")
    tokens = SMILES_PATTERN.findall(smiles)
    if "".join(tokens) != smiles:
        raise RobustlabError(f"SMILES {smiles!r} holds characters the SMILES tokenizer does not know")
    return tokens


@dataclass(frozen=True)
class Vocabulary:
    """Token ↔ id; id 0 is padding, id 1 the unknown token (tokens never seen in training)."""

    tokens: tuple[str, ...]

    @classmethod
    def build(cls, token_lists: Sequence[Sequence[str]]) -> Vocabulary:
        """The vocabulary of the training split's tokens, most frequent first (ties by token)."""
        counts = Counter(t for toks in token_lists for t in toks)
        ordered = sorted(counts, key=lambda t: (-counts[t], t))
        return cls((PAD, UNK, *ordered))

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}

    def encode(self, token_lists: Sequence[Sequence[str]], max_length: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``(ids (N, L) int64 right-padded with 0, lengths (N,) int64, unknown-token count)``;
        ``L`` is the longest sequence (at most ``max_length``; longer ones are an error)."""
        index = self.index
        longest = max((len(t) for t in token_lists), default=1)
        if longest > max_length:
            raise RobustlabError(f"a SMILES has {longest} tokens, more than the maximum {max_length}")
        ids = torch.zeros(len(token_lists), max(longest, 1), dtype=torch.long)
        lengths = torch.tensor([len(t) for t in token_lists], dtype=torch.long)
        unknown = 0
        for i, toks in enumerate(token_lists):
            row = [index.get(t, 1) for t in toks]
            unknown += row.count(1)
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        return ids, lengths, unknown
