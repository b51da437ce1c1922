"""Persian text normalisation, applied before every metric, and orthographic perturbations that keep
the meaning (for a robustness audit: the same couplet, written the way another keyboard or editor writes it).

:func:`normalize` makes one spelling of what readers see as one text:

* Unicode NFC first, so decomposed letters (``ا`` + madda) compose (``آ``);
* Arabic letter variants → Persian: ``ي``/``ى`` → ``ی``, ``ك`` → ``ک``; ``ة`` (tāʾ marbūṭa) and ``ۀ``
  (heh with hamza, an ezafe mark) → ``ه``, the spelling Persian uses for these word endings;
* Arabic-Indic (``٠``–``٩``) and Persian (``۰``–``۹``) digits → ASCII ``0``–``9``;
* removed: tatweel ``ـ``, the harakat U+064B–U+0652, madda/hamza above/below U+0653–U+0655, the
  superscript alef U+0670, and invisible marks (zero-width space and joiner, bidi marks, BOM);
* ZWNJ (U+200C, the half-space of ``می‌رود``) becomes a space (``zwnj="space"``) or is kept
  (``zwnj="keep"``: runs of it become one, and it is dropped next to a space or at a word's edge);
* whitespace runs become one space; no space at either end.

Hamza-carrying letters (``أ``, ``إ``, ``ؤ``, ``ئ``) and ``آ`` are kept: they spell different words.
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum

import numpy as np

from robustlab.core.errors import RobustlabError, choice_error

ZWNJ = "\u200c"
HARAKAT = tuple(chr(c) for c in range(0x064B, 0x0653))  # fathatan … sukun
_LETTERS = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه", "ۀ": "ه"})
_DIGITS = str.maketrans({chr(base + i): str(i) for base in (0x0660, 0x06F0) for i in range(10)})
_REMOVED = re.compile("[\u0640\u064b-\u0655\u0670\u200b\u200d\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_SPACES = re.compile(r"\s+")
_EDGE_ZWNJ = re.compile(rf"{ZWNJ}(?=\s|$)|(?<=\s){ZWNJ}|^{ZWNJ}")
ZWNJ_MODES = ("space", "keep")

#: words joined to their neighbour by a ZWNJ in standard Persian spelling: verb prefixes, plural suffixes
PREFIXES = ("می", "نمی")
SUFFIXES = ("ها", "های", "هایی", "هایم", "هایت", "هایش", "هایمان", "هایتان", "هایشان")
_PERSIAN_TO_ARABIC = {"ی": "ي", "ک": "ك"}
_HAMZA_MARKS = ("\u0654", "\u0655")  # ي + hamza composes to ئ under NFC, ی + hamza does not


def normalize(text: str, zwnj: str = "space") -> str:
    """The normalised form of ``text`` (see the module docstring); idempotent, and ``zwnj`` is
    ``"space"`` (ZWNJ → space) or ``"keep"``."""
    if zwnj not in ZWNJ_MODES:
        raise choice_error("zwnj mode", zwnj, ZWNJ_MODES)
    text = unicodedata.normalize("NFC", text).translate(_LETTERS).translate(_DIGITS)
    text = _REMOVED.sub("", text)
    text = text.replace(ZWNJ, " ") if zwnj == "space" else _EDGE_ZWNJ.sub("", re.sub(f"{ZWNJ}+", ZWNJ, text))
    return _SPACES.sub(" ", text).strip()


class PerturbationKind(StrEnum):
    """Orthographic changes a reader does not notice.

    ``zwnj_space``: a ZWNJ becomes a space, and a space between a word and a prefix/suffix of
    :data:`PREFIXES`/:data:`SUFFIXES` becomes a ZWNJ. ``arabic_letters``: ``ی`` → ``ي``, ``ک`` → ``ك``.
    ``diacritics``: a random haraka is added after a letter."""

    ZWNJ_SPACE = "zwnj_space"
    ARABIC_LETTERS = "arabic_letters"
    DIACRITICS = "diacritics"


def perturb(text: str, kind: PerturbationKind | str, rate: float, rng: np.random.Generator) -> str:
    """``text`` with each candidate site of ``kind`` changed with probability ``rate`` in [0, 1].

    Guarantees: ``normalize(perturb(x, k, ...)) == normalize(x)`` for ``arabic_letters`` and
    ``diacritics`` (both ZWNJ modes), and for ``zwnj_space`` with ``zwnj="space"``. ``rate`` 0 returns
    ``text`` unchanged; the result is a function of ``(text, kind, rate)`` and the state of ``rng``."""
    if kind not in tuple(PerturbationKind):
        raise choice_error("perturbation", kind, [k.value for k in PerturbationKind])
    if not 0.0 <= rate <= 1.0:
        raise RobustlabError(f"perturbation rate must be in [0, 1], got {rate}")
    kind = PerturbationKind(kind)
    if kind == PerturbationKind.ZWNJ_SPACE:
        return _swap_zwnj(text, rate, rng)
    if kind == PerturbationKind.ARABIC_LETTERS:
        sites = [i for i, c in enumerate(text) if c in _PERSIAN_TO_ARABIC and text[i + 1:i + 2] not in _HAMZA_MARKS]
        return _replace_at(text, sites, rate, rng, lambda c: _PERSIAN_TO_ARABIC[c])
    return _add_diacritics(text, rate, rng)


def _replace_at(text: str, sites: list[int], rate: float, rng: np.random.Generator, change) -> str:
    """``text`` with ``change(char)`` applied at each of ``sites`` drawn with probability ``rate``."""
    if not sites:
        return text
    chosen = np.asarray(sites)[rng.random(len(sites)) < rate]
    chars = list(text)
    for i in chosen:
        chars[i] = change(chars[i])
    return "".join(chars)


def _swap_zwnj(text: str, rate: float, rng: np.random.Generator) -> str:
    """ZWNJ → space, and space → ZWNJ where it separates a prefix or suffix from its word."""
    words = text.split(" ")
    sites = [i for i, c in enumerate(text) if c == ZWNJ]
    pos = 0
    for k, w in enumerate(words[:-1]):  # the space after word k sits at pos + len(w)
        nxt = words[k + 1]
        if w and nxt and (w.rsplit(ZWNJ, 1)[-1] in PREFIXES or nxt.split(ZWNJ, 1)[0] in SUFFIXES):
            sites.append(pos + len(w))
        pos += len(w) + 1
    return _replace_at(text, sorted(sites), rate, rng, lambda c: " " if c == ZWNJ else ZWNJ)


def _add_diacritics(text: str, rate: float, rng: np.random.Generator) -> str:
    """A random haraka after each letter drawn with probability ``rate``."""
    sites = [i for i, c in enumerate(text) if unicodedata.category(c) == "Lo"]
    if not sites:
        return text
    draw = rng.random(len(sites)) < rate
    marks = rng.integers(0, len(HARAKAT), size=len(sites))
    after = {i: HARAKAT[m] for i, m, d in zip(sites, marks, draw, strict=True) if d}
    return "".join(c + after.get(i, "") for i, c in enumerate(text))
