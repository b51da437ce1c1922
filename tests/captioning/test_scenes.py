"""The shapes-captions scenes: exact ground truth, references that parse back to it, and caption scores."""

from __future__ import annotations

import random
import re

import pytest
import torch

from robustlab.core.errors import RobustlabError
from robustlab.labs.captioning.scenes import (
    COLOURS,
    FASHION_CLASSES,
    POSITIONS,
    SHAPES,
    SIZES,
    CaptionScenes,
    SceneObject,
    fashion_scenes,
    generate_scenes,
    groundings,
    object_scores,
    parse_mentions,
)
from robustlab.labs.captioning.text import Vocabulary, clean_caption, hazm_available

ARABIC = re.compile("[يك]")
NON_ASCII_DIGIT = re.compile("[\u0660-\u0669\u06f0-\u06f9]")


@pytest.fixture(scope="module")
def scenes() -> CaptionScenes:
    return generate_scenes(500, seed=3)


def _triples(objs: list[SceneObject]) -> set[tuple[str, str, int]]:
    return {(o.colour, o.shape, o.cell) for o in objs}


def _blobs(m: int, seed: int = 0) -> torch.Tensor:
    """(m, 28, 28) uint8 fabricated items: one or two Gaussian blobs each, like bright ink on black."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    out = torch.zeros(m, 28, 28)
    for _ in range(2):
        c = torch.rand(m, 2, generator=gen) * 14 + 7
        s = torch.rand(m, 1, 1, generator=gen) * 4 + 2
        out += torch.exp(-((xx - c[:, 0, None, None]) ** 2 + (yy - c[:, 1, None, None]) ** 2) / (2 * s**2))
    return (out.clamp(0, 1) * 255).to(torch.uint8)


def test_shapes_dtype_and_source(scenes: CaptionScenes) -> None:
    assert scenes.images.shape == (500, 3, 64, 64) and scenes.images.dtype == torch.uint8
    assert len(scenes) == 500 and scenes.grid == 3
    assert set(scenes.references) == {"en", "fa"}
    for lang in ("en", "fa"):
        assert len(scenes.references[lang]) == 500
        assert all(len(r) == 5 and all(isinstance(s, str) and s for s in r) for r in scenes.references[lang])
    assert "seed 3" in scenes.source and "64 px" in scenes.source
    counts = torch.tensor([len(o) for o in scenes.objects])
    assert counts.min() == 1 and counts.max() == 3
    share = torch.bincount(counts, minlength=4)[1:].float() / 500  # 1:2:1
    assert abs(share[0] - 0.25) < 0.07 and abs(share[1] - 0.5) < 0.07 and abs(share[2] - 0.25) < 0.07
    for objs in scenes.objects:
        cells = [o.cell for o in objs]
        assert cells == sorted(set(cells))  # distinct, reading order
        for o in objs:
            assert o.colour in COLOURS and o.shape in SHAPES and o.size in SIZES and 0 <= o.cell < 9
    small = generate_scenes(7, size=33, n_refs=2, max_objects=1)
    assert small.images.shape == (7, 3, 33, 33) and all(len(o) == 1 for o in small.objects)
    assert all(len(r) == 2 for r in small.references["fa"])


def test_subset(scenes: CaptionScenes) -> None:
    part = scenes.subset(torch.tensor([4, 1]))
    assert len(part) == 2 and torch.equal(part.images[0], scenes.images[4])
    assert part.references["fa"][1] == scenes.references["fa"][1] and part.objects[0] == scenes.objects[4]
    mask = torch.zeros(500, dtype=torch.bool)
    mask[[2, 9]] = True
    assert scenes.subset(mask).objects == [scenes.objects[2], scenes.objects[9]]


def test_deterministic_per_seed() -> None:
    a, b, c = generate_scenes(40, seed=5), generate_scenes(40, seed=5), generate_scenes(40, seed=6)
    assert torch.equal(a.images, b.images) and a.references == b.references and a.objects == b.objects
    assert not torch.equal(a.images, c.images) and a.references != c.references and a.objects != c.objects


def test_boxes_in_image_and_cell_and_drawn(scenes: CaptionScenes) -> None:
    size, step = 64, 64 / 3
    for image, objs in zip(scenes.images[:200].float(), scenes.objects[:200], strict=True):
        outside = torch.ones(size, size, dtype=torch.bool)
        for o in objs:
            x0, y0, x1, y1 = o.box
            outside[y0:y1, x0:x1] = False
        background = image[:, outside].median(1).values  # (3,)
        for o in objs:
            x0, y0, x1, y1 = o.box
            assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
            col, row = o.cell % 3, o.cell // 3
            assert col * step - 1 <= x0 and x1 <= (col + 1) * step + 1
            assert row * step - 1 <= y0 and y1 <= (row + 1) * step + 1
            patch = image[:, y0:y1, x0:x1]
            distance = (patch - background[:, None, None]).abs().amax(0)  # (h, w)
            assert distance.mean() > 40, (o, distance.mean())  # the object is drawn where the box says
            assert (distance > 40).any(0).all() and (distance > 40).any(1).all()  # tight: no empty edge row/col
    big = [(o.box[2] - o.box[0]) for objs in scenes.objects for o in objs if o.size == "big"]
    small = [(o.box[2] - o.box[0]) for objs in scenes.objects for o in objs if o.size == "small"]
    assert min(big) > max(small) * 0.9 and sum(big) / len(big) > 1.5 * sum(small) / len(small)


@pytest.mark.parametrize("normaliser", ["builtin", "hazm"])
def test_every_reference_parses_back(scenes: CaptionScenes, normaliser: str) -> None:
    for lang in ("en", "fa"):
        hyps, objs = [], []
        for refs, truth in zip(scenes.references[lang], scenes.objects, strict=True):
            for ref in refs:
                tokens = clean_caption(ref, lang, normaliser)
                mentions = parse_mentions(tokens, lang)
                assert len(mentions) == len(truth), ref
                assert {(m.colour, m.shape, m.cell) for m in mentions} == _triples(truth), ref
                hyps.append(tokens)
                objs.append(truth)
        assert object_scores(hyps, objs, lang) == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "count_accuracy": 1.0}


def test_reference_grammar(scenes: CaptionScenes) -> None:
    for lang in ("en", "fa"):
        for refs, truth in zip(scenes.references[lang], scenes.objects, strict=True):
            first = parse_mentions(clean_caption(refs[0], lang), lang)
            assert [m.cell for m in first] == [o.cell for o in truth]  # reading order
            assert [m.size for m in first] == [o.size for o in truth]  # size words in reference 0 …
            assert all(m.size is None for m in parse_mentions(clean_caption(refs[1], lang), lang))  # … not in 1
    en = " ".join(r for refs in scenes.references["en"] for r in refs).lower()
    assert "there are two shapes:" in en and "there is one shape:" in en and "the picture shows" in en
    assert " at the " in en and " in the " in en
    fa = {t for refs in scenes.references["fa"] for r in refs for t in clean_caption(r, "fa")}
    assert {"یک", "در", "2", "3", "فقط", "وجود"} <= fa
    assert "یک شکل" not in " ".join(r for refs in scenes.references["fa"] for r in refs)


def test_persian_references_are_dirty_and_cleaning_undoes_it(scenes: CaptionScenes) -> None:
    raw = [r for refs in scenes.references["fa"] for r in refs]
    arabic = sum(bool(ARABIC.search(r)) for r in raw) / len(raw)
    assert 0.2 < arabic < 0.4  # about 30 % of references
    assert any(re.search("[0-9]", r) for r in raw) and any(re.search("[۰-۹]", r) for r in raw)
    assert any("  " in r for r in raw) and any("،" in r for r in raw) and any("می شود" in r for r in raw)
    for r in raw:
        for normaliser in ("builtin", "hazm"):
            for token in clean_caption(r, "fa", normaliser):
                assert not ARABIC.search(token) and not NON_ASCII_DIGIT.search(token), (r, token)


def test_hazm_and_builtin_agree(scenes: CaptionScenes) -> None:
    assert hazm_available(), "hazm is not installed: the agreement of the two normalisers cannot be measured"
    pairs = [(clean_caption(r, "fa", "builtin"), clean_caption(r, "fa", "hazm"))
             for refs in scenes.references["fa"] for r in refs]
    agreement = sum(a == b for a, b in pairs) / len(pairs)
    assert agreement >= 0.99, agreement


def test_object_scores_by_hand() -> None:
    truth = [
        [SceneObject(0, (1, 1, 9, 9), "red", "circle", "big"),
         SceneObject(4, (25, 25, 35, 35), "blue", "square", "small")],
        [SceneObject(8, (50, 50, 60, 60), "green", "cross", "big")],
    ]
    hyps = [
        clean_caption("a red circle at the top left and a yellow square in the center", "en"),  # one wrong colour
        clean_caption("there is one shape: a green cross at the bottom right", "en"),
    ]
    scores = object_scores(hyps, truth, "en")
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3) and scores["count_accuracy"] == 1.0
    repeated = [clean_caption("a red circle at the top left a red circle at the top left", "en"), []]
    scores = object_scores(repeated, truth, "en")  # the repeat is a false positive, matched once
    assert scores["precision"] == pytest.approx(1 / 2) and scores["recall"] == pytest.approx(1 / 3)
    assert scores["count_accuracy"] == 0.0
    fa = [clean_caption("یک دایره قرمز در بالا سمت چپ و یک مربع آبی در وسط", "fa"), clean_caption("", "fa")]
    scores = object_scores(fa, truth, "fa")
    assert scores["precision"] == 1.0 and scores["recall"] == pytest.approx(2 / 3)
    assert object_scores([[], []], truth, "en")["precision"] == 0.0
    with pytest.raises(RobustlabError):
        object_scores(hyps[:1], truth, "en")


def test_groundings_on_a_hand_built_scene() -> None:
    objs = [SceneObject(0, (1, 1, 9, 9), "red", "circle", "big"),
            SceneObject(8, (50, 50, 60, 60), "blue", "cross", "small")]
    tokens = clean_caption("a blue cross at the bottom right and a red circle at the top left", "en")
    assert groundings(tokens, objs, "en") == [(1, 1), (2, 1), (9, 0), (10, 0)]
    tokens = clean_caption("a green circle and a blue cross", "en")  # green circle: no such object
    assert groundings(tokens, objs, "en") == [(5, 1), (6, 1)]
    fa = clean_caption("یک ضربدر آبی در پایین و یک دایره قرمز بزرگ", "fa")
    assert groundings(fa, objs, "fa") == [(1, 1), (2, 1), (7, 0), (8, 0)]
    twins = [*objs, SceneObject(4, (25, 25, 35, 35), "red", "circle", "small")]  # two red circles: ambiguous
    assert groundings(clean_caption("a red circle", "en"), twins, "en") == []


def test_multi_word_names() -> None:
    en = parse_mentions(clean_caption("a red t-shirt at the top right and a white ankle boot and a blue shirt", "en"),
                        "en", grid=2)
    assert [(m.colour, m.shape, m.cell) for m in en] == [("red", "t-shirt", 1), ("white", "ankle boot", None),
                                                         ("blue", "shirt", None)]
    assert en[0].positions == (1, 2, 3) and en[1].positions == (10, 11, 12)
    fa = parse_mentions(clean_caption("یک پیراهن زنانه سبز در پایین سمت راست و یک پیراهن زرد در وسط", "fa"), "fa")
    assert [(m.colour, m.shape, m.cell) for m in fa] == [("green", "dress", 8), ("yellow", "shirt", 4)]
    assert fa[0].positions == (1, 2, 3)
    assert parse_mentions(["a", "red", "circle", "at", "the", "center"], "en", grid=2)[0].cell is None


def test_parse_mentions_never_raises() -> None:
    words = sorted({w for lang in ("en", "fa")
                    for table in (COLOURS, SHAPES, SIZES, POSITIONS, FASHION_CLASSES)
                    for key, value in table.items() for w in clean_caption(key if lang == "en" else value, lang)})
    words += ["a", "and", "the", "at", "در", "و", "یک", "", "xyz", "2", "<unk>", "\u200c"]
    rng = random.Random(0)
    for _ in range(2000):
        tokens = [rng.choice(words) for _ in range(rng.randrange(0, 30))]
        for lang in ("en", "fa"):
            for grid in (2, 3):
                for m in parse_mentions(tokens, lang, grid):
                    assert m.shape in SHAPES or m.shape in FASHION_CLASSES
                    assert all(0 <= p < len(tokens) for p in m.positions) and list(m.positions) == sorted(m.positions)
                    assert m.cell is None or 0 <= m.cell < grid * grid
            objs = [SceneObject(0, (0, 0, 1, 1), "red", "circle", "big")]
            groundings(tokens, objs, lang)
            object_scores([tokens], [objs], lang)


def test_fashion_scenes_parse_back() -> None:
    items, labels = _blobs(40), torch.arange(40) % 10
    data = fashion_scenes(items, labels, 120, size=64, seed=1)
    again = fashion_scenes(items, labels, 120, size=64, seed=1)
    assert torch.equal(data.images, again.images) and data.references == again.references
    assert data.images.shape == (120, 3, 64, 64) and data.images.dtype == torch.uint8 and data.grid == 2
    for objs in data.objects:
        assert 2 <= len(objs) <= 3 and len({o.cell for o in objs}) == len(objs)
        for o in objs:
            assert o.shape in FASHION_CLASSES and o.colour in COLOURS and o.size == ""
            x0, y0, x1, y1 = o.box
            col, row = o.cell % 2, o.cell // 2
            assert col * 32 <= x0 < x1 <= (col + 1) * 32 and row * 32 <= y0 < y1 <= (row + 1) * 32
    for lang in ("en", "fa"):
        for normaliser in ("builtin", "hazm"):
            hyps = [clean_caption(r, lang, normaliser) for refs in data.references[lang] for r in refs]
            objs = [o for o in data.objects for _ in range(5)]
            scores = object_scores(hyps, objs, lang, grid=2)
            assert scores == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "count_accuracy": 1.0}
    with pytest.raises(RobustlabError):
        fashion_scenes(items, labels[:3], 4)


def test_vocabulary_is_small() -> None:
    data = generate_scenes(2000, seed=0)
    for lang in ("en", "fa"):
        vocab = Vocabulary.build((clean_caption(r, lang) for refs in data.references[lang] for r in refs), 3)
        assert len(vocab.words) < 60, (lang, len(vocab.words))


@pytest.mark.parametrize(
    "kwargs", [{"n": 0}, {"n": 3, "size": 31}, {"n": 3, "n_refs": 0}, {"n": 3, "max_objects": 0},
               {"n": 3, "max_objects": 10}]
)
def test_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(RobustlabError):
        generate_scenes(**kwargs)
