"""Next-beyt pairs and poem-level splits: a pair is two consecutive beyts of one poem, never two
poems' beyts, and a split puts each poem on one side only — consecutive beyts share rhyme, radif and
vocabulary, so random pairs on both sides of a split would measure memorisation, not generation."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from robustlab.core.errors import RobustlabError
from robustlab.labs.lm.corpus import Beyt, Corpus, Poem

HEMISTICH_SEP = " / "  # how a beyt is written as one string: first + HEMISTICH_SEP + second
SPLITS = ("train", "val", "test")


def beyt_text(beyt: Beyt, sep: str = HEMISTICH_SEP) -> str:
    """The beyt as one string: its two hemistichs joined by ``sep``."""
    return f"{beyt.first}{sep}{beyt.second}"


@dataclass(frozen=True)
class Pair:
    """Beyt ``index`` (0-based) of poem ``poem_id`` as the source and beyt ``index + 1`` as the target."""

    poem_id: str
    index: int
    source: Beyt
    target: Beyt


def next_beyt_pairs(poem: Poem) -> list[Pair]:
    """The ``len(poem.beyts) - 1`` consecutive pairs of one poem, in order."""
    return [Pair(poem.id, i, poem.beyts[i], poem.beyts[i + 1]) for i in range(len(poem.beyts) - 1)]


def corpus_pairs(poems: Iterable[Poem]) -> list[Pair]:
    """Every poem's consecutive pairs, poem after poem; no pair spans two poems."""
    return [pair for poem in poems for pair in next_beyt_pairs(poem)]


def split_poems(corpus: Corpus, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[str, list[Poem]]:
    """``{"train", "val", "test"}`` → poems, each poem in exactly one part, drawn by a seeded
    permutation of whole poems; part sizes are ``fractions`` (three non-negative numbers summing to 1)
    of the poem count, rounded to sum to it, with at least one poem in every part whose fraction is positive.
    Poems keep corpus order within a part; the result is a function of ``(corpus, fractions, seed)``."""
    shares = np.asarray(fractions, dtype=float)
    if shares.shape != (3,) or (shares < 0).any() or not np.isclose(shares.sum(), 1.0):
        raise RobustlabError(f"split fractions must be three non-negative numbers (train, val, test) summing "
                             f"to 1, got {tuple(fractions)}")
    n = len(corpus.poems)
    wanted = int((shares > 0).sum())
    if n < wanted:
        raise RobustlabError(f"corpus {corpus.name!r} has {n} poems, too few for {wanted} non-empty splits")
    sizes = _sizes(shares, n)
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return {name: [corpus.poems[i] for i in np.sort(order[bounds[k]:bounds[k + 1]])]
            for k, name in enumerate(SPLITS)}


def _sizes(shares: np.ndarray, n: int) -> np.ndarray:
    """Poems per part: ``shares * n`` rounded by largest remainder (ties to the earlier part), summing
    to ``n``, then at least one poem wherever the share is positive (taken from the largest part)."""
    exact = shares * n
    sizes = np.floor(exact).astype(int)
    by_remainder = np.argsort(-(exact - sizes), kind="stable")
    sizes[by_remainder[: n - sizes.sum()]] += 1
    for k in np.flatnonzero((shares > 0) & (sizes == 0)):
        sizes[np.argmax(sizes)] -= 1
        sizes[k] = 1
    return sizes
