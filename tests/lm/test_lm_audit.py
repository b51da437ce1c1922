"""The couplet model's audit and report sections, on real Hafez ghazals and a tiny GPT-2 trained briefly."""

from __future__ import annotations

import copy
import html
import json
import math

import pytest
import sacrebleu

from robustlab.core.errors import RobustlabError
from robustlab.data.persian import PerturbationKind, normalize
from robustlab.labs.lm.audit import (
    PERPLEXITY_NOTE,
    LMAuditConfig,
    audit,
    rhyme_aware,
    rhyme_score,
    summary_line,
)
from robustlab.labs.lm.examples import target_ids
from robustlab.labs.lm.generation import DecodeSettings
from robustlab.labs.lm.ngram import UnigramLM
from robustlab.labs.lm.pairs import beyt_text
from robustlab.labs.lm.poetry import poem_radif
from robustlab.labs.lm.report import run_sections
from robustlab.report import build_report

MAX_LENGTH = 128
GENERATE = 10
CFG = LMAuditConfig(samples=GENERATE, generate=GENERATE, rhyme_candidates=4, batch_size=16,
                    decode=DecodeSettings(do_sample=True, temperature=1.0, top_p=1.0, max_new_tokens=24, seed=0))


@pytest.fixture(scope="module")
def setup(tiny_hafez):
    """12 Hafez ghazals split by poem (9 train, 3 test), a BPE of 400 tokens and a tiny GPT-2 trained
    for a few steps on the training pairs."""
    s = tiny_hafez(steps=18, dropout=0.1, max_length=MAX_LENGTH, clip=1.0)
    s["model"].train()  # the audit must put it in eval mode itself (and restore this)
    form = s["corpus"].rhyme_form
    s["radifs"] = {p.id: poem_radif(p, form) for p in s["parts"]["test"]}
    s["form"] = form
    return s


def _audit(s, cfg: LMAuditConfig = CFG):
    return audit(s["model"], s["tok"], s["train"], s["test"], s["radifs"], s["form"], cfg, MAX_LENGTH, "cpu")


@pytest.fixture(scope="module")
def results(setup):
    model = setup["model"]
    model.train()
    model.transformer.h[0].eval()  # a frozen block's own flag must survive the audit
    out = _audit(setup)
    setup["modes_after"] = (model.training, model.transformer.h[0].training, model.transformer.h[1].training)
    model.train()
    return out


def test_audit_has_every_section_and_is_json(results):
    assert set(results) == {"perplexity", "generation", "samples", "robustness"}
    text = json.dumps(results, allow_nan=False)  # no NaN or infinity anywhere
    assert json.loads(text) == results
    assert results["perplexity"]["note"] == PERPLEXITY_NOTE
    gen = results["generation"]
    assert gen["prompts"] == GENERATE and gen["settings"] == CFG.decode.model_dump(mode="json")
    for row in ("plain", "rhyme_aware", "rhyme_first", "references", "random_pairs", "copy_input"):
        assert 0.0 <= gen[row]["rhyme"] <= 1.0 and 0.0 <= gen[row]["well_formed"] <= 1.0


def test_audit_has_a_rhyme_first_row(setup, results):
    gen = results["generation"]
    row = gen["rhyme_first"]
    assert gen["rhyme_first_words"] == CFG.rhyme_first == 16
    assert 0.0 <= row["fallback_rate"] < 1.0 and 0.0 <= row["rhyme"] <= 1.0
    assert row["rhyme"] > gen["plain"]["rhyme"]  # the lexicon's rhyme words do what sampling cannot
    assert "rhyme_first" in gen["bleu"] and "rhyme_first" in gen["chrf"]
    assert all(isinstance(s["rhyme_first"], str) for s in results["samples"])
    rows = {r[0] for r in run_sections(results)[1].table.rows}
    assert "rhyme word first (most likely lexicon word)" in rows
    off = _audit(setup, CFG.model_copy(update={"rhyme_first": 0, "generate": 2, "samples": 2, "perturb": []}))
    assert off["generation"]["rhyme_first"] is None and off["samples"][0]["rhyme_first"] is None


def test_audit_restores_every_submodule_mode(setup, results):
    assert setup["modes_after"] == (True, False, True)


