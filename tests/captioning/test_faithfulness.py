"""Attention scored against ground truth: cell/box overlaps, the grounded words of real scenes, box mass and
pointing on hand-built maps, the deletion test against a per-word reference and the randomisation check."""

from __future__ import annotations

import pytest
import torch
from caption_helpers import make_decoder as small_decoder

from robustlab.labs.captioning.decoder import AttentionDecoder
from robustlab.labs.captioning.decoding import greedy_decode
from robustlab.labs.captioning.faithfulness import (
    Grounded,
    box_attention,
    cell_box_overlap,
    deletion_test,
    grounded_words,
    randomised_attention_check,
)
from robustlab.labs.captioning.scenes import COLOURS, SHAPES, CaptionScenes, generate_scenes
from robustlab.labs.captioning.text import EOS, PAD, SOS, Vocabulary

V, ENC, GRID, P, N = 14, 16, (3, 3), 9, 8


def make_decoder(seed: int = 0, attention: str = "additive") -> AttentionDecoder:
    return small_decoder(V, ENC, seed, attention)


def make_annotations(seed: int = 1, n: int = N) -> torch.Tensor:
    return torch.randn(n, P, ENC, generator=torch.Generator().manual_seed(seed))


def grounded(image: list[int], step: list[int], word: list[int], overlap: torch.Tensor) -> Grounded:
    long = torch.long
    return Grounded(torch.tensor(image, dtype=long), torch.tensor(step, dtype=long), torch.tensor(word, dtype=long),
                    overlap)


@pytest.fixture(params=["additive", "dot"])
def decoder(request: pytest.FixtureRequest) -> AttentionDecoder:
    return make_decoder(0, request.param)


@pytest.fixture(scope="module")
def scenes() -> CaptionScenes:
    return generate_scenes(n=8, size=32, seed=0)


# --------------------------------------------------------------------------- cell_box_overlap


def test_overlap_of_a_box_equal_to_a_cell_is_one_there_and_zero_elsewhere() -> None:
    out = cell_box_overlap(torch.tensor([[10.0, 0.0, 20.0, 10.0]]), GRID, 30)  # cell (0, 1)
    expected = torch.zeros(1, P)
    expected[0, 1] = 1.0
    assert out.shape == (1, P)
    torch.testing.assert_close(out, expected)


def test_overlap_of_half_a_cell_and_of_a_box_across_four_cells() -> None:
    boxes = torch.tensor([[10, 0, 15, 10], [10, 10, 20, 15], [15, 15, 25, 25], [0, 0, 30, 30]])  # int boxes too
    out = cell_box_overlap(boxes, GRID, 30)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out[0], torch.tensor([0, 0.5, 0, 0, 0, 0, 0, 0, 0]))
    torch.testing.assert_close(out[1], torch.tensor([0, 0, 0, 0, 0.5, 0, 0, 0, 0]))
    torch.testing.assert_close(out[2], torch.tensor([0, 0, 0, 0, 0.25, 0.25, 0, 0.25, 0.25]))
    torch.testing.assert_close(out[3], torch.ones(P))


def test_overlap_is_row_major_on_a_non_square_grid_and_fractional_cells() -> None:
    # grid (h=2, w=4) over 8 px: cell (r=1, c=2) = index 6 covers x [4, 6), y [4, 8)
    out = cell_box_overlap(torch.tensor([[4.0, 4.0, 6.0, 8.0]]), (2, 4), 8)
    expected = torch.zeros(1, 8)
    expected[0, 6] = 1.0
    torch.testing.assert_close(out, expected)
    # 32 px over 3 cells: cells are 32/3 px wide, the box [0, 16) covers cell 0 and half of cell 1
    out = cell_box_overlap(torch.tensor([[0.0, 0.0, 16.0, 32.0 / 3]]), GRID, 32)
    torch.testing.assert_close(out[0, :3], torch.tensor([1.0, 0.5, 0.0]))
    assert out[0, 3:].abs().max() < 1e-6
    assert cell_box_overlap(torch.zeros(0, 4), GRID, 30).shape == (0, P)


# --------------------------------------------------------------------------- grounded_words


