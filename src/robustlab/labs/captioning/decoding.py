"""Caption generation from an :class:`~robustlab.labs.captioning.decoder.AttentionDecoder`: greedy
decoding and beam search, both batched over the images (and the beams), never looped per image.

Shapes: annotations ``a`` ``(B, P, E)``; the result is a :class:`Decoded` with ``T`` generated steps
(``T ≤ max_length``; the loop ends early once every sequence has emitted ``<eos>``).

Promises shared by both decoders:

* decoding starts from ``<sos>`` (not part of ``tokens``) and a sequence ends at its first ``<eos>``,
  which is kept in ``tokens``; every later position is ``<pad>``. A sequence that never emits
  ``<eos>`` has ``max_length`` tokens and ``lengths == max_length`` (the loop always stops there);
* ``<pad>`` and ``<sos>`` are never emitted (they are not words), and neither is ``<unk>`` with
  ``ban_unk``. Banning only excludes the ids from the choice: ``logprob`` is the sum of the model's own
  log-softmax (over the whole vocabulary) of the chosen ids, ``<eos>`` included, so it equals the
  teacher-forced log-likelihood of ``tokens``;
* the decoder's mode is left alone: the caller puts it in ``eval()`` (dropout off) before decoding;
  the functions run under ``torch.no_grad()`` whatever the caller's grad mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from robustlab.labs.captioning.decoder import AttentionDecoder
from robustlab.labs.captioning.text import EOS, PAD, SOS, UNK

NEVER = (PAD, SOS)  #: ids no decoder emits


@dataclass
class Decoded:
    """Generated captions of ``B`` images over ``T`` steps.

    ``tokens`` ``(B, T)`` long: the ids after ``<sos>``, up to and including ``<eos>``, ``<pad>`` after;
    ``lengths`` ``(B,)`` long: tokens before ``<eos>`` (``<eos>`` excluded; ``T``-bounded, ``max_length``
    for a sequence without ``<eos>``); ``alphas`` ``(B, T, P)``: the attention over the cells when each
    token was predicted (rows sum to 1 up to and including ``<eos>``, zeros after);
    ``logprob`` ``(B,)``: the sum of the log-probabilities of the chosen tokens, ``<eos>`` included."""

    tokens: Tensor
    lengths: Tensor
    alphas: Tensor
    logprob: Tensor

    def words(self, itos: Sequence[str]) -> list[list[str]]:
        """Per image, the words of the tokens before ``<eos>``; ``<pad>``/``<sos>``/``<eos>`` ids skipped,
        ``<unk>`` kept as ``itos[UNK]``."""
        skip = (PAD, SOS, EOS)
        rows = self.tokens.tolist()
        return [[itos[i] for i in row[:n] if i not in skip] for row, n in zip(rows, self.lengths.tolist(), strict=True)]


def _check(max_length: int, beam: int = 1) -> None:
    if max_length < 1:
        raise ValueError(f"max_length must be ≥ 1, got {max_length}")
    if beam < 1:
        raise ValueError(f"beam must be ≥ 1, got {beam}")


def _banned(vocab_size: int, ban_unk: bool, device: torch.device) -> Tensor:
    """Bool mask ``(V,)`` of the ids never chosen."""
    banned = torch.zeros(vocab_size, dtype=torch.bool, device=device)
    banned[list(NEVER)] = True
    if ban_unk:
        banned[UNK] = True
    return banned


@torch.no_grad()
def greedy_decode(decoder: AttentionDecoder, a: Tensor, max_length: int, ban_unk: bool = False) -> Decoded:
    """The most likely next word at every step, for the whole batch at once (see the module docstring
    for the promises). ``a`` ``(B, P, E)``; at most ``max_length`` steps."""
    _check(max_length)
    b, device = a.shape[0], a.device
    banned = _banned(decoder.vocab_size, ban_unk, device)
    h, c, keys = decoder.start(a)
    words = torch.full((b,), SOS, dtype=torch.long, device=device)
    finished = torch.zeros(b, dtype=torch.bool, device=device)
    lengths = torch.zeros(b, dtype=torch.long, device=device)
    logprob = torch.zeros(b, dtype=a.dtype, device=device)
    tokens, alphas = [], []
    for _ in range(max_length):
        logits, h, c, alpha = decoder.step(a, keys, h, c, words)
        lp = logits.log_softmax(-1).masked_fill(banned, float("-inf"))
        best, choice = lp.max(-1)
        choice = choice.masked_fill(finished, PAD)
        logprob = logprob + best.masked_fill(finished, 0.0)
        alphas.append(alpha.masked_fill(finished.unsqueeze(1), 0.0))
        tokens.append(choice)
        lengths = lengths + (~finished & (choice != EOS)).long()
        finished = finished | (choice == EOS)
        words = choice
        if bool(finished.all()):
            break
    return Decoded(torch.stack(tokens, 1), lengths, torch.stack(alphas, 1), logprob)


@torch.no_grad()
def beam_search(decoder: AttentionDecoder, a: Tensor, beam: int, max_length: int, length_penalty: float = 0.0,
                ban_unk: bool = False) -> Decoded:
    """Beam search with ``beam`` hypotheses per image, all ``B × beam`` decoded as one batch.

    Scores are sums of log-softmax. Step 0 expands only the single ``<sos>`` hypothesis (the other
    beams start at ``-inf``); every step keeps, per image, the ``beam`` best of the ``beam × V``
    extensions (``parent = idx // V``, ``word = idx % V``). A finished beam (it emitted ``<eos>``) keeps
    its score and extends only with ``<pad>`` at cost 0, so it competes with the live beams on its raw
    score; an image whose beams have all finished leaves the batch (its result is final), and the loop
    stops once no image is left, or after ``max_length`` steps. The caption returned per image
    maximises ``score / length ** length_penalty``, ``length`` counting its tokens with ``<eos>``
    (``length_penalty = 0``: the raw sum; ``> 0`` favours longer captions; the penalty only picks among
    the final beams, pruning uses raw scores). ``logprob`` is the chosen raw score. ``beam = 1`` is
    greedy decoding, token for token.

    ``a`` ``(B, P, E)``; ``beam`` at most the number of emittable ids (else the surplus beams stay at
    ``-inf`` and never win)."""
    _check(max_length, beam)
    b, p, device = a.shape[0], a.shape[1], a.device
    k, v = beam, decoder.vocab_size
    banned = _banned(v, ban_unk, device)
    h, c, keys = decoder.start(a)
    rows_a = a.repeat_interleave(k, 0)
    h, c, keys = h.repeat_interleave(k, 0), c.repeat_interleave(k, 0), keys.repeat_interleave(k, 0)
    scores = torch.zeros(b, k, dtype=a.dtype, device=device)
    scores[:, 1:] = float("-inf")  # one <sos> hypothesis, not k identical ones
    finished = torch.zeros(b, k, dtype=torch.bool, device=device)
    length = torch.zeros(b, k, dtype=torch.long, device=device)  # tokens incl. <eos>
    words = torch.full((b * k,), SOS, dtype=torch.long, device=device)
    pad_only = torch.full((v,), float("-inf"), dtype=a.dtype, device=device)
    pad_only[PAD] = 0.0
    live = torch.arange(b, device=device)  # images with a beam still open
    offsets = torch.arange(k, device=device)
    stay = offsets.expand(b, k)  # the parent of a beam whose image has left the batch: itself
    parents, chosen, attention = [], [], []  # per step (B, K), (B, K), (B, K, P): back-pointers
    for _ in range(max_length):
        n = live.shape[0]
        logits, h, c, alpha = decoder.step(rows_a, keys, h, c, words)
        done = finished[live]
        lp = logits.log_softmax(-1).masked_fill(banned, float("-inf")).view(n, k, v)
        lp = torch.where(done.unsqueeze(-1), pad_only, lp)
        top, idx = (scores[live].unsqueeze(-1) + lp).view(n, k * v).topk(k, -1)
        parent = torch.div(idx, v, rounding_mode="floor")  # (n, K)
        word = idx % v
        was_finished = done.gather(1, parent)
        flat_parent = (parent + torch.arange(n, device=device).unsqueeze(1) * k).view(-1)
        step_parent, step_word = stay.clone(), torch.full((b, k), PAD, dtype=torch.long, device=device)
        step_alpha = torch.zeros(b, k, p, dtype=a.dtype, device=device)
        step_parent[live], step_word[live] = parent, word
        step_alpha[live] = alpha[flat_parent].view(n, k, p).masked_fill(was_finished.unsqueeze(-1), 0.0)
        parents.append(step_parent)
        chosen.append(step_word)
        attention.append(step_alpha)
        length[live] = length[live].gather(1, parent) + (~was_finished).long()
        now_finished = was_finished | (word == EOS)
        finished[live], scores[live] = now_finished, top
        h, c, words = h[flat_parent], c[flat_parent], word.view(-1)
        open_images = ~now_finished.all(1)
        if not bool(open_images.all()):  # drop the images whose beams have all finished
            if not bool(open_images.any()):
                break
            keep = (open_images.nonzero().squeeze(1).unsqueeze(1) * k + offsets).view(-1)
            live = live[open_images]
            rows_a, keys, h, c, words = rows_a[keep], keys[keep], h[keep], c[keep], words[keep]
    penalised = scores if length_penalty == 0 else scores / length.to(scores.dtype) ** length_penalty
    pick = penalised.argmax(-1)  # (B,)
    rows = torch.arange(b, device=device)
    lengths = length[rows, pick] - finished[rows, pick].long()
    tokens, alphas, at = [], [], pick
    for step_parent, step_word, step_alpha in zip(reversed(parents), reversed(chosen), reversed(attention),
                                                  strict=True):
        tokens.append(step_word[rows, at])
        alphas.append(step_alpha[rows, at])
        at = step_parent[rows, at]
    return Decoded(torch.stack(tokens[::-1], 1), lengths, torch.stack(alphas[::-1], 1), scores[rows, pick])
