"""Shared builders of the captioning tests."""

from __future__ import annotations

import torch

from robustlab.labs.captioning.decoder import AttentionDecoder


def make_decoder(vocab: int, enc: int, seed: int = 0, attention: str = "additive") -> AttentionDecoder:
    """A small seeded decoder in eval mode whose next-word distribution is far from uniform."""
    torch.manual_seed(seed)
    decoder = AttentionDecoder(vocab, enc, embed_dim=8, dec_dim=16, att_dim=8, attention=attention, dropout=0.5)
    with torch.no_grad():  # a less flat next-word distribution than the near-uniform initial one
        decoder.fc.weight.mul_(20.0)
    return decoder.eval()