def test_grounded_words_on_real_scenes_find_the_named_object(scenes: CaptionScenes) -> None:
    words = sorted(set(COLOURS) | set(SHAPES) | {"a", "and", "at", "the"})
    vocab = Vocabulary(tuple(words))
    tokens = []
    for objs in scenes.objects:
        caption = ["a"]
        for o in objs:
            caption += [o.colour, o.shape, "and"]
        tokens.append(caption[:-1])
    width = max(len(t) for t in tokens) + 1
    ids = torch.tensor([(vocab.encode(t)[1:] + [PAD] * width)[:width] for t in tokens])  # words + <eos>, no <sos>
    g = grounded_words(tokens, ids, scenes.objects, "en", GRID, 32)
    assert len(g) > 0 and g.overlap.shape == (len(g), P)
    assert g.image.dtype == g.step.dtype == g.word.dtype == torch.long
    itos = vocab.itos
    for image, step, word, overlap in zip(g.image.tolist(), g.step.tolist(), g.word.tolist(), g.overlap,
                                          strict=True):
        objs = scenes.objects[image]
        assert word == int(ids[image, step])
        name = itos[word]
        assert name == tokens[image][step]
        match = objs[(step - 1) // 3]  # the caption is "a c0 s0 and c1 s1 and ...": object j at steps 3j+1, 3j+2
        assert name == (match.colour if step % 3 == 1 else match.shape)
        assert sum((o.colour, o.shape) == (match.colour, match.shape) for o in objs) == 1
        assert overlap[match.cell] > 0  # the object lies inside its cell
        assert (overlap > 0).nonzero().flatten().tolist() == [match.cell]
        assert overlap.sum() * (32 / 3) ** 2 == pytest.approx(
            (match.box[2] - match.box[0]) * (match.box[3] - match.box[1]), rel=1e-4)
    # every uniquely named object of every scene contributes its colour and shape word
    unique = sum(sum(sum((p.colour, p.shape) == (o.colour, o.shape) for p in objs) == 1 for o in objs)
                 for objs in scenes.objects)
    assert len(g) == 2 * unique


def test_grounded_words_empty_and_mismatched(scenes: CaptionScenes) -> None:
    ids = torch.full((len(scenes), 3), EOS)
    g = grounded_words([["nothing", "here"]] * len(scenes), ids, scenes.objects, "en", GRID, 32)
    assert len(g) == 0 and g.overlap.shape == (0, P)
    assert box_attention(torch.rand(len(scenes), 3, P), g) == {
        "mass": None, "uniform": None, "ratio": None, "pointing": None, "pointing_chance": None, "words": 0}
    with pytest.raises(ValueError):
        grounded_words([["a"]], ids, scenes.objects, "en", GRID, 32)
    o = scenes.objects[0][0]
    with pytest.raises(ValueError):  # the word lies past the token columns
        grounded_words([["x", "y", "z", o.colour, o.shape]] + [[]] * (len(scenes) - 1), ids, scenes.objects, "en",
                       GRID, 32)


# --------------------------------------------------------------------------- box_attention


def test_box_attention_all_mass_in_the_box_cell() -> None:
    overlap = cell_box_overlap(torch.tensor([[10.0, 10.0, 20.0, 20.0], [0.0, 0.0, 10.0, 10.0]]), GRID, 30)
    alphas = torch.zeros(2, 3, P)
    alphas[0, 1, 4] = 1.0  # image 0, step 1 on cell 4 (the first box)
    alphas[1, 2, 0] = 1.0  # image 1, step 2 on cell 0 (the second box)
    out = box_attention(alphas, grounded([0, 1], [1, 2], [5, 6], overlap))
    assert out["words"] == 2
    assert out["mass"] == pytest.approx(1.0)
    assert out["pointing"] == pytest.approx(1.0)
    assert out["uniform"] == pytest.approx(1 / 9)
    assert out["ratio"] == pytest.approx(9.0)
    assert out["pointing_chance"] == pytest.approx(1 / 9)


def test_box_attention_uniform_maps_score_the_uniform_baseline() -> None:
    overlap = cell_box_overlap(torch.tensor([[10.0, 0.0, 15.0, 10.0], [0.0, 0.0, 30.0, 20.0]]), GRID, 30)
    alphas = torch.full((2, 4, P), 1 / P)
    out = box_attention(alphas, grounded([0, 1], [3, 0], [4, 4], overlap))
    assert out["mass"] == pytest.approx(out["uniform"])
    assert out["uniform"] == pytest.approx((0.5 / 9 + 6 / 9) / 2)
    assert out["ratio"] == pytest.approx(1.0)
    assert out["pointing_chance"] == pytest.approx((1 / 9 + 6 / 9) / 2)  # the half cell is ≥ 0.5


def test_box_attention_misses_and_partial_pointing() -> None:
    overlap = cell_box_overlap(torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 2), GRID, 30)
    alphas = torch.zeros(1, 2, P)
    alphas[0, 0, 0], alphas[0, 0, 8] = 0.4, 0.6  # argmax off the box, 0.4 inside
    alphas[0, 1, 0], alphas[0, 1, 8] = 0.7, 0.3
    out = box_attention(alphas, grounded([0, 0], [0, 1], [4, 5], overlap))
    assert out["mass"] == pytest.approx(0.55)
    assert out["pointing"] == pytest.approx(0.5)


