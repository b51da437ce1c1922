"""Poetry checks for generated beyts, all on :func:`~robustlab.data.persian.normalize`-d text:
form (two hemistichs), end rhyme with the radif discounted, diversity, repetition, memorisation of
training beyts, and a letter-count proxy for metre.

**Rhyme.** A hemistich's *rhyme key* is its letters only (spaces, ZWNJ, digits and punctuation
dropped) with the hamza/madda carriers folded (``آأإ`` → ``ا``, ``ئ`` → ``ی``, ``ؤ`` → ``و``), since
``فضائل``/``فضایل`` or ``آن``/``جان`` rhyme. The *radif* is the word(s) a ghazal repeats verbatim after
its rhyme word (``… مشکل ها`` / ``… دل ها``: radif ``ها``); the rhyme proper (qafiye) lies before it.
Two hemistichs rhyme, given a radif ``r``, when both keys end with ``r``'s key and their shared final
suffix is at least ``max(min_letters, len(key(r)) + 1)`` letters: the ending must be at least
``min_letters`` long and reach at least one letter (the rawi) past the radif. Without the discount a
beyt that only repeats the radif would count as rhyming.

Unvoweled script hides short vowels, so a one-consonant qafiye after a short vowel (``منزل``/``دل``,
no radif) shares one letter only and is not counted at ``min_letters=2``: the check errs towards "no
rhyme", and the tests calibrate it on real Hafez couplets (consecutive beyts rhyme, random ones do not).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from robustlab.core.errors import RobustlabError
from robustlab.data.persian import normalize
from robustlab.labs.lm.corpus import Beyt, Poem, RhymeForm, parse_rhyme_form
from robustlab.labs.lm.pairs import HEMISTICH_SEP

BeytLike = Beyt | str  # a beyt, or a beyt written as one string with HEMISTICH_SEP between its hemistichs
_SEP = HEMISTICH_SEP.strip()
_FOLD = str.maketrans({"آ": "ا", "أ": "ا", "إ": "ا", "ئ": "ی", "ؤ": "و"})


def hemistichs(text: str) -> list[str]:
    """The normalised hemistichs of a beyt string: ``text`` split at every ``/`` (spaces around it
    optional), each stripped; one element when there is no separator."""
    return [h.strip() for h in normalize(text).split(_SEP)]


def _has_letter(text: str) -> bool:
    return any(c.isalpha() for c in text)


def well_formed(text: str) -> bool:
    """Whether ``text`` is exactly two hemistichs, each with at least one letter."""
    parts = hemistichs(text)
    return len(parts) == 2 and all(_has_letter(h) for h in parts)


def _halves(beyt: BeytLike) -> tuple[str, str] | None:
    """The two normalised hemistichs, or ``None`` for a string that is not well formed."""
    if isinstance(beyt, Beyt):
        return normalize(beyt.first), normalize(beyt.second)
    return tuple(hemistichs(beyt)) if well_formed(beyt) else None


def rhyme_key(text: str) -> str:
    """The letters of normalised ``text`` with hamza/madda carriers folded (see the module docstring)."""
    return "".join(c for c in normalize(text).translate(_FOLD) if c.isalpha())


def _shared_suffix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a[::-1], b[::-1]]))


def rhyme_suffix_match(a: str, b: str, min_letters: int = 2) -> bool:
    """Whether the rhyme keys of ``a`` and ``b`` share a final suffix of at least ``min_letters`` letters."""
    return _shared_suffix(rhyme_key(a), rhyme_key(b)) >= min_letters


def radif(hemistichs: Sequence[str]) -> str:
    """The radif of a poem's rhyming hemistichs (normalised words, ``""`` when there is none): the
    longest run of whole final words that more than half of them end with verbatim and whose letters
    end every one of them (``… مشکل ها`` and ``… اهملها`` both end in ``ها``), leaving at least one
    letter before it in each. Fewer than two hemistichs have no radif."""
    words = [normalize(h).split() for h in hemistichs]
    keys = [rhyme_key(h) for h in hemistichs]
    if len(words) < 2:
        return ""
    best = ""
    for k in range(1, max(len(w) for w in words)):
        counts = Counter(" ".join(w[-k:]) for w in words if len(w) > k)
        if not counts:
            break
        candidate, n = counts.most_common(1)[0]
        ck = rhyme_key(candidate)
        if 2 * n <= len(words) or not all(key.endswith(ck) and len(key) > len(ck) for key in keys):
            break
        best = candidate
    return best


_radif_of = radif  # rhymes() takes a parameter of the same name


def rhyming_hemistichs(poem: Poem, form: RhymeForm | str) -> list[str]:
    """The hemistichs that carry the poem-wide rhyme: for a ghazal the first beyt's first hemistich and
    every beyt's second; a masnavi has none (each beyt rhymes on its own)."""
    if parse_rhyme_form(form) == RhymeForm.MASNAVI:
        return []
    return [poem.beyts[0].first, *(b.second for b in poem.beyts)]


