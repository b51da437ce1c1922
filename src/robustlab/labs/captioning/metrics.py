"""Corpus caption metrics on word tokens, honest by construction.

Every metric takes ``refs`` (one entry per image: a list of references, each a list of word tokens
from :func:`~robustlab.labs.captioning.text.clean_caption`) and ``hyps`` (one token list per image),
and calls :func:`check_inputs` first, which refuses the usual ways a BLEU number silently lies:

* a ``str`` where a token list belongs (nltk would score its characters as n-grams);
* vocabulary ids or special tokens (``<unk>`` in a reference matches ``<unk>`` in a hypothesis);
* an image without references, or ``refs``/``hyps`` of different lengths.

The primary number is corpus BLEU-1..4 from nltk (0–1, no smoothing), the one published captioning
results report. :func:`cross_check` recomputes it with pycocoevalcap and sacrebleu: the three agree
to 1e-9 when every hypothesis has at least 4 tokens; with shorter hypotheses nltk is lower, because
its ``modified_precision`` returns ``Fraction(numerator, max(1, denominator))``, so a hypothesis
without n-grams of an order still adds 1 to that order's corpus denominator (pycocoevalcap and
sacrebleu add 0). :func:`sentence_bleu4` is for ranking samples only: its mean is not corpus BLEU.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Hashable, Sequence
from typing import Any

from robustlab.core.errors import RobustlabError
from robustlab.labs.captioning.text import SPECIALS, length_histogram

Tokens = Sequence[str]
References = Sequence[Sequence[Tokens]]

BLEU_WEIGHTS = [(1.0,), (1 / 2, 1 / 2), (1 / 3,) * 3, (1 / 4,) * 4]
AGREEMENT_TOLERANCE = 1e-9
_SPECIALS = frozenset(SPECIALS)


def _check_tokens(tokens: object, what: str) -> None:
    """A ``TypeError`` unless ``tokens`` is a non-str sequence of str."""
    if isinstance(tokens, str):
        raise TypeError(f"{what} is a str ({tokens[:30]!r}); pass a list of word tokens "
                        "(clean_caption(...)), or nltk scores its characters")
    if not isinstance(tokens, Sequence):
        raise TypeError(f"{what} must be a list of word tokens, got {type(tokens).__name__}")
    for t in tokens:
        if not isinstance(t, str):
            raise TypeError(f"{what} holds a {type(t).__name__} ({t!r}); tokens are words, not vocabulary ids "
                            "(decode them first)")


def _check_hyps(hyps: Sequence[Tokens]) -> None:
    """A ``TypeError`` unless ``hyps`` is a sequence of token lists."""
    if isinstance(hyps, str) or not isinstance(hyps, Sequence):
        raise TypeError(f"hypotheses must be a list of token lists, got {type(hyps).__name__}")
    for i, h in enumerate(hyps):
        _check_tokens(h, f"hypothesis {i}")


def check_inputs(refs: References, hyps: Sequence[Tokens]) -> None:
    """Validate a corpus; returns nothing when it is fine.

    Raises ``TypeError`` when a hypothesis, a reference or a reference list is a ``str`` (or a token
    is not a ``str``), ``ValueError`` when ``len(refs) != len(hyps)`` or the corpus is empty, and a
    one-line :class:`RobustlabError` when an image has no reference or a reference holds one of
    ``<pad> <sos> <eos> <unk>``."""
    if isinstance(refs, str) or not isinstance(refs, Sequence):
        raise TypeError(f"references must be a list (per image) of lists of token lists, got {type(refs).__name__}")
    _check_hyps(hyps)
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} reference lists for {len(hyps)} hypotheses; need one per image")
    if not hyps:
        raise ValueError("empty corpus: no images to score")
    for i, image_refs in enumerate(refs):
        if isinstance(image_refs, str) or not isinstance(image_refs, Sequence):
            raise TypeError(f"references of image {i} must be a list of token lists, got {type(image_refs).__name__}")
        if len(image_refs) == 0:
            raise RobustlabError(f"image {i} has no reference caption; drop it or add one")
        for j, ref in enumerate(image_refs):
            _check_tokens(ref, f"reference {j} of image {i}")
            special = _SPECIALS.intersection(ref)
            if special:
                raise RobustlabError(f"reference {j} of image {i} holds special token {sorted(special)[0]}; "
                                     "references must be cleaned captions, not decoded ids")


def _floats(values: Sequence[float]) -> tuple[float, float, float, float]:
    a, b, c, d = (float(v) for v in values)
    return a, b, c, d


def corpus_bleu(refs: References, hyps: Sequence[Tokens]) -> tuple[float, float, float, float]:
    """Corpus BLEU-1..4 in [0, 1] with nltk's ``corpus_bleu``, no smoothing, closest reference length
    for the brevity penalty: the primary number, comparable with published captioning results."""
    check_inputs(refs, hyps)
    from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nltk warns on zero n-gram matches and returns ~0 for that order
        scores = nltk_corpus_bleu([list(map(list, r)) for r in refs], [list(h) for h in hyps], weights=BLEU_WEIGHTS)
    return _floats(scores)


def _coco_dicts(refs: References, hyps: Sequence[Tokens]) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    gts = {i: [" ".join(r) for r in image_refs] for i, image_refs in enumerate(refs)}
    res = {i: [" ".join(h)] for i, h in enumerate(hyps)}
    return gts, res


def coco_bleu(refs: References, hyps: Sequence[Tokens]) -> tuple[float, float, float, float]:
    """Corpus BLEU-1..4 in [0, 1] with pycocoevalcap's ``Bleu(4)`` (closest reference length) on the
    tokens joined by spaces (no PTB tokenizer: the tokens are already clean). Its stdout is swallowed."""
    check_inputs(refs, hyps)
    from pycocoevalcap.bleu.bleu import Bleu

    gts, res = _coco_dicts(refs, hyps)
    with contextlib.redirect_stdout(io.StringIO()):
        scores, _ = Bleu(4).compute_score(gts, res, verbose=0)
    return _floats(scores)


def cider_d(refs: References, hyps: Sequence[Tokens]) -> float:
    """CIDEr-D of the corpus (≥ 0; 10 is a hypothesis equal to all its references; typical COCO
    models score 0.8–1.3) with pycocoevalcap's ``Cider``.

    pycocoevalcap 1.2's ``cider`` module is CIDEr-D, though it is named "CIDEr": tf-idf n-gram vectors
    (n = 1..4) with the hypothesis counts clipped to the reference counts, a Gaussian length penalty
    (σ = 6), the mean over references, ×10. Its length is measured in bigrams (the library's
    ``n == 1`` index), i.e. words − 1. The idf comes from the references of the scored corpus, so the
    value depends on the corpus, not only on each image. A hypothesis of zero tokens is scored as the
    empty string, which the scorer accepts: it has no n-grams and scores 0."""
    check_inputs(refs, hyps)
    from pycocoevalcap.cider.cider import Cider

    gts, res = _coco_dicts(refs, hyps)
    with contextlib.redirect_stdout(io.StringIO()):
        score, _ = Cider().compute_score(gts, res)
    return float(score)


def sacre_bleu(refs: References, hyps: Sequence[Tokens]) -> tuple[float, float, float, float]:
    """Corpus BLEU-1..4 in [0, 1] with sacrebleu (``tokenize="none"``, no smoothing, no effective
    order), one :class:`sacrebleu.metrics.BLEU` per maximum order. References are transposed into
    streams; an image with fewer references than the most has ``None`` in the missing streams
    (sacrebleu skips those)."""
    check_inputs(refs, hyps)
    from sacrebleu.metrics import BLEU

    most = max(len(r) for r in refs)
    streams = [[" ".join(r[j]) if j < len(r) else None for r in refs] for j in range(most)]
    hyp_lines = [" ".join(h) for h in hyps]
    scores = []
    for n in range(1, 5):
        metric = BLEU(tokenize="none", max_ngram_order=n, smooth_method="none", effective_order=False)
        scores.append(metric.corpus_score(hyp_lines, streams).score / 100.0)
    return _floats(scores)


def short_hypotheses(hyps: Sequence[Tokens], n: int = 4) -> int:
    """How many hypotheses have fewer than ``n`` tokens (0..len(hyps))."""
    _check_hyps(hyps)
    return sum(len(h) < n for h in hyps)


def cross_check(refs: References, hyps: Sequence[Tokens]) -> dict[str, Any]:
    """BLEU-1..4 from nltk, pycocoevalcap and sacrebleu side by side.

    Returns ``{"nltk", "pycocoevalcap", "sacrebleu"}`` (4 floats each, 0–1), ``"short_hypotheses"``
    (hypotheses under 4 tokens), ``"images"``, ``"max_difference"`` (largest absolute difference
    between any two implementations at any order), ``"agree"`` (max difference ≤ 1e-9) and a
    one-sentence ``"note"`` explaining a disagreement."""
    nltk_scores = corpus_bleu(refs, hyps)
    coco_scores = coco_bleu(refs, hyps)
    sacre_scores = sacre_bleu(refs, hyps)
    diff = max(abs(a - b) for trio in zip(nltk_scores, coco_scores, sacre_scores, strict=True)
               for a, b in ((trio[0], trio[1]), (trio[0], trio[2]), (trio[1], trio[2])))
    short = short_hypotheses(hyps)
    agree = diff <= AGREEMENT_TOLERANCE
    if short:
        note = (f"{short} hypotheses have fewer than 4 tokens: nltk's modified_precision returns "
                "Fraction(numerator, max(1, denominator)), so each adds 1 to the denominator of an n-gram order "
                "it has no n-grams of, and nltk's BLEU is lower than pycocoevalcap's and sacrebleu's, which add 0")
    elif agree:
        note = "every hypothesis has at least 4 tokens, and the three implementations agree to 1e-9"
    else:
        note = (f"the implementations differ by {diff:.3g} although every hypothesis has at least 4 tokens; "
                "check the tokens (whitespace inside a token splits differently in the string-based scorers)")
    return {"nltk": list(nltk_scores), "pycocoevalcap": list(coco_scores), "sacrebleu": list(sacre_scores),
            "short_hypotheses": short, "images": len(hyps), "max_difference": float(diff), "agree": agree,
            "note": note}


def bleu_by_reference_count(refs: References, hyps: Sequence[Tokens],
                            counts: Sequence[int] = (1, 2, 3, 4, 5)) -> dict[int, float]:
    """Corpus BLEU-4 (nltk, 0–1) using only the first ``k`` references of each image, for each ``k``
    in ``counts`` (an image with fewer than ``k`` references uses all it has; a ``k`` larger than
    every image's reference count is left out). BLEU rises with ``k``: compare numbers only at equal
    ``k``."""
    check_inputs(refs, hyps)
    most = max(len(r) for r in refs)
    out = {}
    for k in counts:
        if k < 1:
            raise ValueError(f"reference count must be ≥ 1, got {k}")
        if k <= most:
            out[int(k)] = corpus_bleu([r[:k] for r in refs], hyps)[3]
    return out


def bleu_by_group(refs: References, hyps: Sequence[Tokens], keys: Sequence[Hashable]) -> dict[Any, dict[str, Any]]:
    """Corpus BLEU-4 (nltk, 0–1) of each group of images sharing a key (``keys[i]`` is image ``i``'s),
    as ``{key: {"bleu4": float, "images": int}}`` in sorted key order (keys must be orderable); the
    ``images`` of all groups sum to ``len(hyps)``."""
    check_inputs(refs, hyps)
    if len(keys) != len(hyps):
        raise ValueError(f"{len(keys)} group keys for {len(hyps)} images; need one per image")
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return {key: {"bleu4": corpus_bleu([refs[i] for i in groups[key]], [hyps[i] for i in groups[key]])[3],
                  "images": len(groups[key])}
            for key in sorted(groups)}


def length_bucket(n_tokens: int, edges: Sequence[int] = (5, 10, 15, 20)) -> str:
    """The length bucket of a caption of ``n_tokens`` words: ``"≤5"``, ``"6–10"``, …, ``">20"`` for the
    default ``edges`` (strictly increasing, positive)."""
    if n_tokens < 0:
        raise ValueError(f"a caption length is ≥ 0, got {n_tokens}")
    if not edges or any(b <= a for a, b in zip(edges, edges[1:], strict=False)) or edges[0] < 1:
        raise ValueError(f"bucket edges must be positive and strictly increasing, got {tuple(edges)}")
    if n_tokens <= edges[0]:
        return f"≤{edges[0]}"
    for low, high in zip(edges, edges[1:], strict=False):
        if n_tokens <= high:
            return f"{low + 1}–{high}"
    return f">{edges[-1]}"


def sentence_bleu4(ref_list: Sequence[Tokens], hyp: Tokens) -> float:
    """Sentence BLEU-4 (0–1) of one hypothesis with nltk's ``sentence_bleu`` and
    ``SmoothingFunction().method1``: only for ranking the worst samples. Its mean over a corpus is not
    corpus BLEU (which pools n-gram counts before dividing) and must not be reported as BLEU."""
    check_inputs([ref_list], [hyp])
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sentence_bleu([list(r) for r in ref_list], list(hyp),
                                   smoothing_function=SmoothingFunction().method1))


def _ngrams(tokens: Tokens, n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(hyps: Sequence[Tokens], n: int) -> float:
    """Distinct ``n``-grams over all hypotheses divided by their total number of ``n``-grams, in
    [0, 1]; 0 when the hypotheses have no ``n``-gram."""
    _check_hyps(hyps)
    if n < 1:
        raise ValueError(f"n-gram order must be ≥ 1, got {n}")
    grams = [g for h in hyps for g in _ngrams(h, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def copied_fraction(hyps: Sequence[Tokens], training_captions: set[tuple[str, ...]]) -> float:
    """Share of hypotheses (0–1) that are word for word a training caption (``training_captions``
    holds token tuples); 0 for no hypotheses."""
    _check_hyps(hyps)
    if not hyps:
        return 0.0
    return sum(tuple(h) in training_captions for h in hyps) / len(hyps)


def all_identical(hyps: Sequence[Tokens]) -> bool:
    """True when there are at least 2 hypotheses and all are equal: a collapsed captioner that writes
    the same caption for every image."""
    _check_hyps(hyps)
    return len(hyps) >= 2 and len({tuple(h) for h in hyps}) == 1


def _mean(values: Sequence[int]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def caption_metrics(refs: References, hyps: Sequence[Tokens],
                    training_captions: set[tuple[str, ...]] | None = None) -> dict[str, Any]:
    """Everything a results.json reports about a captioner's corpus, as plain JSON-able values:
    ``bleu`` (nltk BLEU-1..4, 0–1), ``cider_d``, ``images``, ``references_per_image`` {min, mean, max},
    ``cross_check`` (see :func:`cross_check`), ``bleu_by_reference_count``, ``distinct_1``,
    ``distinct_2``, ``copied_fraction`` (``None`` without ``training_captions``), ``all_identical``,
    ``hypothesis_length`` {mean, min, max}, ``hypothesis_length_histogram`` (length → count) and
    ``reference_length_mean``."""
    check_inputs(refs, hyps)
    check = cross_check(refs, hyps)
    ref_counts = [len(r) for r in refs]
    hyp_lengths = [len(h) for h in hyps]
    ref_lengths = [len(r) for image_refs in refs for r in image_refs]
    return {
        "bleu": list(check["nltk"]),
        "cider_d": cider_d(refs, hyps),
        "images": len(hyps),
        "references_per_image": {"min": min(ref_counts), "mean": _mean(ref_counts), "max": max(ref_counts)},
        "cross_check": check,
        "bleu_by_reference_count": bleu_by_reference_count(refs, hyps),
        "distinct_1": distinct_n(hyps, 1),
        "distinct_2": distinct_n(hyps, 2),
        "copied_fraction": None if training_captions is None else copied_fraction(hyps, training_captions),
        "all_identical": all_identical(hyps),
        "hypothesis_length": {"mean": _mean(hyp_lengths), "min": min(hyp_lengths), "max": max(hyp_lengths)},
        "hypothesis_length_histogram": {int(k): int(v) for k, v in length_histogram(hyps).items()},
        "reference_length_mean": _mean(ref_lengths),
    }