# --------------------------------------------------------------------------- deletion_test


@torch.no_grad()
def reference_logprob(decoder: AttentionDecoder, a1: torch.Tensor, prefix: list[int], word: int) -> float:
    """One word, one image: log p(word | <sos> + prefix) by stepping the decoder."""
    h, c, keys = decoder.start(a1)
    for w in [SOS, *prefix]:
        logits, h, c, _ = decoder.step(a1, keys, h, c, torch.tensor([w]))
    return float(logits.log_softmax(-1)[0, word])


def greedy_grounded(decoder: AttentionDecoder, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, Grounded]:
    """Greedy tokens, their attention, and every emitted token (``<eos>`` included) as a "grounded" word."""
    out = greedy_decode(decoder, a, max_length=6)
    image, step = (out.tokens != PAD).nonzero(as_tuple=True)
    g = Grounded(image, step, out.tokens[image, step], torch.zeros(len(image), P))
    return out.tokens, out.alphas, g


@pytest.mark.parametrize("k", [1, 3])
def test_deletion_test_matches_a_per_word_reference(decoder: AttentionDecoder, k: int) -> None:
    a = make_annotations()
    ids, alphas, g = greedy_grounded(decoder, a)
    assert int(g.step.max()) >= 2  # several prefix lengths in one batch
    out = deletion_test(decoder, a, ids, alphas, g, k=k, seed=0)
    assert set(out) == {"logp_clean", "drop_top", "drop_random", "faithful", "k", "words"}
    assert out["words"] == len(g) and out["k"] == k and isinstance(out["faithful"], bool)
    clean, top = [], []
    for i, t, w in zip(g.image.tolist(), g.step.tolist(), g.word.tolist(), strict=True):
        prefix = ids[i, :t].tolist()
        lp = reference_logprob(decoder, a[i : i + 1], prefix, w)
        cells = alphas[i, t].topk(k).indices
        ablated = a[i : i + 1].clone()
        ablated[0, cells] = 0.0
        clean.append(lp)
        top.append(lp - reference_logprob(decoder, ablated, prefix, w))
    assert out["logp_clean"] == pytest.approx(sum(clean) / len(clean), abs=1e-5)
    assert out["drop_top"] == pytest.approx(sum(top) / len(top), abs=1e-5)
    assert out["faithful"] == (out["drop_top"] > out["drop_random"])
    # greedy tokens are the argmax of the clean distribution: the clean log-probabilities are the best ones
    assert out["logp_clean"] <= 0.0


