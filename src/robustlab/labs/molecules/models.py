"""Sequence classifiers over SMILES token ids. Every model maps ``(ids (B, L) int64 right-padded with
0, lengths (B,))`` to one logit per molecule ``(B,)``, and padding never changes the result: the
LSTM reads its output at each sequence's last valid step (``output[:, -1]`` of a right-padded batch
would read padding), and the backward direction of the BiLSTM runs over each sequence's valid part
reversed (the backward half of ``output[:, -1]`` would have seen only padding)."""

from __future__ import annotations

import torch
from torch import nn


def valid_mask(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` bool: True at the positions of real tokens."""
    return torch.arange(ids.shape[1], device=ids.device)[None] < lengths[:, None]


def reverse_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each row's first ``length`` steps in reverse order, padding left where it was. ``x (B, L, …)``."""
    steps = torch.arange(x.shape[1], device=x.device)[None]
    index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


def last_valid(output: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``output (B, L, H)`` at each row's last valid step → ``(B, H)``."""
    index = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, output.shape[-1])
    return output.gather(1, index).squeeze(1)


class Head(nn.Sequential):
    """FC → ReLU → dropout → one logit."""

    def __init__(self, features: int, hidden: int, dropout: float) -> None:
        super().__init__(nn.Linear(features, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 1))


class OneHotMLP(nn.Module):
    """One-hot encoding of the first ``max_tokens`` tokens, flattened, through a fully connected
    network. The first layer is an embedding of ``(position, token)`` summed over positions — the
    same function as a linear layer on the flattened one-hot matrix, without building it; padding
    positions contribute nothing. Tokens past ``max_tokens`` are not seen."""

    def __init__(self, vocab: int, max_tokens: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.vocab, self.max_tokens = vocab, max_tokens
        self.first = nn.Embedding(max_tokens * vocab, hidden)
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, hidden // 2), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(hidden // 2, 1))

    def embed(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The first layer's per-position contributions ``(B, l, hidden)`` (zero at padding)."""
        ids = ids[:, : self.max_tokens]
        pos = torch.arange(ids.shape[1], device=ids.device)[None] * self.vocab
        return self.first(ids + pos) * valid_mask(ids, lengths.clamp(max=self.max_tokens))[..., None]

    def forward_embedded(self, emb: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(emb.sum(1) + self.bias).squeeze(-1)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.forward_embedded(self.embed(ids, lengths), lengths)


class SmilesLSTM(nn.Module):
    """Token embedding → LSTM (``bidirectional``: a second LSTM over the reversed valid part) →
    the last valid step's state (``pooling="last"``) or the masked mean over valid steps (``"mean"``)
    → FC → one logit."""

    def __init__(self, vocab: int, embed: int, hidden: int, fc: int, dropout: float, bidirectional: bool,
                 pooling: str = "last", layers: int = 1) -> None:
        super().__init__()
        self.pooling, self.bidirectional = pooling, bidirectional
        self.embedding = nn.Embedding(vocab, embed, padding_idx=0)
        self.forward_rnn = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True)
        self.backward_rnn = nn.LSTM(embed, hidden, num_layers=layers, batch_first=True) if bidirectional else None
        self.dropout = nn.Dropout(dropout)
        self.head = Head(hidden * (2 if bidirectional else 1), fc, dropout)

    def embed(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids)

    def _pool(self, out: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.pooling == "mean":
            mask = (torch.arange(out.shape[1], device=out.device)[None] < lengths[:, None])[..., None]
            return (out * mask).sum(1) / lengths.clamp(min=1)[:, None].to(out.dtype)
        return last_valid(out, lengths)

    def forward_embedded(self, emb: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats = [self._pool(self.forward_rnn(emb)[0], lengths)]
        if self.backward_rnn is not None:
            feats.append(self._pool(self.backward_rnn(reverse_valid(emb, lengths))[0], lengths))
        return self.head(self.dropout(torch.cat(feats, -1))).squeeze(-1)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.forward_embedded(self.embed(ids, lengths), lengths)
