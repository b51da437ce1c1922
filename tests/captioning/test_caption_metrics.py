"""Caption metrics: the three BLEU implementations agree where they should, and the pitfalls are refused."""

from __future__ import annotations

import json
import random

import pytest

from robustlab.core.errors import RobustlabError
from robustlab.labs.captioning import metrics as m

WORDS = ("a", "man", "woman", "dog", "cat", "red", "blue", "on", "the", "of", "with", "sits", "runs",
         "table", "street", "car", "ball", "green", "small", "big", "two", "people", "plate", "food", "near",
         "grass")


def _corpus(seed: int = 0, images: int = 200):
    """~200 images with 3–5 references of 6–12 words; a hypothesis is a random reference with 3 words swapped."""
    rng = random.Random(seed)
    refs, hyps = [], []
    for _ in range(images):
        image_refs = [[rng.choice(WORDS) for _ in range(rng.randint(6, 12))] for _ in range(rng.randint(3, 5))]
        hyp = list(image_refs[rng.randrange(len(image_refs))])
        for _ in range(3):
            hyp[rng.randrange(len(hyp))] = rng.choice(WORDS)
        refs.append(image_refs)
        hyps.append(hyp)
    return refs, hyps


@pytest.fixture(scope="module")
def corpus():
    return _corpus()


def test_three_implementations_agree_on_long_hypotheses(corpus):
    refs, hyps = corpus
    assert min(len(h) for h in hyps) >= 4
    nltk, coco, sacre = m.corpus_bleu(refs, hyps), m.coco_bleu(refs, hyps), m.sacre_bleu(refs, hyps)
    for a, b, c in zip(nltk, coco, sacre, strict=True):
        assert a == pytest.approx(b, abs=1e-9) and a == pytest.approx(c, abs=1e-9)
    check = m.cross_check(refs, hyps)
    assert check["agree"] is True and check["max_difference"] <= 1e-9
    assert check["short_hypotheses"] == 0 and check["images"] == len(hyps)
    assert check["nltk"] == list(nltk)


def test_short_hypotheses_make_nltk_lower(corpus):
    refs, hyps = corpus
    short = [h[:3] if i % 10 == 0 else h for i, h in enumerate(hyps)]
    assert m.short_hypotheses(short) == 20
    assert m.corpus_bleu(refs, short)[3] < m.coco_bleu(refs, short)[3]
    assert m.coco_bleu(refs, short)[3] == pytest.approx(m.sacre_bleu(refs, short)[3], abs=1e-9)
    check = m.cross_check(refs, short)
    assert check["short_hypotheses"] == 20 and check["agree"] is False and check["max_difference"] > 1e-9
    assert "max(1, denominator)" in check["note"]


@pytest.mark.parametrize("fn", [m.corpus_bleu, m.coco_bleu, m.sacre_bleu, m.cider_d, m.cross_check])
def test_strings_are_refused(corpus, fn):
    refs, hyps = corpus
    with pytest.raises(TypeError, match="list of word tokens"):
        fn(refs, [" ".join(h) for h in hyps])
    with pytest.raises(TypeError, match="list of word tokens"):
        fn([[" ".join(r) for r in image_refs] for image_refs in refs], hyps)
    with pytest.raises(TypeError, match="not vocabulary ids"):
        fn(refs, [[4, 5, 6, 7]] * len(hyps))


def test_length_mismatch_and_empty_corpus_are_value_errors(corpus):
    refs, hyps = corpus
    with pytest.raises(ValueError, match="one per image"):
        m.corpus_bleu(refs, hyps[:-1])
    with pytest.raises(ValueError, match="empty corpus"):
        m.corpus_bleu([], [])


def test_mean_sentence_bleu_is_not_corpus_bleu(corpus):
    refs, hyps = corpus
    mean_sentence = sum(m.sentence_bleu4(r, h) for r, h in zip(refs, hyps, strict=True)) / len(hyps)
    assert abs(mean_sentence - m.corpus_bleu(refs, hyps)[3]) > 1e-3


