"""Caption cleaning and the word vocabulary.

:func:`clean_caption` turns a raw caption into the word tokens every metric and the vocabulary use.
References and hypotheses go through the same function, so BLEU is computed on words, never on ids:

* English: lower case, punctuation → space, split on whitespace;
* Persian: ``hazm.Normalizer().normalize`` when hazm is installed and ``normaliser`` allows it, else
  :func:`robustlab.data.persian.normalize` (Arabic letter variants → Persian, diacritics removed, ZWNJ
  kept inside words) with a detached verb prefix ``می``/``نمی`` joined to its verb and a detached plural
  ``ها``/``های``/``هایی`` joined to its word by a ZWNJ (the rules of hazm's spacing correction; its
  dictionary compounds such as ``یک‌شکل`` or ``باغ‌وحش`` are not reproduced); then punctuation
  (ASCII and ``، ؛ ؟ « » …``) → space, every digit → ASCII
  (the "digits unified" step, the same for both normalisers), split on whitespace. ZWNJ stays inside a
  token (``\\w+`` would split ``می‌دود`` into two: never used here).

:class:`Vocabulary` maps words seen at least ``min_count`` times to ids (``<pad>`` 0, ``<sos>`` 1,
``<eos>`` 2, ``<unk>`` 3, then words by falling count, ties alphabetical).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

from robustlab.core.errors import RobustlabError
from robustlab.data.persian import PREFIXES, ZWNJ, normalize

Language = Literal["en", "fa"]
NormaliserName = Literal["auto", "hazm", "builtin"]
PAD, SOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<sos>", "<eos>", "<unk>")

PERSIAN_PUNCTUATION = "،؛؟«»٪…٫٬“”‘’–—·"
_PUNCT = re.compile("[" + re.escape(string.punctuation + PERSIAN_PUNCTUATION) + "]")
_DIGITS = str.maketrans({chr(base + i): str(i) for base in (0x0660, 0x06F0) for i in range(10)})
_EDGE_ZWNJ = re.compile(rf"^{ZWNJ}+|{ZWNJ}+$")
#: plural suffixes hazm's spacing correction joins to their word (it leaves ``هایش``, ``هایمان``, … detached)
JOINED_SUFFIXES = ("هایی", "های", "ها")
_LETTER = r"[^\W\d_]"
_DETACHED_PREFIX = re.compile(rf"(?<!\S)({'|'.join(sorted(PREFIXES, key=len, reverse=True))}) +(?={_LETTER})")
_DETACHED_SUFFIX = re.compile(rf"(?<={_LETTER}) +({'|'.join(JOINED_SUFFIXES)})(?!{_LETTER})")


@cache
def _hazm_normaliser():  # noqa: ANN202 - hazm is optional and untyped
    try:
        from hazm import Normalizer
    except ImportError:
        return None
    return Normalizer()


def hazm_available() -> bool:
    """Whether ``hazm`` imports here (the ``captioning`` extra installs it)."""
    return _hazm_normaliser() is not None


def resolve_normaliser(name: NormaliserName) -> Literal["hazm", "builtin"]:
    """The Persian normaliser a run uses: ``auto`` is hazm when it imports, else the built-in one;
    ``hazm`` without hazm installed is a one-line error."""
    if name == "hazm" and not hazm_available():
        raise RobustlabError("normaliser hazm is not installed (pip install --no-deps hazm==0.10.0 nltk flashtext "
                             "gensim fasttext-wheel python-crfsuite, or use normaliser: builtin)")
    if name == "auto":
        return "hazm" if hazm_available() else "builtin"
    return name


def clean_caption(text: str, language: Language, normaliser: Literal["hazm", "builtin"] = "builtin") -> list[str]:
    """The word tokens of ``text`` (see the module docstring); ``[]`` for a caption of punctuation
    only. ``normaliser`` matters only for Persian."""
    if not isinstance(text, str):
        raise TypeError(f"a caption is a str, got {type(text).__name__}")
    if language == "en":
        return _PUNCT.sub(" ", text.lower()).split()
    if normaliser == "hazm":
        norm = _hazm_normaliser()
        if norm is None:
            raise RobustlabError("normaliser hazm is not installed")
        text = norm.normalize(text)
    else:
        text = normalize(text, zwnj="keep")
        text = _DETACHED_PREFIX.sub(rf"\1{ZWNJ}", text)
        text = _DETACHED_SUFFIX.sub(rf"{ZWNJ}\1", text)
    text = _PUNCT.sub(" ", text).translate(_DIGITS)
    return [t for t in (_EDGE_ZWNJ.sub("", w) for w in text.split()) if t]


@dataclass(frozen=True)
class Vocabulary:
    """Words → ids; ids 0–3 are ``<pad> <sos> <eos> <unk>``."""

    words: tuple[str, ...]
    min_count: int = 1

    @classmethod
    def build(cls, captions: Iterable[Sequence[str]], min_count: int) -> Vocabulary:
        """The vocabulary of the words seen at least ``min_count`` times in ``captions`` (token
        lists); a one-line error when no word is that frequent."""
        if min_count < 1:
            raise RobustlabError(f"vocabulary min count must be ≥ 1, got {min_count}")
        counts = Counter(w for c in captions for w in c)
        kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        if not kept:
            top = max(counts.values(), default=0)
            raise RobustlabError(f"vocabulary min count {min_count} is larger than every word's count (the most "
                                 f"frequent word is seen {top} times); lower data.min_count")
        return cls(tuple(kept), min_count)

    @property
    def itos(self) -> tuple[str, ...]:
        return SPECIALS + self.words

    def __len__(self) -> int:
        return len(SPECIALS) + len(self.words)

    @property
    def stoi(self) -> dict[str, int]:
        return _stoi(self.itos)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """``<sos>`` + ids of ``tokens`` (``<unk>`` for unknown words) + ``<eos>``."""
        s = self.stoi
        return [SOS, *(s.get(t, UNK) for t in tokens), EOS]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The words of ``ids`` up to the first ``<eos>``; ``<sos>``/``<pad>`` dropped, ``<unk>`` kept."""
        out = []
        itos = self.itos
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, SOS):
                continue
            out.append(itos[i])
        return out

    def coverage(self, captions: Iterable[Sequence[str]]) -> float:
        """Share of the tokens of ``captions`` that are in the vocabulary (0–1)."""
        s = self.stoi
        total = known = 0
        for c in captions:
            total += len(c)
            known += sum(t in s for t in c)
        return known / total if total else 1.0


@cache
def _stoi(itos: tuple[str, ...]) -> dict[str, int]:
    return {w: i for i, w in enumerate(itos)}


def length_histogram(captions: Iterable[Sequence[str]]) -> dict[int, int]:
    """Caption length (words) → number of captions, sorted by length."""
    return dict(sorted(Counter(len(c) for c in captions).items()))


def top_words(captions: Iterable[Sequence[str]], k: int = 20) -> list[tuple[str, int]]:
    """The ``k`` most frequent words with their counts (ties alphabetical)."""
    counts = Counter(w for c in captions for w in c)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
