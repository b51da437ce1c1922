"""The audit of a trained couplet model: what ``results.json`` holds about it.

Four sections, every number defined on the test pairs (beyt ``i`` of a held-out poem as the prompt,
beyt ``i + 1`` as the target):

* ``perplexity`` — the model's perplexity and bits per character of the true targets, beside three
  baselines scored on exactly the same target tokens and characters: the model given a *shuffled*
  prompt (another test pair's source: what a model that ignores its input would score), an add-one
  unigram and an interpolated bigram fitted on the training pairs' token ids.
* ``generation`` — poetry metrics (:func:`~robustlab.labs.lm.poetry.poetry_report`) of plain sampling
  and of rhyme-aware decoding (the best of several samples by the rhyme check), of the real next
  beyts (the calibration: what the checks say about Hafez himself), of random training beyts and of
  the copied input; BLEU and chrF (sacrebleu) of the same hypotheses against the real next beyts.
* ``samples`` — a few prompts with their reference and generated continuations, for the report.
* ``robustness`` — orthographic perturbations of the prompts (:func:`~robustlab.data.persian.perturb`)
  that a reader does not notice: the perplexity change of the true targets, how often greedy decoding
  changes its output, and the rhyme rate of greedy outputs.

A prompt that no longer fits (a perturbed or shuffled one with more tokens than its clean original)
keeps its last words only, so the example fits ``max_length`` tokens (scoring) or the model's context
with ``max_new_tokens`` to spare (decoding); how many were shortened is recorded next to each number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import sacrebleu
import torch
from pydantic import Field
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from robustlab.core.config import Strict
from robustlab.core.errors import RobustlabError
from robustlab.core.modes import eval_mode
from robustlab.data.persian import PerturbationKind, normalize, perturb
from robustlab.labs.lm.corpus import Beyt, RhymeForm
from robustlab.labs.lm.examples import (
    EncodedPairs,
    collate_training,
    encode_pairs,
    prompt_ids,
    special_id,
    target_ids,
)
from robustlab.labs.lm.generation import DecodeSettings, rerank, sample_candidates
from robustlab.labs.lm.ngram import InterpolatedBigramLM, UnigramLM, bits_per_char, perplexity
from robustlab.labs.lm.pairs import Pair, beyt_text
from robustlab.labs.lm.perplexity import CorpusNLL, shuffled_prompts
from robustlab.labs.lm.poetry import poetry_report, rhymes, well_formed
from robustlab.labs.lm.rhyme_decoding import RhymeLexicon, rhyme_first

PERPLEXITY_NOTE = "token-weighted over target tokens only (beyt_out and </s>), no prompt, no padding"
HELDOUT_FRACTION = 0.1  # share of the training poems that chooses the bigram's λ (at least one poem)


def _default_decode() -> DecodeSettings:
    return DecodeSettings(do_sample=True, temperature=0.8, top_k=0, top_p=0.9, max_new_tokens=48, seed=0)


class LMAuditConfig(Strict):
    """What the audit of a couplet model measures and how."""

    samples: int = Field(10, ge=0, description="test prompts shown with their continuations in the report")
    generate: int = Field(200, ge=0, description="test pairs decoded for the poetry metrics and the flip rate "
                                                 "(the first ones; 0 = none; capped at the test size)")
    decode: DecodeSettings = Field(default_factory=_default_decode, description="plain decoding")
    rhyme_candidates: int = Field(8, ge=0, description="rhyme-aware decoding: candidates per prompt (the plain "
                                                       "sample and this many minus one more), the best by the "
                                                       "rhyme check kept; 0 = off")
    perturb: list[PerturbationKind] = Field(default_factory=lambda: list(PerturbationKind))
    perturb_rate: float = Field(0.3, ge=0.0, le=1.0, description="probability that a perturbation site changes")
    perturb_seed: int = Field(1234, ge=0)
    baseline_seed: int = Field(0, ge=0, description="draws of the shuffled-prompt and random-beyt baselines")
    batch_size: int = Field(32, ge=1, description="pairs per scoring batch, prompts per decoding batch")
    bleu: bool = Field(True, description="BLEU and chrF (sacrebleu) of the generated beyts")
    rhyme_first: int = Field(16, ge=0, description="rhyme-word-first decoding: rhyme words from the training "
                                                   "poems tried per prompt on the plain sample, the most "
                                                   "likely kept; 0 = off")


# -- small helpers -----------------------------------------------------------------------------------------------


def _finite(value: float) -> float | None:
    """``value`` as a float, ``None`` when it is NaN or infinite (JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None


def _context_size(model: PreTrainedModel) -> int | None:
    config = model.config
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def _fit_words(tokenizer: PreTrainedTokenizerBase, text: str, limit: int) -> str:
    """``text`` if ``<s> text <sep>`` has at most ``limit`` tokens, else its longest suffix of whole
    words (split at spaces) that does; ``""`` when no word fits."""
    words = text.split(" ")
    k = 0
    while k < len(words) and len(prompt_ids(tokenizer, " ".join(words[k:]))) > limit:
        k += 1
    return " ".join(words[k:])


def _fitted(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], limits: Sequence[int]) -> tuple[list[str], int]:
    """Every ``texts[i]`` fitted to ``limits[i]`` prompt tokens (:func:`_fit_words`) and how many were shortened."""
    if min(limits, default=2) < 2:
        raise RobustlabError(f"a prompt needs at least 2 tokens (<s> <sep>) but the limit is {min(limits)}")
    out = [_fit_words(tokenizer, t, n) for t, n in zip(texts, limits, strict=True)]
    return out, sum(a != b for a, b in zip(out, texts, strict=True))


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    return special_id(tokenizer, "pad")


