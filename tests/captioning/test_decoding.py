"""Greedy decoding and beam search against a per-image brute-force reference, batch composition and the
promises of :class:`Decoded` (lengths, log-probabilities, attention rows, bans, length penalty)."""

from __future__ import annotations

import pytest
import torch
from caption_helpers import make_decoder as small_decoder

from robustlab.labs.captioning.decoder import AttentionDecoder
from robustlab.labs.captioning.decoding import Decoded, beam_search, greedy_decode
from robustlab.labs.captioning.text import EOS, PAD, SOS, SPECIALS, UNK

V, ENC, P, B = 12, 16, 4, 5
ITOS = SPECIALS + tuple(f"w{i}" for i in range(len(SPECIALS), V))


def make_decoder(seed: int = 0, attention: str = "additive") -> AttentionDecoder:
    return small_decoder(V, ENC, seed, attention)


def make_annotations(seed: int = 1, b: int = B) -> torch.Tensor:
    return torch.randn(b, P, ENC, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(params=["additive", "dot"])
def decoder(request: pytest.FixtureRequest) -> AttentionDecoder:
    return make_decoder(0, request.param)


@pytest.fixture
def a() -> torch.Tensor:
    return make_annotations()


def emitted(tokens: torch.Tensor) -> list[list[int]]:
    """Per row, the emitted ids (PAD is never emitted, so it marks the end)."""
    return [[i for i in row if i != PAD] for row in tokens.tolist()]


@torch.no_grad()
def teacher_forced_logprob(decoder: AttentionDecoder, a: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Sum of log-softmax of ``tokens`` (B, T) fed after <sos>, PAD positions excluded."""
    h, c, keys = decoder.start(a)
    words = torch.full((a.shape[0],), SOS, dtype=torch.long)
    total = torch.zeros(a.shape[0])
    for t in range(tokens.shape[1]):
        logits, h, c, _ = decoder.step(a, keys, h, c, words)
        lp = logits.log_softmax(-1).gather(1, tokens[:, t:t + 1]).squeeze(1)
        total += torch.where(tokens[:, t] != PAD, lp, torch.zeros_like(lp))
        words = tokens[:, t]
    return total


@torch.no_grad()
def reference_beam(decoder: AttentionDecoder, a1: torch.Tensor, k: int, max_length: int,
                   length_penalty: float = 0.0, ban_unk: bool = False) -> tuple[list[int], float, list]:
    """Plain-loop beam search of one image ``a1`` (1, P, E): (chosen ids, its raw score, final beams)."""
    banned = {PAD, SOS} | ({UNK} if ban_unk else set())
    h, c, keys = decoder.start(a1)
    hyps = [(0.0, [], False, h, c)]
    for _ in range(max_length):
        if all(fin for _, _, fin, _, _ in hyps):
            break
        candidates = []
        for score, toks, fin, h, c in hyps:
            if fin:
                candidates.append((score, toks, True, h, c))
                continue
            word = torch.tensor([toks[-1] if toks else SOS])
            logits, h2, c2, _ = decoder.step(a1, keys, h, c, word)
            lp = logits[0].log_softmax(-1).tolist()
            for w in range(V):
                if w not in banned:
                    candidates.append((score + lp[w], [*toks, w], w == EOS, h2, c2))
        candidates.sort(key=lambda x: -x[0])
        hyps = candidates[:k]
    best = max(hyps, key=lambda x: x[0] / len(x[1]) ** length_penalty)
    return best[1], best[0], [(s, t) for s, t, *_ in hyps]


def test_beam_one_is_greedy(decoder: AttentionDecoder, a: torch.Tensor) -> None:
    g = greedy_decode(decoder, a, max_length=9)
    b1 = beam_search(decoder, a, beam=1, max_length=9)
    assert torch.equal(g.tokens, b1.tokens)
    assert torch.equal(g.lengths, b1.lengths)
    torch.testing.assert_close(g.logprob, b1.logprob)
    torch.testing.assert_close(g.alphas, b1.alphas)


@pytest.mark.parametrize("length_penalty", [0.0, 1.0])
def test_beam_matches_per_image_reference(decoder: AttentionDecoder, a: torch.Tensor, length_penalty: float) -> None:
    out = beam_search(decoder, a, beam=3, max_length=8, length_penalty=length_penalty)
    for i in range(B):
        ids, score, _ = reference_beam(decoder, a[i:i + 1], 3, 8, length_penalty)
        assert emitted(out.tokens[i:i + 1])[0] == ids
        assert out.logprob[i].item() == pytest.approx(score, abs=1e-4)


def test_greedy_matches_per_image_reference(decoder: AttentionDecoder, a: torch.Tensor) -> None:
    out = greedy_decode(decoder, a, max_length=8)
    for i in range(B):
        ids, score, _ = reference_beam(decoder, a[i:i + 1], 1, 8)
        assert emitted(out.tokens[i:i + 1])[0] == ids
        assert out.logprob[i].item() == pytest.approx(score, abs=1e-4)


@pytest.mark.parametrize("beam", [1, 2, 4])
def test_invariant_to_batch_composition(decoder: AttentionDecoder, a: torch.Tensor, beam: int) -> None:
    together = beam_search(decoder, a, beam=beam, max_length=10)
    shuffled_order = torch.tensor([3, 0, 4, 1, 2])
    shuffled = beam_search(decoder, a[shuffled_order], beam=beam, max_length=10)
    for i in range(B):
        alone = beam_search(decoder, a[i:i + 1], beam=beam, max_length=10)
        assert emitted(alone.tokens) == emitted(together.tokens[i:i + 1])
        assert alone.lengths.item() == together.lengths[i].item()
        torch.testing.assert_close(alone.logprob, together.logprob[i:i + 1])
        n = alone.tokens.shape[1]
        torch.testing.assert_close(alone.alphas[0], together.alphas[i, :n])
    assert emitted(shuffled.tokens) == [emitted(together.tokens)[j] for j in shuffled_order.tolist()]


def test_beam_not_worse_than_greedy(decoder: AttentionDecoder, a: torch.Tensor) -> None:
    # not a theorem of beam search in general; holds for this seeded model and is what beams are for
    g = greedy_decode(decoder, a, max_length=10)
    for k in (2, 3, 5):
        out = beam_search(decoder, a, beam=k, max_length=10)
        assert bool((out.logprob >= g.logprob - 1e-5).all()), k


@pytest.mark.parametrize("beam", [None, 1, 3])
def test_logprob_is_teacher_forced_sum(decoder: AttentionDecoder, a: torch.Tensor, beam: int | None) -> None:
    out = greedy_decode(decoder, a, 10) if beam is None else beam_search(decoder, a, beam, 10, length_penalty=0.7)
    torch.testing.assert_close(out.logprob, teacher_forced_logprob(decoder, a, out.tokens), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("beam", [None, 3])
def test_shapes_lengths_and_alphas(decoder: AttentionDecoder, a: torch.Tensor, beam: int | None) -> None:
    out = greedy_decode(decoder, a, 10) if beam is None else beam_search(decoder, a, beam, 10)
    t = out.tokens.shape[1]
    assert out.tokens.dtype == torch.long and out.lengths.dtype == torch.long
    assert out.alphas.shape == (B, t, P) and out.logprob.shape == (B,) and 1 <= t <= 10
    steps = torch.arange(t).unsqueeze(0)
    ended = (out.tokens == EOS).any(1)
    n_emitted = out.lengths + ended.long()
    assert torch.equal(n_emitted, (out.tokens != PAD).sum(1))
    live = steps < n_emitted.unsqueeze(1)
    assert not bool(((out.tokens == PAD) & live).any()) and bool((out.tokens[~live] == PAD).all())
    assert bool((out.tokens[live] != SOS).all())
    for i in range(B):  # <eos> is the last emitted token, and only there
        eos = (out.tokens[i] == EOS).nonzero().flatten().tolist()
        assert eos == ([out.lengths[i].item()] if ended[i] else [])
        if not ended[i]:
            assert out.lengths[i].item() == 10
    sums = out.alphas.sum(-1)
    torch.testing.assert_close(sums[live], torch.ones(int(live.sum())))
    assert bool((out.alphas[~live] == 0).all())
    assert bool((out.alphas >= 0).all())


@pytest.mark.parametrize("beam", [None, 1, 4])
def test_stops_at_max_length_without_eos(decoder: AttentionDecoder, a: torch.Tensor, beam: int | None) -> None:
    with torch.no_grad():
        decoder.fc.bias[EOS] = -1e9
    out = greedy_decode(decoder, a, 7) if beam is None else beam_search(decoder, a, beam, 7, length_penalty=1.0)
    assert out.tokens.shape == (B, 7)
    assert torch.equal(out.lengths, torch.full((B,), 7))
    assert not bool((out.tokens == EOS).any()) and not bool((out.tokens == PAD).any())
    assert all(len(w) == 7 for w in out.words(ITOS))


@pytest.mark.parametrize("beam", [None, 1, 3])
def test_immediate_eos(decoder: AttentionDecoder, a: torch.Tensor, beam: int | None) -> None:
    with torch.no_grad():
        decoder.fc.bias[EOS] = 1e4
    out = greedy_decode(decoder, a, 7) if beam is None else beam_search(decoder, a, beam, 7)
    # greedy stops after one step; a beam search also runs its (hopeless) other beams to their <eos>
    assert out.tokens.shape[1] == 1 if beam is None else out.tokens.shape[1] <= 3
    assert bool((out.tokens[:, 0] == EOS).all()) and bool((out.tokens[:, 1:] == PAD).all())
    assert torch.equal(out.lengths, torch.zeros(B, dtype=torch.long))
    assert out.words(ITOS) == [[] for _ in range(B)]
    torch.testing.assert_close(out.logprob, torch.zeros(B), atol=1e-3, rtol=0)
    torch.testing.assert_close(out.alphas[:, 0].sum(-1), torch.ones(B))
    assert bool((out.alphas[:, 1:] == 0).all())


@pytest.mark.parametrize("beam", [None, 1, 3])
def test_ban_unk(decoder: AttentionDecoder, a: torch.Tensor, beam: int | None) -> None:
    with torch.no_grad():
        decoder.fc.bias[UNK] = 3.0  # <unk> is the favourite word unless banned

    def run(ban: bool) -> Decoded:
        return greedy_decode(decoder, a, 8, ban) if beam is None else beam_search(decoder, a, beam, 8, ban_unk=ban)

    assert bool((run(False).tokens == UNK).any())
    banned = run(True)
    assert not bool((banned.tokens == UNK).any())
    # the log-probability is still the model's own (unbanned) one
    torch.testing.assert_close(banned.logprob, teacher_forced_logprob(decoder, a, banned.tokens), atol=1e-4, rtol=1e-5)


def test_length_penalty_prefers_longer(a: torch.Tensor) -> None:
    decoder = make_decoder(0)
    with torch.no_grad():
        decoder.fc.bias[EOS] = 2.0  # short captions are likely: the raw sum picks them
    raw = beam_search(decoder, a, beam=4, max_length=8)
    penalised = beam_search(decoder, a, beam=4, max_length=8, length_penalty=2.0)
    # the final beams do not depend on the penalty, so a positive one can only pick longer captions
    assert bool((penalised.lengths >= raw.lengths).all())
    assert bool((penalised.lengths > raw.lengths).any())
    assert bool((penalised.logprob <= raw.logprob + 1e-6).all())
    for i in range(B):
        ids, score, beams = reference_beam(decoder, a[i:i + 1], 4, 8, length_penalty=2.0)
        assert emitted(penalised.tokens[i:i + 1])[0] == ids
        n = len(ids)
        assert penalised.logprob[i].item() == pytest.approx(score, abs=1e-4)
        assert score / n**2.0 == pytest.approx(max(s / len(t) ** 2.0 for s, t in beams), abs=1e-6)


def test_words_skips_specials_and_keeps_unk() -> None:
    tokens = torch.tensor([[4, UNK, 5, EOS, PAD], [EOS, PAD, PAD, PAD, PAD], [6, SOS, 7, 8, 9]])
    out = Decoded(tokens, torch.tensor([3, 0, 5]), torch.zeros(3, 5, P), torch.zeros(3))
    assert out.words(ITOS) == [["w4", "<unk>", "w5"], [], ["w6", "w7", "w8", "w9"]]


def test_decodes_without_grad_and_keeps_mode(a: torch.Tensor) -> None:
    decoder = make_decoder(0)
    out = beam_search(decoder, a.requires_grad_(), beam=2, max_length=5)
    assert not out.logprob.requires_grad and not decoder.training
    decoder.train()
    greedy_decode(decoder, a, 3)
    assert decoder.training  # the caller owns the mode


def test_rejects_bad_arguments(a: torch.Tensor) -> None:
    decoder = make_decoder(0)
    with pytest.raises(ValueError, match="max_length"):
        greedy_decode(decoder, a, 0)
    with pytest.raises(ValueError, match="beam"):
        beam_search(decoder, a, beam=0, max_length=5)


def test_images_that_finish_early_leave_the_batch_unchanged() -> None:
    """Images whose beams all end at different steps (some at once, some never): each keeps exactly
    the result it gets decoded alone and the plain-loop reference's caption and score."""
    decoder = make_decoder(0)
    a = make_annotations(3, 12) * 3
    out = beam_search(decoder, a, beam=3, max_length=10)
    assert {0, 10} <= set(out.lengths.tolist()) and len(set(out.lengths.tolist())) >= 3  # the case exists
    for i in range(a.shape[0]):
        alone = beam_search(decoder, a[i:i + 1], beam=3, max_length=10)
        t = alone.tokens.shape[1]
        assert torch.equal(out.tokens[i, :t], alone.tokens[0]) and bool((out.tokens[i, t:] == PAD).all())
        torch.testing.assert_close(out.alphas[i, :t], alone.alphas[0])
        assert bool((out.alphas[i, t:] == 0).all())
        ids, score, _ = reference_beam(decoder, a[i:i + 1], 3, 10)
        assert emitted(out.tokens[i:i + 1])[0] == ids and out.logprob[i].item() == pytest.approx(score, abs=1e-4)
