"""The couplet lab's report sections, from the audit in a run's results (:func:`~robustlab.labs.lm.audit.audit`).

The audit's sections are read from ``results["lm"]`` when the run nests them there, else from the
top level of ``results``. Nothing here raises on a missing or partial audit: absent numbers show as
``–`` and absent sections are left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from robustlab.report.section import Section, Table

AUDIT_KEYS = ("perplexity", "generation", "samples", "robustness")
NESTED_KEY = "lm"
#: plain sampling "did not learn rhyme" when its rhyme rate is below this share of the references'
FAR_BELOW = 0.5

PERPLEXITY_ROWS = (("model", "model"), ("shuffled_prompt", "model, shuffled prompt (another pair's input)"),
                   ("bigram", "interpolated bigram"), ("unigram", "add-one unigram"))
POETRY_ROWS = (("plain", "plain sampling"), ("rhyme_aware", "rhyme-aware (best of the candidates)"),
               ("rhyme_first", "rhyme word first (most likely lexicon word)"),
               ("copy_input", "baseline: copy the input"), ("random_pairs", "baseline: random training beyt"),
               ("references", "real next beyt (calibration)"))
POETRY_METRICS = (("well_formed", "well-formed"), ("rhyme", "rhyme"), ("distinct_1", "distinct-1"),
                  ("distinct_2", "distinct-2"), ("repetition", "repetition"), ("copy_rate", "copy rate"),
                  ("echo_rate", "echo rate"), ("metre_proxy_abs_diff", "metre gap (letters)"))
SAMPLE_FIELDS = (("input", "input"), ("reference", "reference"), ("plain", "generated (plain)"),
                 ("rhyme_aware", "generated (rhyme-aware)"), ("rhyme_first", "generated (rhyme word first)"))


def _f(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, int | float) and not isinstance(v, bool) else "–"


def _d(block: Any) -> dict[str, Any]:
    return block if isinstance(block, Mapping) else {}


def audit_of(results: dict[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
    """The audit's sections in ``results`` and the results keys that hold them (the sections' claims)."""
    nested = results.get(NESTED_KEY)
    if isinstance(nested, Mapping) and any(k in nested for k in AUDIT_KEYS):
        return dict(nested), frozenset({NESTED_KEY})
    return {k: results[k] for k in AUDIT_KEYS if k in results}, frozenset(k for k in AUDIT_KEYS if k in results)


def perplexity_rows(ppl: dict[str, Any]) -> list[list[str]]:
    """Model, shuffled prompt, bigram, unigram: perplexity, bits/char, target tokens, characters."""
    rows = []
    for key, name in PERPLEXITY_ROWS:
        row = _d(ppl.get(key))
        if row:
            label = f"{name} (λ = {_f(row.get('lambda'), 2)})" if key == "bigram" else name
            rows.append([label, _f(row.get("perplexity"), 2), _f(row.get("bits_per_char")),
                         str(row.get("tokens", "–")), str(row.get("chars", "–"))])
    return rows


def poetry_rows(gen: dict[str, Any]) -> list[list[str]]:
    """One row per decoding or baseline: the poetry metrics, then BLEU and chrF against the references."""
    bleu, chrf = _d(gen.get("bleu")), _d(gen.get("chrf"))
    rows = []
    for key, name in POETRY_ROWS:
        row = _d(gen.get(key))
        if row:
            rows.append([name, *(_f(row.get(m)) for m, _ in POETRY_METRICS), _f(bleu.get(key), 2),
                         _f(chrf.get(key), 2)])
    return rows


def robustness_rows(rob: dict[str, Any]) -> list[list[str]]:
    """One row per perturbation kind."""
    return [[str(r.get("kind")), _f(r.get("changed")), _f(r.get("perplexity"), 2), _f(r.get("perplexity_ratio")),
             str(r.get("shortened_prompts", "–")), _f(r.get("flip_rate")), _f(r.get("greedy_rhyme")),
             _f(r.get("greedy_rhyme_clean"))] for r in rob.get("rows") or [] if isinstance(r, Mapping)]


def rhyme_sentence(gen: dict[str, Any]) -> str:
    """A plain sentence when plain sampling rhymes far less often than the real next beyts do (below
    :data:`FAR_BELOW` of their rate), else ``""``."""
    plain, ref = _d(gen.get("plain")).get("rhyme"), _d(gen.get("references")).get("rhyme")
    if not isinstance(plain, int | float) or not isinstance(ref, int | float) or ref <= 0 or plain >= FAR_BELOW * ref:
        return ""
    aware = _d(gen.get("rhyme_aware")).get("rhyme")
    after = (f"rhyme-aware decoding (the best of {gen.get('rhyme_candidates', '?')} samples by the rhyme check) "
             f"reaches {_f(aware, 2)}" if isinstance(aware, int | float) else "rhyme-aware decoding was off")
    return (f"The model did not learn rhyme: plain sampling rhymes in {_f(plain, 2)} of its beyts against "
            f"{_f(ref, 2)} for the real next beyts; {after}.")


def _decoding(settings: dict[str, Any]) -> str:
    if not settings.get("do_sample"):
        return f"greedy, at most {settings.get('max_new_tokens', '?')} new tokens"
    return (f"sampling at temperature {settings.get('temperature', '?')}, top-k {settings.get('top_k', '?')}, "
            f"top-p {settings.get('top_p', '?')}, at most {settings.get('max_new_tokens', '?')} new tokens, "
            f"seed {settings.get('seed', '?')}")


def _perplexity_section(ppl: dict[str, Any], gen: dict[str, Any], claims: frozenset[str]) -> Section:
    model = _d(ppl.get("model"))
    plain, aware, ref = (_d(gen.get(k)).get("rhyme") for k in ("plain", "rhyme_aware", "references"))
    cards = [{"label": "test perplexity", "value": _f(model.get("perplexity"), 1),
              "sub": f"bigram {_f(_d(ppl.get('bigram')).get('perplexity'), 1)}, "
                     f"unigram {_f(_d(ppl.get('unigram')).get('perplexity'), 1)}"},
             {"label": "bits per character", "value": _f(model.get("bits_per_char"), 2),
              "sub": f"{model.get('chars', '?')} target characters"}]
    verdict = (f"Couplet model on {ppl.get('pairs', '?')} test pairs: perplexity {_f(model.get('perplexity'), 1)} "
               f"(bigram {_f(_d(ppl.get('bigram')).get('perplexity'), 1)}), "
               f"bits/char {_f(model.get('bits_per_char'), 2)}")
    if gen:
        cards.append({"label": "rhyme rate", "value": f"{_f(plain, 2)} / {_f(aware, 2)}",
                      "sub": f"plain / rhyme-aware; real next beyts {_f(ref, 2)}"})
        verdict += f", rhyme {_f(plain, 2)} plain and {_f(aware, 2)} rhyme-aware against {_f(ref, 2)} for Hafez"
    return Section(
        title="Perplexity of the test couplets", key="lm-perplexity", cards=cards, verdict=verdict, claims=claims,
        table=Table(["model", "perplexity", "bits / char", "target tokens", "characters"], perplexity_rows(ppl),
                    [False, True, True, True, True]),
        note=f"Perplexity is {ppl.get('note', 'token-weighted over target tokens')}; every row scores the same "
             "target tokens and characters, so the rows compare. The shuffled-prompt row gives each target "
             "another test pair's input: a model that uses its input scores worse there. The n-gram models "
             "are fitted on the training pairs' targets with the same tokenizer; bits per character do not "
             "depend on the tokenizer.")


def _poetry_section(gen: dict[str, Any]) -> Section:
    settings = _d(gen.get("settings"))
    note = (f"{gen.get('prompts', '?')} test prompts; plain decoding: {_decoding(settings)}. Rhyme-aware "
            f"decoding keeps the best of {gen.get('rhyme_candidates', '?')} candidates (the plain sample among "
            "them) by 2 × rhymes + well-formed, so it never rhymes less than plain sampling. Rhyme word first "
            f"replaces the plain sample's last rhyme word by the most likely of {gen.get('rhyme_first_words', '?')} "
            "rhyming words from the training poems (it keeps the sample when it finds none: fallback rate "
            f"{_f(_d(gen.get('rhyme_first')).get('fallback_rate'), 2)}). Rhyme follows the "
            "poem's radif and is calibrated by the real next beyts; echo rate: a hemistich of the input "
            "repeated (copying the input rhymes by construction); copy rate: a training beyt repeated "
            "verbatim; metre gap: letters per hemistich against the input's. BLEU and chrF (sacrebleu, "
            "normalised text) against the real next beyts.")
    sentence = rhyme_sentence(gen)
    return Section(
        title="Generated couplets: form, rhyme, diversity", key="lm-poetry",
        table=Table(["decoding / baseline", *(t for _, t in POETRY_METRICS), "BLEU", "chrF"], poetry_rows(gen),
                    [False] + [True] * (len(POETRY_METRICS) + 2)),
        note=f"{sentence} {note}" if sentence else note,
        config_rows=[("decoding", _decoding(settings)),
                     ("rhyme-aware candidates", str(gen.get("rhyme_candidates", "–"))),
                     ("rhyme-first words", str(gen.get("rhyme_first_words", "–")))])


def _robustness_section(rob: dict[str, Any]) -> Section:
    clean = _d(rob.get("clean"))
    return Section(
        title="Robustness to invisible orthographic changes", key="lm-robustness",
        table=Table(["perturbation", "prompts changed", "perplexity", "ratio to clean", "prompts shortened",
                     "greedy flip rate", "greedy rhyme", "greedy rhyme, clean"], robustness_rows(rob),
                    [False] + [True] * 7),
        note=f"Every test input perturbed at rate {_f(rob.get('rate'), 2)} (seed {rob.get('seed', '?')}); the "
             "perturbations (ZWNJ ↔ space, Arabic ي/ك for Persian ی/ک, added harakat) leave the normalised text "
             "as it was. Perplexity: of the true next beyts given the perturbed input (clean "
             f"{_f(clean.get('perplexity'), 2)}). Flip rate: share of the first {rob.get('prompts', '?')} prompts "
             "whose greedy continuation, normalised, differs from the clean prompt's; greedy rhyme: the rhyme "
             f"rate of those continuations (clean {_f(clean.get('greedy_rhyme'), 2)}). A prompt too long after "
             "the change keeps its last words.")


def _samples_html(samples: list[Any]) -> Markup:
    """The samples as key/value tables whose Persian cells are right-to-left, every text escaped."""
    parts = [Markup("<h2>Sample continuations</h2>\n<p class=\"note\">The first test prompts, their real next "
                    "beyt and what the model wrote (plain sampling, then rhyme-aware decoding).</p>\n")]
    for s in samples:
        if not isinstance(s, Mapping):
            continue
        rows = [Markup('<tr><th scope="row">{}</th><td><div dir="rtl" lang="fa">{}</div></td></tr>\n').format(
            label, s.get(key) if s.get(key) is not None else "–") for key, label in SAMPLE_FIELDS]
        caption = Markup("<tr><th scope=\"row\">poem</th><td>{} (beyt {})</td></tr>\n").format(
            s.get("poem_id", "?"), _beyt_number(s.get("index")))
        parts.append(Markup('<table class="kv"><tbody>\n') + caption + Markup("").join(rows)
                     + Markup("</tbody></table>\n"))
    return Markup("").join(parts)


def _beyt_number(index: Any) -> str:
    return str(index + 1) if isinstance(index, int) and not isinstance(index, bool) else "?"


def run_sections(results: dict[str, Any]) -> list[Section]:
    """The sections of an audited couplet run: perplexity against the baselines, the poetry table with
    BLEU/chrF, robustness, and the samples (right-to-left HTML); ``[]`` when there is no audit."""
    audit, claims = audit_of(results)
    ppl, gen, rob = _d(audit.get("perplexity")), _d(audit.get("generation")), _d(audit.get("robustness"))
    out = []
    if ppl:
        out.append(_perplexity_section(ppl, gen, claims))
    if gen:
        out.append(_poetry_section(gen))
    if rob.get("rows"):
        out.append(_robustness_section(rob))
    samples = audit.get("samples")
    if isinstance(samples, list) and samples:
        out.append(Section(title="Sample continuations", key="lm-samples", html=_samples_html(samples)))
    if out and not ppl:
        out[0].claims = claims
    return out