def _score(model: PreTrainedModel, encoded: EncodedPairs, pad_id: int, batch_size: int,
           device: torch.device | str) -> dict[str, float | int | None]:
    """Token-weighted NLL of ``encoded``'s targets (batches of similar lengths, right-padded; eval mode
    is the caller's) → ``perplexity``, ``bits_per_char``, ``nll_sum`` (nats), ``tokens``, ``chars``."""
    acc = CorpusNLL(device)
    order = np.argsort(encoded.lengths, kind="stable")
    for start in range(0, len(order), batch_size):
        acc.update(model, collate_training([encoded[int(i)] for i in order[start:start + batch_size]], pad_id))
    nll, tokens, chars = acc.totals()
    return _row(nll, tokens, chars)


def _row(nll: float, tokens: int, chars: int) -> dict[str, float | int | None]:
    return {"perplexity": _finite(perplexity(nll, tokens)), "bits_per_char": _finite(bits_per_char(nll, chars)),
            "nll_sum": _finite(nll), "tokens": int(tokens), "chars": int(chars)}


def _with_prompts(tokenizer: PreTrainedTokenizerBase, sources: Sequence[str], clean: EncodedPairs,
                  max_length: int) -> tuple[EncodedPairs, int]:
    """``clean``'s targets after ``sources`` as prompts, each prompt shortened to fit ``max_length``
    with its target; and how many were shortened."""
    limits = [max_length - len(t) for t in clean.targets]
    fitted, shortened = _fitted(tokenizer, sources, limits)
    prompts = [prompt_ids(tokenizer, s) for s in fitted]
    return EncodedPairs(prompts, clean.targets, clean.target_chars), shortened


# -- perplexity --------------------------------------------------------------------------------------------------


def _heldout_split(pairs: Sequence[Pair]) -> tuple[list[int], list[int]]:
    """Indices of ``pairs`` for fitting and for choosing λ: the last :data:`HELDOUT_FRACTION` of the
    training poems (in order, at least one) hold out; no held-out part with fewer than two poems."""
    poems = list(dict.fromkeys(p.poem_id for p in pairs))
    if len(poems) < 2:
        return list(range(len(pairs))), []
    held = set(poems[len(poems) - max(1, round(HELDOUT_FRACTION * len(poems))):])
    fit = [i for i, p in enumerate(pairs) if p.poem_id not in held]
    return fit, [i for i, p in enumerate(pairs) if p.poem_id in held]


