"""Poetry metrics and count baselines of the language-model lab: form, end rhyme with the radif
discounted (calibrated on real Hafez couplets: consecutive beyts rhyme, beyts of different poems do
not), diversity, memorisation, the metre proxy, and unigram/bigram NLL against values by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robustlab.core.errors import RobustlabError
from robustlab.data.persian import ZWNJ
from robustlab.labs.lm import corpus, poetry
from robustlab.labs.lm.corpus import Beyt, RhymeForm
from robustlab.labs.lm.ngram import InterpolatedBigramLM, UnigramLM, bits_per_char, perplexity
from robustlab.labs.lm.pairs import corpus_pairs


@pytest.fixture(scope="module")
def hafez():
    c = corpus.read_hafez()
    radifs = {p.id: poetry.poem_radif(p, c.rhyme_form) for p in c.poems}
    return c, radifs


@pytest.mark.parametrize("text, ok", [
    ("الا یا ایها الساقی / که عشق آسان نمود", True),
    ("الا یا ایها الساقی/که عشق آسان نمود", True),
    ("الا یا ایها الساقی که عشق آسان نمود", False),  # one hemistich
    ("الف / ب / ج", False),
    ("الف / ", False),
    (" / ب", False),
    ("الف / ۱۲", False),  # digits are not letters
    ("", False),
])
def test_well_formed(text, ok):
    assert poetry.well_formed(text) is ok


def test_hemistichs_are_normalised():
    assert poetry.hemistichs("علي  كتاب /  مَی") == ["علی کتاب", "می"]


def _rate(pairs, radifs, use_radif, form=RhymeForm.GHAZAL):
    return float(np.mean([poetry.rhymes(s, t, form, radifs[pid] if use_radif else "") for pid, s, t in pairs]))


def _random_pairs(c, n, seed):
    """``n`` (source poem id, source beyt, beyt of another poem)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        i, j = rng.choice(len(c.poems), 2, replace=False)
        a, b = c.poems[i], c.poems[j]
        out.append((a.id, a.beyts[rng.integers(len(a.beyts))], b.beyts[rng.integers(len(b.beyts))]))
    return out


def test_rhyme_calibration_on_real_hafez(hafez):
    # measured: consecutive 0.968 (0.968 without the radif discount); random 0.008 (0.037 without)
    c, radifs = hafez
    real = [(p.poem_id, p.source, p.target) for p in corpus_pairs(c.poems)]
    random = _random_pairs(c, 3000, seed=0)
    assert _rate(real, radifs, True) >= 0.95 and _rate(real, radifs, False) >= 0.95
    assert _rate(random, radifs, True) <= 0.02
    assert 0.02 < _rate(random, radifs, False) <= 0.06


def test_radif_discount_rejects_a_copied_radif(hafez):
    # a beyt from another poem that ends with this poem's radif: the plain suffix rule calls every one
    # a rhyme, the radif-aware rule only those whose qafiye also matches (measured 0.15 of 189)
    c, radifs = hafez
    rng = np.random.default_rng(1)
    seconds = [(p.id, b, poetry.rhyme_key(b.second)) for p in c.poems for b in p.beyts]
    copied = []
    for p in c.poems:
        key = poetry.rhyme_key(radifs[p.id])
        others = [b for pid, b, k in seconds if key and pid != p.id and k.endswith(key)]
        if others:
            copied.append((p.id, p.beyts[0], others[rng.integers(len(others))]))
    assert len(copied) > 150
    assert _rate(copied, radifs, False) == 1.0
    assert _rate(copied, radifs, True) <= 0.3


def test_radif_of_real_ghazals(hafez):
    c, radifs = hafez
    assert radifs["1"] == "ها"  # … مشکل ها / … دل ها, and … اهملها with the radif written joined
    assert radifs["33"] == "چه حاجت است"
    assert radifs["57"] == "با اوست"
    assert radifs["100"] == ""  # باد / یاد / شاد: a shared qafiye, not a repeated word
    assert sum(bool(r) for r in radifs.values()) == 315
    assert poetry.radif(["یک"]) == "" and poetry.rhyming_hemistichs(c.poems[0], RhymeForm.MASNAVI) == []