def test_deletion_test_deterministic_per_seed_and_k_beyond_p_zeroes_everything(decoder: AttentionDecoder) -> None:
    a = make_annotations(2)
    ids, alphas, g = greedy_grounded(decoder, a)
    first = deletion_test(decoder, a, ids, alphas, g, k=2, seed=5)
    assert deletion_test(decoder, a, ids, alphas, g, k=2, seed=5) == first
    full = deletion_test(decoder, a, ids, alphas, g, k=P + 3, seed=5)
    assert full["k"] == P
    assert full["drop_top"] == pytest.approx(full["drop_random"], abs=1e-6)
    assert full["faithful"] is False
    assert full["logp_clean"] == pytest.approx(first["logp_clean"])
    empty = deletion_test(decoder, a, ids, alphas, Grounded(*(torch.zeros(0, dtype=torch.long),) * 3,
                                                            torch.zeros(0, P)), k=2, seed=0)
    assert empty == {"logp_clean": None, "drop_top": None, "drop_random": None, "faithful": None, "k": 2,
                     "words": 0}
    with pytest.raises(ValueError):
        deletion_test(decoder, a, ids, alphas, g, k=0, seed=0)


def test_deletion_of_the_only_informative_cell_beats_random_cells(decoder: AttentionDecoder) -> None:
    # only cell 4 carries anything; the attention points at it; each image's word is the one its content
    # makes most likely relative to blank annotations, so zeroing cell 4 must cost > 0 and a random cell
    # costs either nothing (it misses cell 4) or exactly the same (it hits it)
    n, cell = N, 4
    a = torch.zeros(n, P, ENC)
    a[:, cell] = 3.0 * torch.randn(n, ENC, generator=torch.Generator().manual_seed(7))
    captions, lengths = torch.full((n, 2), SOS), torch.full((n,), 2)
    with torch.no_grad():
        clean = decoder(a, captions, lengths)[0][:, 0].log_softmax(-1)
        blank = decoder(torch.zeros_like(a), captions, lengths)[0][:, 0].log_softmax(-1)
    words = (clean - blank).argmax(-1)
    ids = torch.stack([words, torch.full((n,), EOS)], 1)
    alphas = torch.zeros(n, 2, P)
    alphas[:, :, cell] = 1.0
    g = grounded(list(range(n)), [0] * n, words.tolist(), torch.zeros(n, P))
    out = deletion_test(decoder, a, ids, alphas, g, k=1, seed=0)
    assert out["drop_top"] == pytest.approx(float((clean - blank).max(-1).values.mean()), abs=1e-5)
    assert out["drop_top"] > 0
    assert out["drop_top"] >= out["drop_random"] - 1e-6
    assert out["faithful"] is True  # k = 1 of 9 cells: a random cell hits cell 4 for some words only


# --------------------------------------------------------------------------- randomised_attention_check


def make_captions(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([6, 3, 5, 2, 6, 4, 3, 5])
    captions = torch.randint(4, V, (N, 6), generator=gen)
    captions[:, 0] = SOS
    for i, n in enumerate(lengths.tolist()):
        captions[i, n - 1] = EOS
        captions[i, n:] = PAD
    return captions, lengths


def test_randomised_attention_check(decoder: AttentionDecoder) -> None:
    a = make_annotations(4)
    captions, lengths = make_captions()
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    out = randomised_attention_check(decoder, a, captions, lengths, seed=0)
    assert set(out) == {"spearman", "differs", "self_spearman", "steps"}
    assert out["self_spearman"] == 1.0
    assert out["steps"] == int((lengths - 1).sum())
    assert -1.0 <= out["spearman"] < 0.99
    assert out["differs"] == (out["spearman"] < 0.5)
    assert randomised_attention_check(decoder, a, captions, lengths, seed=0) == out  # deterministic per seed
    assert randomised_attention_check(decoder, a, captions, lengths, seed=1)["spearman"] != out["spearman"]
    after = decoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the original is untouched
    assert not decoder.training


def test_randomised_check_leaves_the_global_rng_and_ignores_padding(decoder: AttentionDecoder) -> None:
    a = make_annotations(4)
    captions, lengths = make_captions()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    out = randomised_attention_check(decoder, a, captions, lengths, seed=0)
    torch.testing.assert_close(torch.rand(3), expected)
    padded = torch.cat([captions, torch.full((N, 2), PAD)], 1)
    assert randomised_attention_check(decoder, a, padded, lengths, seed=0) == out
