"""The attention LSTM decoder of "Show, Attend and Tell" (Xu et al. 2015) and its two attentions.

Shapes: annotations ``a`` ``(B, P, E)`` (``P = h·w`` cells of the encoder grid, ``E`` channels); captions
``(B, L)`` word ids starting with ``<sos>``; ``lengths`` ``(B,)`` counting ``<sos>`` and ``<eos>``.
Per step the decoder attends over the cells with its previous hidden state, gates the context with
``sigmoid(f_β(h))`` (option), feeds ``[embedding of the previous word; context]`` to an LSTM cell and
predicts the next word from the new hidden state. ``h0``/``c0`` come from the mean annotation through
two linear maps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AdditiveAttention(nn.Module):
    """Bahdanau attention: ``e_i = w·tanh(W_a a_i + W_h h)``."""

    def __init__(self, enc_dim: int, dec_dim: int, att_dim: int) -> None:
        super().__init__()
        self.enc = nn.Linear(enc_dim, att_dim)
        self.dec = nn.Linear(dec_dim, att_dim)
        self.score = nn.Linear(att_dim, 1)

    def keys(self, a: Tensor) -> Tensor:
        """The annotations' projection ``(B, P, A)``, computed once per caption (not per step)."""
        return self.enc(a)

    def scores(self, keys: Tensor, h: Tensor) -> Tensor:
        """Pre-softmax scores ``(B, P)``."""
        return self.score(torch.tanh(keys + self.dec(h).unsqueeze(1))).squeeze(-1)


class DotAttention(nn.Module):
    """Scaled dot-product attention: ``e_i = (W_k a_i)·(W_q h) / √A``."""

    def __init__(self, enc_dim: int, dec_dim: int, att_dim: int) -> None:
        super().__init__()
        self.enc = nn.Linear(enc_dim, att_dim)
        self.dec = nn.Linear(dec_dim, att_dim)
        self.scale = 1.0 / math.sqrt(att_dim)

    def keys(self, a: Tensor) -> Tensor:
        return self.enc(a)

    def scores(self, keys: Tensor, h: Tensor) -> Tensor:
        return torch.bmm(keys, self.dec(h).unsqueeze(-1)).squeeze(-1) * self.scale


ATTENTIONS = {"additive": AdditiveAttention, "dot": DotAttention}


class AttentionDecoder(nn.Module):
    """See the module docstring; ``vocab_size`` words out, ``attention`` ``additive`` or ``dot``."""

    def __init__(self, vocab_size: int, enc_dim: int, embed_dim: int = 256, dec_dim: int = 512,
                 att_dim: int = 256, attention: str = "additive", gate: bool = True, dropout: float = 0.5) -> None:
        super().__init__()
        self.vocab_size, self.enc_dim, self.dec_dim = vocab_size, enc_dim, dec_dim
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.attention = ATTENTIONS[attention](enc_dim, dec_dim, att_dim)
        self.init_h = nn.Linear(enc_dim, dec_dim)
        self.init_c = nn.Linear(enc_dim, dec_dim)
        self.gate = nn.Linear(dec_dim, enc_dim) if gate else None
        self.lstm = nn.LSTMCell(embed_dim + enc_dim, dec_dim)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dec_dim, vocab_size)
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.uniform_(self.fc.weight, -0.1, 0.1)
        nn.init.zeros_(self.fc.bias)

    def start(self, a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(h0, c0, keys)`` for annotations ``a`` ``(B, P, E)``."""
        mean = a.mean(1)
        return self.init_h(mean), self.init_c(mean), self.attention.keys(a)

    def attend(self, a: Tensor, keys: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        """``(context (B, E), alpha (B, P))``: the (gated) attention-weighted annotation."""
        alpha = self.attention.scores(keys, h).softmax(-1)
        context = torch.bmm(alpha.unsqueeze(1), a).squeeze(1)
        if self.gate is not None:
            context = torch.sigmoid(self.gate(h)) * context
        return context, alpha

    def step(self, a: Tensor, keys: Tensor, h: Tensor, c: Tensor, words: Tensor
             ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """One word: ``(logits (B, V), h, c, alpha (B, P))`` after feeding ``words`` ``(B,)``."""
        context, alpha = self.attend(a, keys, h)
        h, c = self.lstm(torch.cat([self.embedding(words), context], 1), (h, c))
        return self.fc(self.dropout(h)), h, c, alpha

    def forward(self, a: Tensor, captions: Tensor, lengths: Tensor, teacher_forcing: float = 1.0,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Next-word logits ``(B, T, V)`` and attention ``(B, T, P)`` with ``T = max(lengths) − 1``;
        rows past a caption's end are zeros. Step ``t`` is fed the true word ``captions[:, t]``
        (teacher forcing), or — with probability ``1 − teacher_forcing``, drawn per caption and step
        from ``generator`` — the model's own previous prediction (scheduled sampling).

        Captions are processed longest first and the batch shrinks as captions end, so no step is
        spent on padding; the annotations' projection is computed once."""
        lengths = lengths.to(captions.device)
        steps = lengths - 1
        order = steps.argsort(descending=True)
        a, captions, steps = a[order], captions[order], steps[order]
        b, t_max = captions.shape[0], int(steps.max())
        active = (steps.unsqueeze(0) > torch.arange(t_max, device=steps.device).unsqueeze(1)).sum(1).tolist()
        h, c, keys = self.start(a)
        sampled = teacher_forcing < 1.0
        hs, alphas, logits_t = [], [], []
        prev = captions[:, 0]
        for t in range(t_max):
            n = active[t]
            words = captions[:n, t]
            if sampled and t > 0:
                own = torch.rand(n, generator=generator, device="cpu").to(words.device) >= teacher_forcing
                words = torch.where(own, prev[:n], words)
            context, alpha = self.attend(a[:n], keys[:n], h[:n])
            h, c = self.lstm(torch.cat([self.embedding(words), context], 1), (h[:n], c[:n]))
            hs.append(F.pad(h, (0, 0, 0, b - n)))
            alphas.append(F.pad(alpha, (0, 0, 0, b - n)))
            if sampled:
                z = self.fc(self.dropout(h))
                logits_t.append(F.pad(z, (0, 0, 0, b - n)))
                prev = z.detach().argmax(-1)
        alpha = torch.stack(alphas, 1)
        logits = torch.stack(logits_t, 1) if sampled else self.fc(self.dropout(torch.stack(hs, 1)))
        if not sampled:  # padded rows: zero logits like the scheduled path
            valid = steps.unsqueeze(1) > torch.arange(t_max, device=steps.device)
            logits = logits * valid.unsqueeze(-1)
        inverse = order.argsort()
        return logits[inverse], alpha[inverse]


def doubly_stochastic_penalty(alpha: Tensor) -> Tensor:
    """``mean_{b,i} (1 − Σ_t α_{b,t,i})²`` of attention ``(B, T, P)`` (padded steps are zeros): pushes
    every cell to receive about one unit of attention over the caption. The paper's ``Σ_i`` divided by
    ``P``, so λ has the scale of the common PyTorch implementation (λ = 1)."""
    return ((1.0 - alpha.sum(1)) ** 2).mean()