def test_perplexity_rows_score_the_same_targets(setup, results):
    ppl = results["perplexity"]
    rows = [ppl[k] for k in ("model", "shuffled_prompt", "bigram", "unigram")]
    tokens = sum(len(target_ids(setup["tok"], beyt_text(p.target))) for p in setup["test"])
    chars = sum(len(beyt_text(p.target)) for p in setup["test"])
    for row in rows:
        assert (row["tokens"], row["chars"]) == (tokens, chars)
        assert row["perplexity"] == pytest.approx(math.exp(row["nll_sum"] / tokens), rel=1e-12)
        assert row["bits_per_char"] == pytest.approx(row["nll_sum"] / math.log(2) / chars, rel=1e-12)
    assert ppl["shuffled_prompt"]["nll_sum"] != ppl["model"]["nll_sum"]
    assert 0.0 <= ppl["bigram"]["lambda"] < 1.0 and ppl["bigram"]["lambda_source"] == "held-out training poems"
    assert ppl["model"]["perplexity"] < ppl["unigram"]["perplexity"]  # a few steps already beat add-one counts


def test_unigram_row_by_hand(setup, results):
    tok = setup["tok"]
    train = [target_ids(tok, beyt_text(p.target)) for p in setup["train"]]
    test = [target_ids(tok, beyt_text(p.target)) for p in setup["test"]]
    lm = UnigramLM.fit(train, len(tok))
    nll = sum(lm.nll([], t) for t in test)
    row = results["perplexity"]["unigram"]
    assert row["nll_sum"] == pytest.approx(nll, rel=1e-12)
    assert row["perplexity"] == pytest.approx(math.exp(nll / sum(map(len, test))), rel=1e-12)


def test_samples_come_from_their_pairs(setup, results):
    samples = results["samples"]
    assert len(samples) == CFG.samples
    for s, pair in zip(samples, setup["test"], strict=False):
        assert (s["poem_id"], s["index"]) == (pair.poem_id, pair.index)
        assert s["input"] == beyt_text(pair.source) and s["reference"] == beyt_text(pair.target)
        assert isinstance(s["plain"], str) and isinstance(s["rhyme_aware"], str)


def test_rhyme_aware_never_scores_below_plain(setup, results):
    gen = results["generation"]
    assert gen["rhyme_aware"]["rhyme"] >= gen["plain"]["rhyme"]
    assert gen["rhyme_aware"]["well_formed"] >= gen["plain"]["well_formed"]
    radifs, form = setup["radifs"], setup["form"]
    for s, pair in zip(results["samples"], setup["test"], strict=False):
        best = rhyme_score(pair.source, s["rhyme_aware"], form, radifs[pair.poem_id])
        assert best >= rhyme_score(pair.source, s["plain"], form, radifs[pair.poem_id])
    # the reranking did something on this model: some plain samples are not well formed, the best of four are
    assert gen["rhyme_aware"]["well_formed"] > gen["plain"]["well_formed"]


def test_rhyme_aware_keeps_a_rhyming_plain_sample_and_finds_a_rhyming_candidate(setup):
    form, radif = setup["form"], setup["radifs"]
    pairs = [p for p in setup["test"] if rhyme_score(p.source, beyt_text(p.target), form, radif[p.poem_id]) == 3.0]
    assert len(pairs) >= 0.8 * len(setup["test"])  # consecutive beyts of a ghazal rhyme, nearly always
    pairs = pairs[:2]
    sources, radifs = [p.source for p in pairs], [radif[p.poem_id] for p in pairs]
    real = [beyt_text(p.target) for p in pairs]
    noise = ["سلام / دنیا", "بی قافیه"]
    assert all(rhyme_score(s, n, form, r) < 2.0 for s, r in zip(sources, radifs, strict=True) for n in noise)
    assert rhyme_aware(real, [noise, noise], sources, form, radifs) == real
    assert rhyme_aware(noise, [["x", real[0]], [real[1]]], sources, form, radifs) == real