def ngram_rows(tokenizer: PreTrainedTokenizerBase, train_pairs: Sequence[Pair],
               test: EncodedPairs) -> dict[str, dict[str, Any]]:
    """The count baselines on ``test``'s target tokens (``target </s>``), characters as in ``test``.

    ``unigram``: add-one unigram of the training targets' ids (``target </s>``). ``bigram``: the
    interpolated bigram of ``<sep> target </s>`` sequences of the training pairs (so the first target
    token is conditioned on ``<sep>``, the last prompt token), its λ chosen on the last tenth of the
    training poems (fitted on the rest, then refitted on all with that λ; ``lambda_source`` says
    which, ``default`` with fewer than two training poems)."""
    if not train_pairs:
        raise RobustlabError("no training pairs to fit the n-gram baselines on")
    vocab = len(tokenizer)
    sep = special_id(tokenizer, "sep")
    targets = [target_ids(tokenizer, beyt_text(p.target)) for p in train_pairs]
    with_sep = [[sep, *t] for t in targets]
    contexts = [p[-1:] for p in test.prompts]
    tokens, chars = sum(len(t) for t in test.targets), sum(test.target_chars)
    unigram = UnigramLM.fit(targets, vocab)
    fit, held = _heldout_split(train_pairs)
    if held:
        chooser = InterpolatedBigramLM.fit([with_sep[i] for i in fit], vocab, heldout=[with_sep[i] for i in held])
        bigram = InterpolatedBigramLM.fit(with_sep, vocab, lam=chooser.lam)
    else:
        bigram = InterpolatedBigramLM.fit(with_sep, vocab)
    uni_nll = float(unigram.nll_batch(contexts, test.targets).sum())
    bi_nll = float(bigram.nll_batch(contexts, test.targets).sum())
    return {"bigram": {**_row(bi_nll, tokens, chars), "lambda": bigram.lam,
                       "lambda_source": "held-out training poems" if held else "default"},
            "unigram": _row(uni_nll, tokens, chars)}


def perplexity_section(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, train_pairs: Sequence[Pair],
                       test_pairs: Sequence[Pair], cfg: LMAuditConfig, max_length: int,
                       device: torch.device | str) -> dict[str, Any]:
    """``model``, ``shuffled_prompt``, ``bigram`` and ``unigram`` rows, each with ``perplexity``,
    ``bits_per_char``, ``nll_sum`` (nats), ``tokens`` and ``chars`` — the same targets, token and
    character counts in every row — and the ``note`` saying how they are weighted.

    ``shuffled_prompt`` pairs every target with another test pair's source (a derangement drawn from
    ``cfg.baseline_seed``; ``None`` with fewer than two test pairs): above the model's row when the
    model uses its input. ``shortened_prompts`` counts shuffled prompts cut to fit ``max_length``."""
    sources = [beyt_text(p.source) for p in test_pairs]
    clean = encode_pairs(tokenizer, sources, [beyt_text(p.target) for p in test_pairs], max_length)
    pad = _pad_id(tokenizer)
    out: dict[str, Any] = {"note": PERPLEXITY_NOTE, "model": _score(model, clean, pad, cfg.batch_size, device)}
    out["shuffled_prompt"] = None
    if len(sources) >= 2:
        shuffled, shortened = _with_prompts(tokenizer, shuffled_prompts(sources, cfg.baseline_seed), clean, max_length)
        out["shuffled_prompt"] = {**_score(model, shuffled, pad, cfg.batch_size, device),
                                  "shortened_prompts": shortened}
    return {**out, **ngram_rows(tokenizer, train_pairs, clean), "pairs": len(test_pairs)}


# -- generation --------------------------------------------------------------------------------------------------


def _decode_limit(model: PreTrainedModel, settings: DecodeSettings) -> int | None:
    context = _context_size(model)
    return None if context is None else context - settings.max_new_tokens


def decode(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, sources: Sequence[str],
           settings: DecodeSettings, batch_size: int, n: int = 1) -> tuple[list[list[str]], int]:
    """``n`` continuations per source (:func:`~robustlab.labs.lm.generation.sample_candidates`), each
    prompt first shortened to leave ``max_new_tokens`` of the model's context; and how many were."""
    limit = _decode_limit(model, settings)
    if limit is None:
        return sample_candidates(model, tokenizer, sources, settings, batch_size, n=n), 0
    if limit < 2:
        raise RobustlabError(f"max_new_tokens={settings.max_new_tokens} leaves no room for a prompt in the model's "
                             f"context of {_context_size(model)} tokens; lower it")
    fitted, shortened = _fitted(tokenizer, sources, [limit] * len(sources))
    return sample_candidates(model, tokenizer, fitted, settings, batch_size, n=n), shortened