def test_masnavi_rhyme_by_hand():
    masnavi = RhymeForm.MASNAVI
    assert poetry.rhymes(None, f"بشنو این نی چون شکایت می{ZWNJ}کند / از جدایی{ZWNJ}ها حکایت می{ZWNJ}کند", masnavi)
    assert poetry.rhymes(None, Beyt("توانا بود هر که دانا بود", "ز دانش دل پیر برنا بود"), masnavi)
    # the same radif without a qafiye is no rhyme, although a plain two-letter suffix matches
    no_qafiye = f"بشنو این نی چون شکایت می{ZWNJ}کند / از جدایی{ZWNJ}ها سخن می{ZWNJ}کند"
    assert not poetry.rhymes(None, no_qafiye, masnavi)
    assert poetry.rhyme_suffix_match(*poetry.hemistichs(no_qafiye))
    assert not poetry.rhymes(None, "به نام خداوند جان و خرد / خداوند روزی ده رهنمای", masnavi)
    assert not poetry.rhymes(None, "یک مصراع تنها", masnavi)


def test_masnavi_rule_on_hafez(hafez):
    # a ghazal's first beyt rhymes within itself (aa), its other beyts do not (ba): measured 0.966 / 0.030
    c, _ = hafez
    first = [poetry.rhymes(None, p.beyts[0], RhymeForm.MASNAVI) for p in c.poems]
    later = [poetry.rhymes(None, b, RhymeForm.MASNAVI) for p in c.poems for b in p.beyts[1:]]
    assert np.mean(first) >= 0.93 and np.mean(later) <= 0.06


def test_ghazal_rhyme_by_hand():
    src = Beyt("الا یا ایها الساقی ادر کاسا و ناولها", "که عشق آسان نمود اول ولی افتاد مشکل ها")
    assert poetry.rhymes(src, "به بوی نافه ای کاخر صبا زان طره بگشاید / ز تاب جعد مشکینش چه خون افتاد در دل ها",
                         "ghazal", radif="ها")
    assert not poetry.rhymes(src, "به بوی نافه / چه خون افتاد در جان ها", "ghazal", radif="ها")  # radif, no qafiye
    assert poetry.rhymes(src, "به بوی نافه / چه خون افتاد در جان ها", "ghazal")  # nothing discounted
    assert not poetry.rhymes(src, "مشکل ها", "ghazal")  # not a beyt
    assert poetry.rhyme_suffix_match("فضائل", "فضایل", 5) and poetry.rhyme_suffix_match("آن", "جان", 2)


def test_distinct_repetition_copy_by_hand():
    texts = ["گل و گل / مل", "و گل"]
    # words: [گل و گل مل], [و گل]; unigrams 6, distinct {گل, و, مل}; bigrams (گل و)(و گل)(گل مل)(و گل): 3 distinct
    assert poetry.distinct_n(texts, 1) == pytest.approx(3 / 6)
    assert poetry.distinct_n(texts, 2) == pytest.approx(3 / 4)
    assert poetry.distinct_n(["گل"], 2) == 0.0
    assert poetry.repetition_rate("گل و گل / مل") == pytest.approx(1 / 4)
    assert poetry.repetition_rate("") == 0.0
    training = [Beyt("علی کتاب", "می ناب"), Beyt("الف", "ب")]
    generated = ["عَلي  كتاب / می ناب", "الف / ج", Beyt("الف", "ب"), "الف ب"]
    assert poetry.copy_rate(generated, training) == pytest.approx(2 / 4)
    with pytest.raises(RobustlabError, match="no generated to score"):
        poetry.copy_rate([], training)


def test_metre_proxy_by_hand():
    # source 4 and 3 letters → 3.5 per hemistich; generated 5 and 4 → 4.5
    proxy = poetry.metre_proxy(Beyt("ابجد", "هوز"), "ابجد ه / هوز ح")
    assert proxy.ratio == pytest.approx(4.5 / 3.5) and proxy.abs_diff == pytest.approx(1.0)
    assert poetry.metre_proxy(Beyt("ابجد", "هوز"), "ابجدهوزحطی").abs_diff == pytest.approx(10 - 3.5)