def test_bleu_and_chrf_are_sacrebleus(setup, results):
    pairs = setup["test"][:GENERATE]
    refs = [[normalize(beyt_text(p.target)) for p in pairs]]
    copies = [normalize(beyt_text(p.source)) for p in pairs]
    gen = results["generation"]
    assert gen["bleu"]["copy_input"] == pytest.approx(sacrebleu.corpus_bleu(copies, refs).score, abs=1e-9)
    assert gen["chrf"]["copy_input"] == pytest.approx(sacrebleu.corpus_chrf(copies, refs).score, abs=1e-9)
    plain = [normalize(s["plain"]) for s in results["samples"]]
    assert gen["bleu"]["plain"] == pytest.approx(sacrebleu.corpus_bleu(plain, refs).score, abs=1e-9)
    assert gen["chrf"]["copy_input"] > gen["chrf"]["random_pairs"]  # same poem, shared radif and rhyme


def test_robustness_rows(results):
    rob = results["robustness"]
    assert [r["kind"] for r in rob["rows"]] == [k.value for k in PerturbationKind]
    assert rob["prompts"] == GENERATE
    for r in rob["rows"]:
        assert 0.0 <= r["flip_rate"] <= 1.0 and 0.0 <= r["changed"] <= 1.0
        assert r["perplexity_ratio"] == pytest.approx(r["perplexity"] / rob["clean"]["perplexity"])
    diacritics = next(r for r in rob["rows"] if r["kind"] == "diacritics")
    assert diacritics["changed"] == 1.0 and diacritics["perplexity_ratio"] != 1.0


def test_rate_zero_changes_nothing_and_no_generation_is_allowed(setup):
    cfg = CFG.model_copy(update={"perturb_rate": 0.0, "generate": 4, "rhyme_candidates": 0, "bleu": False,
                                 "samples": 2})
    rob = _audit(setup, cfg)["robustness"]
    assert all(r["flip_rate"] == 0.0 and r["perplexity_ratio"] == 1.0 and r["changed"] == 0.0 for r in rob["rows"])
    off = _audit(setup, cfg.model_copy(update={"generate": 0, "perturb": [PerturbationKind.ARABIC_LETTERS]}))
    assert off["generation"] is None and off["samples"][0]["plain"] is None
    assert off["robustness"]["rows"][0]["flip_rate"] is None
    assert "no generation" in summary_line(off)


def test_a_missing_radif_is_an_error(setup):
    s = {**setup, "radifs": {}}
    with pytest.raises(RobustlabError, match="no radif"):
        _audit(s, CFG.model_copy(update={"generate": 0}))


def test_summary_line(results):
    line = summary_line(results)
    ppl = results["perplexity"]["model"]["perplexity"]
    assert line.startswith(f"test ppl {ppl:.1f} (bigram ") and "rhyme plain " in line and "rhyme-aware " in line


def test_report_sections_render_right_to_left_and_escaped(results, tmp_path):
    doc = copy.deepcopy(results)
    doc["samples"][0]["plain"] = "<b>بیت</b> & / دوم"
    sections = run_sections(doc)
    assert [s.key for s in sections] == ["lm-perplexity", "lm-poetry", "lm-robustness", "lm-samples"]
    rows = {r[0]: r for r in sections[1].table.rows}
    assert "plain sampling" in rows and "real next beyt (calibration)" in rows
    (tmp_path / "results.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    page = build_report(tmp_path, sections).read_text(encoding="utf-8")
    assert 'dir="rtl"' in page and 'lang="fa"' in page
    assert html.escape("<b>بیت</b> & / دوم", quote=False) in page and "<b>بیت</b>" not in page
    assert html.escape(doc["samples"][1]["reference"]) in page
    assert "Perplexity of the test couplets" in page and "shuffled prompt" in page


def test_report_says_when_rhyme_was_not_learned(results):
    doc = copy.deepcopy(results)
    doc["generation"]["plain"]["rhyme"] = 0.05
    doc["generation"]["references"]["rhyme"] = 0.9
    note = run_sections({"lm": doc})[1].note
    assert note.startswith("The model did not learn rhyme") and "rhyme-aware decoding" in note
    doc["generation"]["plain"]["rhyme"] = 0.8
    assert "did not learn" not in run_sections(doc)[1].note
    assert run_sections({"lm": doc})[0].claims == frozenset({"lm"})


def test_decoding_that_leaves_no_room_for_a_prompt_is_an_error(setup):
    cfg = CFG.model_copy(update={"generate": 2, "decode": DecodeSettings(max_new_tokens=159)})
    with pytest.raises(RobustlabError, match="max_new_tokens=159 leaves no room"):
        _audit(setup, cfg)