def poem_radif(poem: Poem, form: RhymeForm | str) -> str:
    """The radif of ``poem``'s rhyming hemistichs (``""`` for a masnavi: its beyts' radifs differ)."""
    return radif(rhyming_hemistichs(poem, form))


def _rhyme(a: str, b: str, shared_radif: str, min_letters: int) -> bool:
    ka, kb, kr = rhyme_key(a), rhyme_key(b), rhyme_key(shared_radif)
    if kr and not (ka.endswith(kr) and kb.endswith(kr)):
        return False
    return _shared_suffix(ka, kb) >= max(min_letters, len(kr) + 1)


def rhymes(source_beyt: BeytLike | None, generated_beyt: BeytLike, form: RhymeForm | str, radif: str = "",
           min_letters: int = 2) -> bool:
    """Whether ``generated_beyt`` continues the rhyme of ``source_beyt`` (rule: module docstring).

    Ghazal (aa ba ca): the generated beyt's second hemistich rhymes with the source beyt's second,
    given the poem's ``radif`` (:func:`poem_radif`; ``""`` discounts nothing). Masnavi (aa bb cc): the
    generated beyt's two hemistichs rhyme with each other, given ``radif`` or, when it is ``""``, the
    whole words they both end with; the source does not enter (it may be ``None``). A generated string
    that is not :func:`well_formed` does not rhyme."""
    gen = _halves(generated_beyt)
    if gen is None:
        return False
    if parse_rhyme_form(form) == RhymeForm.MASNAVI:
        return _rhyme(gen[0], gen[1], radif or _radif_of(list(gen)), min_letters)
    if source_beyt is None:
        raise RobustlabError("a ghazal's rhyme is checked against the source beyt; none was given")
    src = _halves(source_beyt)
    return src is not None and _rhyme(src[1], gen[1], radif, min_letters)


def rhyme_rate(sources: Sequence[BeytLike], generated: Sequence[BeytLike], form: RhymeForm | str,
               radifs: Sequence[str] | None = None, min_letters: int = 2) -> float:
    """Share in [0, 1] of ``generated[i]`` that :func:`rhymes` with ``sources[i]`` (radif ``radifs[i]``)."""
    rads = [""] * len(sources) if radifs is None else list(radifs)
    _check_lengths(sources=sources, generated=generated, radifs=rads)
    return float(np.mean([rhymes(s, g, form, r, min_letters) for s, g, r in zip(sources, generated, rads,
                                                                                strict=True)]))