def test_poetry_report_on_real_continuations(hafez):
    c, radifs = hafez
    pairs = corpus_pairs(c.poems[:40])
    sources, targets = [p.source for p in pairs], [p.target for p in pairs]
    rads = [radifs[p.poem_id] for p in pairs]
    training = [b for p in c.poems for b in p.beyts]
    report = poetry.poetry_report(sources, targets, targets, training, RhymeForm.GHAZAL, rads)
    assert set(report) == {"well_formed", "rhyme", "distinct_1", "distinct_2", "repetition", "copy_rate", "echo_rate",
                           "metre_proxy_abs_diff", "reference_rhyme", "reference_metre_proxy_abs_diff"}
    assert report["well_formed"] == 1.0 and report["copy_rate"] == 1.0 and report["echo_rate"] == 0.0
    assert report["rhyme"] == report["reference_rhyme"] >= 0.9
    assert report["metre_proxy_abs_diff"] == report["reference_metre_proxy_abs_diff"] < 3
    assert 0 < report["distinct_1"] < report["distinct_2"] <= 1 and 0 <= report["repetition"] < 0.2
    echoed = poetry.poetry_report(sources, sources, targets, [], RhymeForm.GHAZAL, rads)
    assert echoed["rhyme"] == 1.0 and echoed["echo_rate"] == 1.0  # an echoed source rhymes: echo_rate tells
    assert echoed["copy_rate"] == 0.0 and echoed["metre_proxy_abs_diff"] == 0.0
    with pytest.raises(RobustlabError, match="lists of different lengths"):
        poetry.poetry_report(sources, targets[:-1], targets, training, RhymeForm.GHAZAL)


# --- count baselines -----------------------------------------------------------------------------------

TRAIN = [[0, 1, 1], [1, 2]]  # V = 4, token 3 unseen; counts 1, 3, 1, 0 of N = 5; bigrams (0,1) (1,1) (1,2)


def test_unigram_nll_by_hand():
    lm = UnigramLM.fit(TRAIN, 4)  # p = (c + 1) / (5 + 4) = 2/9, 4/9, 2/9, 1/9
    assert lm.nll([0], [1, 3]) == pytest.approx(-math.log(4 / 9) - math.log(1 / 9))
    assert lm.nll([], [2]) == pytest.approx(-math.log(2 / 9))
    assert np.exp(lm.log_probs).sum() == pytest.approx(1.0)


def test_bigram_nll_by_hand():
    lm = InterpolatedBigramLM.fit(TRAIN, 4, lam=0.5)
    # p(1|0) = ½·1/1 + ½·4/9;  p(3|1) = ½·0/2 + ½·1/9;  p(2|1) = ½·1/2 + ½·2/9
    assert lm.nll([0], [1, 3]) == pytest.approx(-math.log(0.5 + 2 / 9) - math.log(1 / 18))
    assert lm.nll([0, 1], [2]) == pytest.approx(-math.log(0.25 + 1 / 9))
    assert lm.nll([], [1, 3]) == pytest.approx(-math.log(4 / 9) - math.log(1 / 18))  # no context: unigram first
    assert lm.nll([2], [0]) == pytest.approx(-math.log(2 / 9))  # history 2 never seen: the unigram alone
    batch = lm.nll_batch([[0], [], [2]], [[1, 3], [], [0]])
    assert batch == pytest.approx([lm.nll([0], [1, 3]), 0.0, lm.nll([2], [0])])
    full = np.asarray([[lm.nll([v], [w]) for w in range(4)] for v in range(4)])
    assert np.exp(-full).sum(axis=1) == pytest.approx(np.ones(4))  # each history's distribution sums to 1


def test_bigram_lambda_from_heldout():
    train = [[0, 1, 2, 3] * 5]
    assert InterpolatedBigramLM.fit(train, 4).lam == 0.5
    assert InterpolatedBigramLM.fit(train, 4, heldout=[[0, 1, 2, 3] * 3]).lam == 0.99  # bigrams hold
    assert InterpolatedBigramLM.fit(train, 4, heldout=[[3, 2, 1, 0] * 3]).lam == 0.0  # bigrams never seen
    with pytest.raises(RobustlabError, match=r"lam must be in \[0, 1\), got 1.0"):
        InterpolatedBigramLM.fit(train, 4, lam=1.0)
    with pytest.raises(RobustlabError, match=r"token id 7, outside the vocabulary \[0, 4\)"):
        UnigramLM.fit([[0, 7]], 4)
    with pytest.raises(RobustlabError, match="token id -1"):
        InterpolatedBigramLM.fit(train, 4).nll([0], [-1])


def test_perplexity_and_bits_per_char_by_hand():
    assert perplexity(10.0, 5) == pytest.approx(math.e**2)
    assert bits_per_char(10.0, 20) == pytest.approx(10 / math.log(2) / 20)
    assert bits_per_char(math.log(2) * 8, 8) == pytest.approx(1.0)
    with pytest.raises(RobustlabError, match="at least one token"):
        perplexity(1.0, 0)
    with pytest.raises(RobustlabError, match="at least one character"):
        bits_per_char(1.0, 0)