def rhyme_score(source: Beyt, text: str, form: RhymeForm | str, radif: str) -> float:
    """The rhyme-aware decoding's score of ``text`` as the continuation of ``source``:
    ``2 · rhymes + well_formed`` in {0, 1, 2, 3} (a rhyming beyt is always well formed, so 3 or 0–1)."""
    return 2.0 * rhymes(source, text, form, radif) + float(well_formed(text))


def rhyme_aware(plain: Sequence[str], extra: Sequence[Sequence[str]], sources: Sequence[Beyt],
                form: RhymeForm | str, radifs: Sequence[str]) -> list[str]:
    """Per prompt ``i``, the best of ``[plain[i], *extra[i]]`` by :func:`rhyme_score` (ties: the plain
    sample first). The plain sample is a candidate, so the result rhymes wherever ``plain`` does:
    its rhyme rate and well-formed share can only be at least plain sampling's."""
    pools = [[p, *e] for p, e in zip(plain, extra, strict=True)]
    return rerank(pools, lambda i, text: rhyme_score(sources[i], text, form, radifs[i]))


def random_training_beyts(test_pairs: Sequence[Pair], train_pairs: Sequence[Pair], seed: int) -> list[str]:
    """Per test pair, the target beyt of a random training pair of another poem (drawn from ``seed``)."""
    rng = np.random.default_rng(seed)
    poems = np.array([p.poem_id for p in train_pairs], dtype=object)
    picks = []
    for pair in test_pairs:
        others = np.flatnonzero(poems != pair.poem_id)
        if not others.size:
            raise RobustlabError(f"no training beyt outside poem {pair.poem_id!r} for the random-pairs baseline")
        picks.append(beyt_text(train_pairs[int(rng.choice(others))].target))
    return picks


