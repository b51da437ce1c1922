"""Rhyme-word-first decoding on real Hafez ghazals and a tiny GPT-2 trained briefly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from robustlab.core.errors import RobustlabError
from robustlab.data.persian import normalize
from robustlab.labs.lm.corpus import Beyt, RhymeForm
from robustlab.labs.lm.examples import prompt_ids, target_ids
from robustlab.labs.lm.generation import DecodeSettings
from robustlab.labs.lm.pairs import beyt_text
from robustlab.labs.lm.poetry import hemistichs, poem_radif, rhyme_key, rhymes
from robustlab.labs.lm.rhyme_decoding import RhymeLexicon, rhyme_first, rhyme_word

SETTINGS = DecodeSettings(do_sample=True, temperature=1.0, top_p=1.0, max_new_tokens=40, seed=3)
K = 8


@pytest.fixture(scope="module")
def setup(tiny_hafez):
    """12 Hafez ghazals split by poem (9 train, 3 test), a BPE of 400 tokens, a tiny GPT-2 trained a few steps."""
    s = tiny_hafez(steps=40, dropout=0.0, max_length=128)
    form = s["corpus"].rhyme_form
    s["radifs"] = {p.id: poem_radif(p, form) for p in s["corpus"].poems}
    s["lexicon"] = RhymeLexicon.from_pairs(s["train"], form)
    s["form"] = form
    return s


def _run(s, pairs=None, **kwargs):
    pairs = s["test"] if pairs is None else pairs
    return rhyme_first(s["model"], s["tok"], [p.source for p in pairs], [s["radifs"][p.poem_id] for p in pairs],
                       s["lexicon"], SETTINGS, k=K, batch_size=8, **kwargs)


@pytest.fixture(scope="module")
def result(setup):
    return _run(setup)


def _chosen_word(text: str, radif: str) -> str | None:
    return rhyme_word(hemistichs(text)[1], radif)


def test_lexicon_comes_from_the_training_poems_only(setup, result):
    parts, form, radifs = setup["parts"], setup["form"], setup["radifs"]
    train_words = {w for p in parts["train"] for b in p.beyts for h in (b.first, b.second)
                   for w in normalize(h).split()}
    test_only = {rhyme_word(b.second, radifs[p.id]) for p in parts["test"] for b in p.beyts} - train_words - {None}
    assert test_only  # the test poems have rhyme words the training poems never use
    assert not test_only & set(setup["lexicon"].counts)
    assert set(setup["lexicon"].counts) <= train_words
    everything = RhymeLexicon.fit([b for p in parts["train"] + parts["test"] for b in p.beyts], form,
                                  [radifs[p.id] for p in parts["train"] + parts["test"] for _ in p.beyts])
    assert test_only & set(everything.counts)  # fitting on the test poems would have proposed them
    proposed = {_chosen_word(c, setup["radifs"][p.poem_id]) for p, cands in zip(setup["test"], result.candidates,
                                                                                 strict=True) for c in cands}
    assert proposed and not proposed & test_only and proposed <= set(setup["lexicon"].counts)


def test_every_rhyme_first_beyt_that_did_not_fall_back_rhymes(setup, result):
    form, radifs = setup["form"], setup["radifs"]
    done = [i for i, f in enumerate(result.fallbacks) if f is None]
    assert len(done) >= 5 and result.fallback_rate < 0.8
    for i in done:
        pair = setup["test"][i]
        assert rhymes(pair.source, result.texts[i], form, radifs[pair.poem_id]), result.texts[i]
    plain = sum(rhymes(p.source, d, form, setup["radifs"][p.poem_id]) for p, d in zip(setup["test"], result.drafts,
                                                                                       strict=True))
    assert plain < len(done)  # the drafts alone rhyme far less often
    for i, f in enumerate(result.fallbacks):
        if f is not None:
            assert result.texts[i] == result.drafts[i] and f in ("malformed", "no_rhyme_word")


def test_first_hemistich_and_prefix_are_the_drafts(setup, result):
    for pair, text, draft, f in zip(setup["test"], result.texts, result.drafts, result.fallbacks, strict=True):
        if f is None:
            radif = normalize(setup["radifs"][pair.poem_id]).split()
            d, t = hemistichs(draft), hemistichs(text)
            words = d[1].split()
            if radif and words[-len(radif):] == radif:
                words = words[: -len(radif)]
            prefix = words[:-1]
            assert t[0] == d[0]
            assert t[1].split() == [*prefix, _chosen_word(text, setup["radifs"][pair.poem_id]), *radif]


def test_the_sources_own_rhyme_word_is_never_chosen(setup, result):
    seen = 0
    for pair, text, draft, cands, f in zip(setup["test"], result.texts, result.drafts, result.candidates,
                                           result.fallbacks, strict=True):
        if f is not None:
            continue
        radif = setup["radifs"][pair.poem_id]
        own = rhyme_key(rhyme_word(pair.source.second, radif) or "")
        first_last = rhyme_key(hemistichs(draft)[0].split()[-1])
        assert own and text in cands
        for c in cands:
            word = rhyme_key(_chosen_word(c, radif) or "")
            assert word and word != own and word != first_last
            seen += 1
    assert seen >= 10
    # the lexicon does hold the sources' own rhyme words (they recur across ghazals): the exclusion is real
    owns = {rhyme_word(p.source.second, setup["radifs"][p.poem_id]) for p in setup["test"]}
    assert owns & set(setup["lexicon"].counts)


def test_the_choice_is_the_most_likely_candidate_by_a_direct_forward_pass(setup, result):
    model, tok = setup["model"], setup["tok"]
    checked = 0
    for pair, text, cands, scores in zip(setup["test"], result.texts, result.candidates, result.scores, strict=True):
        if len(cands) < 2:
            continue
        prompt = prompt_ids(tok, beyt_text(pair.source))
        full = []
        for c in cands:
            target = target_ids(tok, c)
            ids = torch.tensor([prompt + target])
            with torch.no_grad():
                logp = F.log_softmax(model(input_ids=ids).logits[0, :-1].double(), dim=-1)
            full.append(float(logp[torch.arange(len(prompt) - 1, ids.shape[1] - 1), ids[0, len(prompt):]].sum()))
        assert text == cands[full.index(max(full))]
        gaps = [f - s for f, s in zip(full, scores, strict=True)]  # the shared prefix: the same for every candidate
        assert max(gaps) - min(gaps) == pytest.approx(0.0, abs=1e-4)
        assert all(s < 0 for s in scores)
        checked += 1
    assert checked >= 3


def test_seeded_decoding_is_reproducible_and_drafts_can_be_given(setup, result):
    again = _run(setup)
    assert again.texts == result.texts and again.scores == result.scores
    given = _run(setup, drafts=result.drafts)
    assert given.texts == result.texts
    other = rhyme_first(setup["model"], setup["tok"], [p.source for p in setup["test"]],
                        [setup["radifs"][p.poem_id] for p in setup["test"]], setup["lexicon"],
                        SETTINGS.model_copy(update={"seed": 4}), k=K, batch_size=8)
    assert other.drafts != result.drafts


def test_masnavi_mode_rhymes_the_two_generated_hemistichs(setup):
    # a real masnavi-like text: two consecutive second hemistichs of a ghazal rhyme with each other
    poems = setup["parts"]["train"]
    beyts = [Beyt(a.second, b.second) for p in poems for a, b in zip(p.beyts, p.beyts[1:], strict=False)]
    lexicon = RhymeLexicon.fit(beyts, RhymeForm.MASNAVI)
    assert len(lexicon) >= 20
    # drafts whose first hemistich ends on a word of the lexicon's rhymes, second hemistich on anything
    test = setup["test"][:8]
    partnered = [w for w in lexicon.counts if lexicon.candidates(rhyme_key(w), [rhyme_key(w)], K)]
    assert len(partnered) >= 8
    drafts = [f"{normalize(p.source.first)} {w} / {normalize(p.target.first)}"
              for p, w in zip(test, partnered[::3], strict=False)]
    out = rhyme_first(setup["model"], setup["tok"], [p.source for p in test], [""] * len(test), lexicon, SETTINGS,
                      k=K, drafts=drafts)
    done = [i for i, f in enumerate(out.fallbacks) if f is None]
    assert len(done) == len(drafts) == 8
    for i in done:
        first, second = hemistichs(out.texts[i])
        assert rhymes(None, out.texts[i], RhymeForm.MASNAVI)
        assert first == hemistichs(drafts[i])[0] and second.split()[-1] != first.split()[-1]
    assert not any(rhymes(None, d, RhymeForm.MASNAVI) for d in (drafts[i] for i in done))


def test_bad_arguments_are_one_line_errors(setup):
    with pytest.raises(RobustlabError, match="k >= 1"):
        rhyme_first(setup["model"], setup["tok"], [], [], setup["lexicon"], SETTINGS, k=0)
    with pytest.raises(RobustlabError, match="drafts"):
        _run(setup, drafts=["a / b"])
    with pytest.raises(RobustlabError, match="radifs"):
        RhymeLexicon.fit([Beyt("a", "b")], RhymeForm.GHAZAL, ["", ""])
