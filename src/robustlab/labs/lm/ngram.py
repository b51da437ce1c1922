"""Count-based language-model baselines over token-id sequences (any tokenizer's ids): an add-one
unigram and a Jelinek–Mercer interpolated bigram. A fine-tuned model should beat both on held-out
poems; the NLL they give is in nats, summed over the target tokens, as the neural models report it.

Bigrams are counted within each training sequence, never across two. The bigram model is

    p(w | v) = λ · c(v, w) / c(v, ·) + (1 − λ) · p₁(w)        (p(w | v) = p₁(w) when c(v, ·) = 0)

with ``p₁(w) = (c(w) + 1) / (N + V)`` the add-one unigram over ``V`` ids and ``N`` training tokens.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from robustlab.core.errors import RobustlabError

DEFAULT_LAMBDA = 0.5  # the bigram weight when no held-out set is given: no tuning, an even mix
LAMBDA_GRID = np.round(np.arange(0.0, 1.0, 0.01), 2)  # the λ tried on a held-out set: 0.00 … 0.99


def _ids(tokens: Sequence[int], vocab_size: int, what: str) -> np.ndarray:
    """``tokens`` as an int64 array, every id in [0, vocab_size)."""
    arr = np.asarray(tokens, dtype=np.int64).reshape(-1)
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        bad = int(arr[(arr < 0) | (arr >= vocab_size)][0])
        raise RobustlabError(f"{what} holds token id {bad}, outside the vocabulary [0, {vocab_size})")
    return arr


def _check_vocab(vocab_size: int) -> None:
    if vocab_size < 1:
        raise RobustlabError(f"vocab_size must be at least 1, got {vocab_size}")


@dataclass(frozen=True, eq=False)
class UnigramLM:
    """Add-one unigram: ``log_probs[w] = log((c(w) + 1) / (N + V))``."""

    vocab_size: int
    log_probs: np.ndarray

    @classmethod
    def fit(cls, train_sequences: Sequence[Sequence[int]], vocab_size: int) -> UnigramLM:
        """The add-one unigram of the training tokens (ids in [0, vocab_size))."""
        _check_vocab(vocab_size)
        tokens = [_ids(s, vocab_size, "a training sequence") for s in train_sequences]
        flat = np.concatenate(tokens) if tokens else np.zeros(0, dtype=np.int64)
        counts = np.bincount(flat, minlength=vocab_size)
        return cls(vocab_size, np.log((counts + 1.0) / (flat.size + vocab_size)))

    def nll(self, context_tokens: Sequence[int], target_tokens: Sequence[int]) -> float:
        """Total NLL (nats) of ``target_tokens``; the context does not enter a unigram."""
        return float(self.nll_batch([context_tokens], [target_tokens])[0])

    def nll_batch(self, contexts: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]) -> np.ndarray:
        """Total NLL (nats) of each ``targets[i]``, shape ``(len(targets),)``."""
        _same_length(contexts, targets)
        ids = [_ids(t, self.vocab_size, "a target") for t in targets]
        rows = np.repeat(np.arange(len(ids)), [t.size for t in ids])
        flat = np.concatenate([np.zeros(0, dtype=np.int64), *ids])
        return np.bincount(rows, weights=-self.log_probs[flat], minlength=len(ids)).astype(float)


@dataclass(frozen=True, eq=False)
class InterpolatedBigramLM:
    """Jelinek–Mercer bigram (module docstring): sorted bigram keys ``v · V + w`` with their counts,
    ``history[v] = c(v, ·)``, the add-one unigram, and the bigram weight ``lam`` in [0, 1)."""

    vocab_size: int
    lam: float
    unigram: UnigramLM
    keys: np.ndarray
    counts: np.ndarray
    history: np.ndarray

    @classmethod
    def fit(cls, train_sequences: Sequence[Sequence[int]], vocab_size: int, lam: float | None = None,
            heldout: Sequence[Sequence[int]] | None = None) -> InterpolatedBigramLM:
        """The bigram of the training sequences with ``lam`` given, else the λ of :data:`LAMBDA_GRID` with
        the least NLL on ``heldout`` (each sequence scored from its first token), else :data:`DEFAULT_LAMBDA`."""
        unigram = UnigramLM.fit(train_sequences, vocab_size)
        seqs = [_ids(s, vocab_size, "a training sequence") for s in train_sequences]
        prev = np.concatenate([s[:-1] for s in seqs]) if seqs else np.zeros(0, dtype=np.int64)
        nxt = np.concatenate([s[1:] for s in seqs]) if seqs else np.zeros(0, dtype=np.int64)
        keys, counts = np.unique(prev * vocab_size + nxt, return_counts=True)
        history = np.bincount(prev, minlength=vocab_size)
        model = cls(vocab_size, DEFAULT_LAMBDA, unigram, keys, counts, history)
        if lam is not None:
            if not 0.0 <= lam < 1.0:
                raise RobustlabError(f"the bigram weight lam must be in [0, 1), got {lam}")
            return model._with(lam)
        if heldout is not None:
            return model._with(model._best_lambda(heldout))
        return model

    def _with(self, lam: float) -> InterpolatedBigramLM:
        return InterpolatedBigramLM(self.vocab_size, float(lam), self.unigram, self.keys, self.counts, self.history)

    def _parts(self, prev: np.ndarray, nxt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per position: the bigram MLE, the unigram probability, and whether the history was seen
        (``prev`` −1: no history)."""
        seen = prev >= 0
        seen[seen] = self.history[prev[seen]] > 0
        mle = np.zeros(len(nxt))
        if seen.any():  # a seen history implies at least one bigram key
            key = prev[seen] * self.vocab_size + nxt[seen]
            at = np.minimum(np.searchsorted(self.keys, key), len(self.keys) - 1)
            mle[seen] = np.where(self.keys[at] == key, self.counts[at], 0) / self.history[prev[seen]]
        return mle, np.exp(self.unigram.log_probs[nxt]), seen

    def _positions(self, contexts: Sequence[Sequence[int]],
                   targets: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flattened ``(example index, previous id or −1, target id)`` over all target tokens."""
        empty = np.zeros(0, dtype=np.int64)
        rows, prevs, nxts = [empty], [empty], [empty]
        for i, (c, t) in enumerate(zip(contexts, targets, strict=True)):
            c, t = _ids(c, self.vocab_size, "a context"), _ids(t, self.vocab_size, "a target")
            first = c[-1:] if c.size else np.array([-1], dtype=np.int64)
            prevs.append(np.concatenate([first, t[:-1]])[: t.size])
            nxts.append(t)
            rows.append(np.full(t.size, i, dtype=np.int64))
        return np.concatenate(rows), np.concatenate(prevs), np.concatenate(nxts)

    def _best_lambda(self, heldout: Sequence[Sequence[int]]) -> float:
        _, prev, nxt = self._positions([[] for _ in heldout], heldout)
        if not nxt.size:
            raise RobustlabError("the held-out set for choosing lam has no tokens")
        mle, uni, seen = self._parts(prev, nxt)
        lam = LAMBDA_GRID[:, None]
        nll = -np.log(np.where(seen, lam * mle + (1 - lam) * uni, uni)).sum(axis=1)
        return float(LAMBDA_GRID[int(np.argmin(nll))])

    def nll_batch(self, contexts: Sequence[Sequence[int]], targets: Sequence[Sequence[int]]) -> np.ndarray:
        """Total NLL (nats) of each ``targets[i]`` given ``contexts[i]``, shape ``(len(targets),)``: the
        first target token is conditioned on the last context token (on nothing — the unigram — when
        the context is empty), each later one on the target token before it."""
        _same_length(contexts, targets)
        rows, prev, nxt = self._positions(contexts, targets)
        mle, uni, seen = self._parts(prev, nxt)
        p = np.where(seen, self.lam * mle + (1 - self.lam) * uni, uni)
        return np.bincount(rows, weights=-np.log(p), minlength=len(targets)).astype(float)

    def nll(self, context_tokens: Sequence[int], target_tokens: Sequence[int]) -> float:
        """Total NLL (nats) of ``target_tokens`` given ``context_tokens`` (see :meth:`nll_batch`)."""
        return float(self.nll_batch([context_tokens], [target_tokens])[0])


def _same_length(contexts: Sequence, targets: Sequence) -> None:
    if len(contexts) != len(targets):
        raise RobustlabError(f"{len(contexts)} contexts for {len(targets)} targets; give one context per target")


def perplexity(total_nll: float, n_tokens: int) -> float:
    """``exp(total_nll / n_tokens)``: the per-token perplexity of a total NLL in nats."""
    if n_tokens <= 0:
        raise RobustlabError(f"perplexity needs at least one token, got {n_tokens}")
    return math.exp(total_nll / n_tokens)


def bits_per_char(total_nll: float, n_chars: int) -> float:
    """``total_nll / ln 2 / n_chars``: bits per character of the target text, for a total NLL in nats —
    comparable across tokenizers, unlike per-token perplexity."""
    if n_chars <= 0:
        raise RobustlabError(f"bits per character needs at least one character, got {n_chars}")
    return total_nll / math.log(2) / n_chars