def text_overlap(hypotheses: dict[str, Sequence[str]], references: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``bleu`` and ``chrf``: sacrebleu's corpus BLEU and chrF (0–100, default settings) of each named
    list of hypotheses against ``references`` (one reference each), all texts :func:`normalize`-d first;
    ``signature`` is sacrebleu's description of the metric."""
    refs = [[normalize(r) for r in references]]
    out: dict[str, dict[str, Any]] = {}
    for key, metric in (("bleu", sacrebleu.metrics.BLEU()), ("chrf", sacrebleu.metrics.CHRF())):
        scores = {name: float(metric.corpus_score([normalize(h) for h in hyps], refs).score)
                  for name, hyps in hypotheses.items()}
        out[key] = {**scores, "signature": str(metric.get_signature())}
    return out


def _radifs(pairs: Sequence[Pair], radifs: dict[str, str]) -> list[str]:
    missing = next((p.poem_id for p in pairs if p.poem_id not in radifs), None)
    if missing is not None:
        raise RobustlabError(f"no radif given for poem {missing!r}; pass one per test poem (\"\" for none)")
    return [radifs[p.poem_id] for p in pairs]


def _rhyme_first(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, train_pairs: Sequence[Pair],
                 sources: Sequence[Beyt], src_text: Sequence[str], radifs: Sequence[str], form: RhymeForm | str,
                 plain: Sequence[str], cfg: LMAuditConfig) -> tuple[list[str], float | None]:
    """Rhyme-first beyts built on the ``plain`` samples (scored after the prompts :func:`decode` gave
    them) and the fallback rate; ``([], None)`` when ``cfg.rhyme_first`` is 0."""
    if not cfg.rhyme_first:
        return [], None
    limit = _decode_limit(model, cfg.decode)
    prompts = list(src_text) if limit is None else _fitted(tokenizer, src_text, [limit] * len(src_text))[0]
    out = rhyme_first(model, tokenizer, sources, radifs, RhymeLexicon.from_pairs(train_pairs, form), cfg.decode,
                      k=cfg.rhyme_first, batch_size=cfg.batch_size, drafts=plain, prompts=prompts,
                      score_batch=cfg.batch_size * 4)
    return out.texts, out.fallback_rate


def generation_section(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, train_pairs: Sequence[Pair],
                       pairs: Sequence[Pair], radifs: Sequence[str], form: RhymeForm | str,
                       cfg: LMAuditConfig) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The poetry metrics of ``pairs`` (the first ``cfg.generate`` test pairs), each row a
    :func:`~robustlab.labs.lm.poetry.poetry_report` against the same sources and references:

    * ``plain``: one sample per prompt with ``cfg.decode``;
    * ``rhyme_aware``: :func:`rhyme_aware` over the plain sample and ``cfg.rhyme_candidates − 1``
      more, drawn with ``cfg.decode`` sampling at seed ``cfg.decode.seed + 1`` (``None`` when off);
    * ``rhyme_first``: :func:`~robustlab.labs.lm.rhyme_decoding.rhyme_first` on the plain samples, with
      ``cfg.rhyme_first`` rhyme words per prompt from the training poems' lexicon; the row adds
      ``fallback_rate`` (prompts that kept the plain sample) and ``None`` when off;
    * ``references``: the real next beyts (the calibration of the checks);
    * ``random_pairs``: a random training beyt of another poem per prompt (the chance rate);
    * ``copy_input``: the prompt itself (rhymes by construction; its echo rate is 1).

    ``bleu`` / ``chrf`` (when ``cfg.bleu``) score plain, rhyme-aware, rhyme-first, copy-the-input and random-beyt
    hypotheses against the references. Also returns the texts per row, for the samples."""
    sources = [p.source for p in pairs]
    src_text = [beyt_text(b) for b in sources]
    references = [beyt_text(p.target) for p in pairs]
    training = {beyt_text(b) for p in train_pairs for b in (p.source, p.target)}
    plain, shortened = decode(model, tokenizer, src_text, cfg.decode, cfg.batch_size)
    texts: dict[str, list[str]] = {"plain": [c[0] for c in plain], "rhyme_aware": []}
    if cfg.rhyme_candidates >= 1:
        extra: list[list[str]] = [[] for _ in pairs]
        if cfg.rhyme_candidates >= 2:
            more = cfg.decode.model_copy(update={"do_sample": True, "seed": cfg.decode.seed + 1})
            extra, _ = decode(model, tokenizer, src_text, more, cfg.batch_size, n=cfg.rhyme_candidates - 1)
        texts["rhyme_aware"] = rhyme_aware(texts["plain"], extra, sources, form, radifs)
    texts["rhyme_first"], fallback = _rhyme_first(model, tokenizer, train_pairs, sources, src_text, radifs, form,
                                                  texts["plain"], cfg)
    texts["random_pairs"] = random_training_beyts(pairs, train_pairs, cfg.baseline_seed)

    def report(generated: Sequence[str]) -> dict[str, float]:
        return poetry_report(sources, generated, references, training, form, radifs)

    out: dict[str, Any] = {
        "settings": cfg.decode.model_dump(mode="json"), "prompts": len(pairs), "shortened_prompts": shortened,
        "rhyme_candidates": cfg.rhyme_candidates, "plain": report(texts["plain"]),
        "rhyme_aware": report(texts["rhyme_aware"]) if texts["rhyme_aware"] else None,
        "rhyme_first_words": cfg.rhyme_first,
        "rhyme_first": ({**report(texts["rhyme_first"]), "fallback_rate": fallback}
                        if texts["rhyme_first"] else None),
        "references": report(references), "random_pairs": report(texts["random_pairs"]),
        "copy_input": report(src_text),
    }
    if cfg.bleu:
        hyps = {"plain": texts["plain"], "copy_input": src_text, "random_pairs": texts["random_pairs"]}
        if texts["rhyme_aware"]:
            hyps["rhyme_aware"] = texts["rhyme_aware"]
        if texts["rhyme_first"]:
            hyps["rhyme_first"] = texts["rhyme_first"]
        out.update(text_overlap(hyps, references))
    return out, texts


def samples_section(test_pairs: Sequence[Pair], texts: dict[str, list[str]], count: int) -> list[dict[str, Any]]:
    """The first ``count`` test pairs (fewer when the test split is smaller): ``poem_id``, ``index``,
    ``input``, ``reference`` and the ``plain`` / ``rhyme_aware`` / ``rhyme_first`` continuations
    (``None`` where that prompt was not decoded)."""
    def at(key: str, i: int) -> str | None:
        values = texts.get(key) or []
        return values[i] if i < len(values) else None

    return [{"poem_id": p.poem_id, "index": p.index, "input": beyt_text(p.source), "reference": beyt_text(p.target),
             "plain": at("plain", i), "rhyme_aware": at("rhyme_aware", i),
             "rhyme_first": at("rhyme_first", i)}
            for i, p in enumerate(test_pairs[:count])]


# -- robustness --------------------------------------------------------------------------------------------------


def perturbed_sources(sources: Sequence[str], kind: PerturbationKind, rate: float, seed: int) -> list[str]:
    """Every source perturbed by ``kind`` at ``rate``, from a numpy Generator seeded with ``(seed,
    position of kind in PerturbationKind)``: the same texts whatever the order of the kinds audited."""
    rng = np.random.default_rng([seed, list(PerturbationKind).index(kind)])
    return [perturb(s, kind, rate, rng) for s in sources]


def _greedy(cfg: LMAuditConfig) -> DecodeSettings:
    return DecodeSettings(do_sample=False, max_new_tokens=cfg.decode.max_new_tokens)


def flip_rate(clean: Sequence[str], perturbed: Sequence[str]) -> float:
    """Share in [0, 1] of prompts whose greedy continuation, normalised, differs from the clean
    prompt's normalised greedy continuation."""
    if len(clean) != len(perturbed) or not clean:
        raise RobustlabError(f"flip rate needs equally many clean and perturbed outputs, got {len(clean)} "
                             f"and {len(perturbed)}")
    return float(np.mean([normalize(a) != normalize(b) for a, b in zip(clean, perturbed, strict=True)]))


def robustness_section(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, test_pairs: Sequence[Pair],
                       radifs: Sequence[str], form: RhymeForm | str, cfg: LMAuditConfig, max_length: int,
                       device: torch.device | str, clean_score: dict[str, Any] | None = None) -> dict[str, Any]:
    """Per perturbation kind of ``cfg.perturb`` (``rows``, one each), with every test SOURCE perturbed
    at ``cfg.perturb_rate`` (:func:`perturbed_sources`) and the targets left as they are:

    * ``changed``: share of sources the perturbation changed;
    * ``perplexity`` (and ``bits_per_char``): of the true targets given the perturbed prompts, token-
      weighted as in the perplexity section; ``perplexity_ratio`` = that / the clean perplexity (1 =
      unaffected; exactly 1 at rate 0); ``shortened_prompts``: perturbed prompts cut to fit ``max_length``;
    * ``flip_rate``: :func:`flip_rate` of greedy decoding (``max_new_tokens`` of ``cfg.decode``) on the
      first ``cfg.generate`` test prompts (exactly 0 at rate 0);
    * ``greedy_rhyme``: rhyme rate of those greedy outputs against the clean sources, beside
      ``clean.greedy_rhyme`` (the same for the clean prompts).

    Flip and rhyme numbers are ``None`` when ``cfg.generate`` is 0. ``clean_score`` is the clean
    test perplexity row when already computed (the perplexity section's ``model`` row)."""
    sources = [beyt_text(p.source) for p in test_pairs]
    clean = encode_pairs(tokenizer, sources, [beyt_text(p.target) for p in test_pairs], max_length)
    pad = _pad_id(tokenizer)
    clean_ppl = clean_score or _score(model, clean, pad, cfg.batch_size, device)
    n = min(cfg.generate, len(test_pairs))
    greedy = _greedy(cfg)
    beyts = [p.source for p in test_pairs[:n]]
    clean_out = decode(model, tokenizer, sources[:n], greedy, cfg.batch_size)[0] if n else []
    clean_text = [c[0] for c in clean_out]

    def rhyme_of(outputs: Sequence[str]) -> float | None:
        if not outputs:
            return None
        return float(np.mean([rhymes(s, g, form, r) for s, g, r in zip(beyts, outputs, radifs[:n], strict=True)]))

    rows = []
    for kind in cfg.perturb:
        kind = PerturbationKind(kind)
        noisy = perturbed_sources(sources, kind, cfg.perturb_rate, cfg.perturb_seed)
        encoded, shortened = _with_prompts(tokenizer, noisy, clean, max_length)
        scored = _score(model, encoded, pad, cfg.batch_size, device)
        outputs = [c[0] for c in decode(model, tokenizer, noisy[:n], greedy, cfg.batch_size)[0]] if n else []
        rows.append({
            "kind": kind.value, "changed": float(np.mean([a != b for a, b in zip(noisy, sources, strict=True)])),
            "perplexity": scored["perplexity"], "bits_per_char": scored["bits_per_char"],
            "perplexity_ratio": _finite(scored["perplexity"] / clean_ppl["perplexity"]),
            "shortened_prompts": shortened, "flip_rate": flip_rate(clean_text, outputs) if n else None,
            "greedy_rhyme": rhyme_of(outputs), "greedy_rhyme_clean": rhyme_of(clean_text),
        })
    return {"rate": cfg.perturb_rate, "seed": cfg.perturb_seed, "prompts": n,
            "greedy": greedy.model_dump(mode="json"),
            "clean": {"perplexity": clean_ppl["perplexity"], "bits_per_char": clean_ppl["bits_per_char"],
                      "greedy_rhyme": rhyme_of(clean_text)},
            "rows": rows}


# -- the audit ---------------------------------------------------------------------------------------------------


def audit(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, train_pairs: list[Pair],
          test_pairs: list[Pair], radifs: dict[str, str], form: RhymeForm, cfg: LMAuditConfig, max_length: int,
          device: torch.device | str) -> dict[str, Any]:
    """The audit of ``model`` (on ``device``; in eval mode throughout, every submodule's mode restored
    afterwards) on ``test_pairs``, with baselines fitted on or drawn from ``train_pairs``. ``radifs``
    maps every test poem id to its radif (:func:`~robustlab.labs.lm.poetry.poem_radif`, ``""`` for
    none); every clean example must fit ``max_length`` tokens.

    Returns a JSON-serialisable dict: ``perplexity`` (:func:`perplexity_section`), ``generation``
    (:func:`generation_section`; ``None`` when ``cfg.generate`` is 0), ``samples``
    (:func:`samples_section`) and ``robustness`` (:func:`robustness_section`). Undefined numbers are
    ``None``, never NaN."""
    if not test_pairs:
        raise RobustlabError("no test pairs to audit; the test split needs a poem of at least two beyts")
    test_radifs = _radifs(test_pairs, radifs)
    n = min(cfg.generate, len(test_pairs))
    with eval_mode(model), torch.no_grad():
        results: dict[str, Any] = {
            "perplexity": perplexity_section(model, tokenizer, train_pairs, test_pairs, cfg, max_length, device)}
        texts: dict[str, list[str]] = {}
        results["generation"] = None
        if n:
            results["generation"], texts = generation_section(model, tokenizer, train_pairs, test_pairs[:n],
                                                              test_radifs[:n], form, cfg)
        results["samples"] = samples_section(test_pairs, texts, cfg.samples)
        results["robustness"] = robustness_section(model, tokenizer, test_pairs, test_radifs, form, cfg,
                                                   max_length, device, results["perplexity"]["model"])
    return results


def _fmt(value: Any, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) and not isinstance(value, bool) else "–"


def summary_line(results: dict[str, Any]) -> str:
    """One line for the CLI: test perplexity (and the bigram's and unigram's), bits per character, the
    rhyme rate of plain and rhyme-aware decoding, and plain sampling's well-formed and copy rates."""
    ppl = results.get("perplexity") or {}
    line = (f"test ppl {_fmt((ppl.get('model') or {}).get('perplexity'), 1)} "
            f"(bigram {_fmt((ppl.get('bigram') or {}).get('perplexity'), 1)}, "
            f"unigram {_fmt((ppl.get('unigram') or {}).get('perplexity'), 1)}), "
            f"bits/char {_fmt((ppl.get('model') or {}).get('bits_per_char'), 2)}")
    gen = results.get("generation")
    if not gen:
        return line + ", no generation"
    plain, aware = gen.get("plain") or {}, gen.get("rhyme_aware") or {}
    return (line + f", rhyme plain {_fmt(plain.get('rhyme'), 2)} / rhyme-aware {_fmt(aware.get('rhyme'), 2)} "
            f"(references {_fmt((gen.get('references') or {}).get('rhyme'), 2)}), "
            f"well-formed {_fmt(plain.get('well_formed'), 2)}, copies {_fmt(plain.get('copy_rate'), 2)}")