def _check_lengths(**lists: Sequence) -> None:
    sizes = {name: len(v) for name, v in lists.items()}
    if len(set(sizes.values())) != 1:
        raise RobustlabError("lists of different lengths: " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    if not next(iter(sizes.values())):
        raise RobustlabError(f"no {next(iter(sizes))} to score")


def _words(text: str) -> list[str]:
    return [w for w in normalize(text).split() if w != _SEP]


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct-n over all ``texts``: unique word n-grams / all word n-grams (n-grams do not span two
    texts; the hemistich separator is not a word), in [0, 1]; 0.0 when there is no n-gram."""
    if n < 1:
        raise RobustlabError(f"distinct-n needs n ≥ 1, got {n}")
    grams = [tuple(w[i:i + n]) for w in map(_words, texts) for i in range(len(w) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repetition_rate(text: str) -> float:
    """Share in [0, 1] of ``text``'s words that repeat an earlier word of the same text; 0.0 for no words."""
    words = _words(text)
    return 1.0 - len(set(words)) / len(words) if words else 0.0


def _canonical(beyt: BeytLike) -> str:
    halves = _halves(beyt)
    return HEMISTICH_SEP.join(halves) if halves else normalize(beyt)


def copy_rate(generated: Sequence[BeytLike], training_beyts: Iterable[BeytLike]) -> float:
    """Share in [0, 1] of ``generated`` beyts equal, after normalisation, to a training beyt verbatim."""
    _check_lengths(generated=generated)
    seen = {_canonical(b) for b in training_beyts}
    return float(np.mean([_canonical(g) in seen for g in generated]))


def _parts(beyt: BeytLike) -> list[str]:
    return [normalize(beyt.first), normalize(beyt.second)] if isinstance(beyt, Beyt) else hemistichs(beyt)


def echo_rate(sources: Sequence[BeytLike], generated: Sequence[BeytLike]) -> float:
    """Share in [0, 1] of ``generated[i]`` that repeat a hemistich of ``sources[i]`` verbatim after
    normalisation: the continuation that copies its prompt (which :func:`rhymes` does not reject)."""
    _check_lengths(sources=sources, generated=generated)
    return float(np.mean([bool(set(_parts(g)) & set(_parts(s))) for s, g in zip(sources, generated, strict=True)]))


class MetreProxy(NamedTuple):
    """Letters per hemistich of a generated beyt against its source: ``generated / source`` and
    ``|generated - source|`` (letters)."""

    ratio: float
    abs_diff: float


def _letters_per_hemistich(beyt: BeytLike) -> float:
    parts = _parts(beyt)
    return sum(len(rhyme_key(h)) for h in parts) / len(parts)


def metre_proxy(source: BeytLike, generated: BeytLike) -> MetreProxy:
    """How far the generated beyt's length is from the source's, in letters per hemistich (a text that
    is not two hemistichs is split as :func:`hemistichs` does). A proxy only: one metre has hemistichs
    of similar letter counts, but this is not a scan of long and short syllables."""
    src, gen = _letters_per_hemistich(source), _letters_per_hemistich(generated)
    if src == 0:
        raise RobustlabError(f"source beyt {source!r} has no letters")
    return MetreProxy(gen / src, abs(gen - src))


def poetry_report(sources: Sequence[BeytLike], generated: Sequence[BeytLike], references: Sequence[BeytLike],
                  training: Iterable[BeytLike], form: RhymeForm | str, radifs: Sequence[str] | None = None,
                  min_letters: int = 2) -> dict[str, float]:
    """The poetry metrics of ``generated[i]`` as the continuation of ``sources[i]``, each in [0, 1]
    except the metre gaps (letters): ``well_formed``, ``rhyme``, ``distinct_1``, ``distinct_2``,
    ``repetition`` (mean), ``copy_rate`` (against ``training``), ``echo_rate`` (a source hemistich
    repeated), ``metre_proxy_abs_diff`` (mean), and
    as the calibration row the real next beyts ``references[i]``: ``reference_rhyme`` and
    ``reference_metre_proxy_abs_diff``. ``radifs[i]`` is the radif of source ``i``'s poem."""
    _check_lengths(sources=sources, generated=generated, references=references)
    texts = [g if isinstance(g, str) else HEMISTICH_SEP.join((g.first, g.second)) for g in generated]
    return {
        "well_formed": float(np.mean([well_formed(t) for t in texts])),
        "rhyme": rhyme_rate(sources, generated, form, radifs, min_letters),
        "distinct_1": distinct_n(texts, 1),
        "distinct_2": distinct_n(texts, 2),
        "repetition": float(np.mean([repetition_rate(t) for t in texts])),
        "copy_rate": copy_rate(generated, training),
        "echo_rate": echo_rate(sources, generated),
        "metre_proxy_abs_diff": float(np.mean([metre_proxy(s, g).abs_diff for s, g in zip(sources, generated,
                                                                                         strict=True)])),
        "reference_rhyme": rhyme_rate(sources, references, form, radifs, min_letters),
        "reference_metre_proxy_abs_diff": float(np.mean([metre_proxy(s, r).abs_diff for s, r in zip(
            sources, references, strict=True)])),
    }