def test_scale_is_zero_to_one_and_perfect_is_one(corpus):
    refs, hyps = corpus
    for fn in (m.corpus_bleu, m.coco_bleu, m.sacre_bleu):
        assert all(0.0 <= v <= 1.0 for v in fn(refs, hyps))
        assert all(0.0 < v < 1.0 for v in fn(refs, hyps))
        assert fn(refs, [r[0] for r in refs]) == pytest.approx((1.0,) * 4, abs=1e-9)


def test_bleu_rises_with_reference_count(corpus):
    refs, hyps = corpus
    by_count = m.bleu_by_reference_count(refs, hyps)
    assert set(by_count) == {1, 2, 3, 4, 5}
    assert by_count[1] < by_count[2] < by_count[3]
    assert by_count[5] == pytest.approx(m.corpus_bleu(refs, hyps)[3])
    assert 6 not in m.bleu_by_reference_count(refs, hyps, counts=(1, 6))


@pytest.mark.parametrize("token", ["<unk>", "<pad>", "<sos>", "<eos>"])
def test_special_token_in_reference_is_refused(corpus, token):
    refs, hyps = corpus
    bad = [list(r) for r in refs]
    bad[7] = [["a", token, "dog", "runs"], *refs[7][1:]]
    with pytest.raises(RobustlabError, match=token) as err:
        m.corpus_bleu(bad, hyps)
    assert "\n" not in str(err.value) and "image 7" in str(err.value)


def test_empty_reference_list_is_refused(corpus):
    refs, hyps = corpus
    bad = list(refs)
    bad[12] = []
    with pytest.raises(RobustlabError, match="image 12") as err:
        m.caption_metrics(bad, hyps)
    assert "\n" not in str(err.value)


def test_cider_d_prefers_perfect_hypotheses_and_survives_empty(corpus):
    refs, hyps = corpus
    perfect = m.cider_d(refs, [r[0] for r in refs])
    corrupted = m.cider_d(refs, hyps)
    assert perfect > corrupted > 0.0
    with_empty = [[] if i == 3 else h for i, h in enumerate(hyps)]
    assert 0.0 <= m.cider_d(refs, with_empty) < corrupted
    assert m.corpus_bleu(refs, with_empty)[0] > 0.0


def test_diversity_by_hand():
    hyps = [["a", "dog", "a", "dog"], ["a", "cat"]]
    assert m.distinct_n(hyps, 1) == pytest.approx(3 / 6)  # a dog cat / 6 words
    assert m.distinct_n(hyps, 2) == pytest.approx(3 / 4)  # (a dog) (dog a) (a cat) / 4 bigrams
    assert m.distinct_n([["a"]], 2) == 0.0
    training = {("a", "cat"), ("the", "dog")}
    assert m.copied_fraction(hyps, training) == pytest.approx(0.5)
    assert m.copied_fraction([["the", "dog"]] * 3, training) == 1.0
    assert m.all_identical([["a", "dog"], ["a", "dog"], ["a", "dog"]]) is True
    assert m.all_identical([["a", "dog"], ["a", "cat"]]) is False
    assert m.all_identical([["a", "dog"]]) is False
    assert m.short_hypotheses([["a"], ["a", "b", "c", "d"], []]) == 2


def test_length_bucket():
    assert [m.length_bucket(n) for n in (0, 5, 6, 10, 11, 16, 20, 21)] == [
        "≤5", "≤5", "6–10", "6–10", "11–15", "16–20", "16–20", ">20"]


def test_caption_metrics_is_json_and_groups_cover_the_corpus(corpus):
    refs, hyps = corpus
    out = m.caption_metrics(refs, hyps, training_captions={tuple(refs[0][0])})
    assert json.loads(json.dumps(out))["images"] == len(hyps)
    assert out["bleu"] == out["cross_check"]["nltk"] and out["copied_fraction"] == 0.0
    assert out["references_per_image"]["min"] == 3 and out["references_per_image"]["max"] == 5
    assert out["all_identical"] is False and m.caption_metrics(refs, hyps)["copied_fraction"] is None
    keys = [m.length_bucket(len(r[0]), edges=(7, 9)) for r in refs]
    groups = m.bleu_by_group(refs, hyps, keys)
    assert list(groups) == sorted(set(keys)) and len(groups) == 3
    assert sum(g["images"] for g in groups.values()) == len(hyps)
    assert all(0.0 < g["bleu4"] < 1.0 for g in groups.values())
