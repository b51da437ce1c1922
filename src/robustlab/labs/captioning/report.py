"""The captioning lab's report sections, from the audit in ``results["captioning"]``
(:func:`~robustlab.labs.captioning.audit.audit`). Missing numbers show as ``–``; absent sections are
left out; captions of a Persian run are right-to-left HTML text (``dir="rtl"``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from markupsafe import Markup

from robustlab.report.section import Section, Table

KEY = "captioning"


def _f(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, int | float) and not isinstance(v, bool) else "–"


def _d(block: Any) -> dict[str, Any]:
    return dict(block) if isinstance(block, Mapping) else {}


def decoding_rows(decoding: dict[str, Any]) -> list[list[str]]:
    """One row per decoding: BLEU-1..4 (nltk), CIDEr-D, object F1, distinct-2, copied share, length."""
    rows = []
    for name, m in decoding.items():
        m = _d(m)
        bleu = m.get("bleu") or [None] * 4
        rows.append([name, *(_f(b) for b in bleu), _f(m.get("cider_d")), _f(_d(m.get("objects")).get("f1")),
                     _f(m.get("distinct_2")), _f(m.get("copied_fraction")),
                     _f(_d(m.get("hypothesis_length")).get("mean"), 1), "yes" if m.get("all_identical") else "no"])
    return rows


def _caption_html(language: str, rows: list[tuple[str, str]], title: str) -> Markup:
    direction = 'dir="rtl" lang="fa"' if language == "fa" else 'dir="ltr" lang="en"'
    body = Markup("").join(
        Markup('<tr><td><div {}>{}</div></td><td><div {}>{}</div></td></tr>\n').format(
            Markup(direction), a, Markup(direction), b) for a, b in rows)
    return (Markup("<h2>{}</h2>\n<table><thead><tr><th>model caption</th><th>a reference</th></tr></thead>"
                   "<tbody>\n").format(title) + body + Markup("</tbody></table>\n"))


def _decoding_section(c: dict[str, Any]) -> Section:
    dec = _d(c.get("decoding"))
    greedy = _d(dec.get("greedy"))
    check = _d(greedy.get("cross_check"))
    bleu = greedy.get("bleu") or [None] * 4
    by_refs = _d(greedy.get("bleu_by_reference_count"))
    cards = [{"label": "BLEU-4 (greedy)", "value": _f(bleu[3]), "sub": f"BLEU-1 {_f(bleu[0])}"},
             {"label": "CIDEr-D (greedy)", "value": _f(greedy.get("cider_d")),
              "sub": f"{greedy.get('images', '?')} test images"}]
    if greedy.get("objects"):
        cards.append({"label": "object F1", "value": _f(_d(greedy["objects"]).get("f1")),
                      "sub": "colour, shape and cell of every mention"})
    verdict = (f"{c.get('encoder', '?')} on {c.get('source', '?')} ({c.get('language')}): greedy BLEU-4 "
               f"{_f(bleu[3])}, CIDEr-D {_f(greedy.get('cider_d'))}")
    coco, sacre = (check.get("pycocoevalcap") or [None] * 4)[3], (check.get("sacrebleu") or [None] * 4)[3]
    note = (f"Corpus BLEU with nltk's corpus_bleu on cleaned word tokens (0–1; multiply by 100 for the paper's "
            f"scale), references never hold <unk>. Cross-check: pycocoevalcap {_f(coco)}, sacrebleu {_f(sacre)} "
            f"BLEU-4 — {check.get('note', '')}. "
            f"BLEU-4 with 1…5 references per image: "
            f"{', '.join(f'{k}: {_f(v)}' for k, v in by_refs.items()) or '–'} (compare numbers only at equal "
            f"reference counts). Captions cleaned by the {c.get('normaliser', '?')} normaliser.")
    return Section(title="Captions of the test images", key="captioning-decoding", cards=cards, verdict=verdict,
                   claims=frozenset({KEY}),
                   table=Table(["decoding", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "CIDEr-D", "object F1",
                                "distinct-2", "copied from training", "mean length", "all identical"],
                               decoding_rows(dec), [False] + [True] * 9 + [False]),
                   note=note)


def _breakdown_section(greedy: dict[str, Any]) -> Section | None:
    rows = []
    for label, key in (("reference length", "bleu_by_reference_length"), ("objects in the scene",
                                                                          "bleu_by_object_count")):
        for k, v in _d(greedy.get(key)).items():
            rows.append([label, str(k), _f(_d(v).get("bleu4")), str(_d(v).get("images", "–"))])
    if not rows:
        return None
    return Section(title="Greedy BLEU-4 by group", key="captioning-breakdown",
                   table=Table(["grouped by", "group", "BLEU-4", "images"], rows, [False, False, True, True]))


def _faithfulness_section(f: dict[str, Any]) -> Section:
    box, dele, rnd = _d(f.get("box")), _d(f.get("deletion")), _d(f.get("randomised"))
    rows = [["attention mass in the named object's box", _f(box.get("mass")), _f(box.get("uniform")),
             _f(box.get("ratio"), 2) + "×"],
            ["pointing game (argmax cell inside the box)", _f(box.get("pointing")), _f(box.get("pointing_chance")),
             "–"],
            [f"log-prob drop, top-{dele.get('k', '?')} attended cells removed vs random", _f(dele.get("drop_top")),
             _f(dele.get("drop_random")), "faithful" if dele.get("faithful") else "not faithful"],
            ["rank correlation with a randomised-attention decoder", _f(rnd.get("spearman")),
             _f(rnd.get("self_spearman")), "maps differ" if rnd.get("differs") else "maps do NOT differ"]]
    return Section(title="Is the attention where the word is?", key="captioning-faithfulness",
                   table=Table(["check", "model", "baseline", "verdict"], rows, [False, True, True, False]),
                   note=f"{box.get('words', '?')} colour and shape words of the greedy captions of "
                        f"{f.get('images', '?')} test scenes, each grounded in exactly one object of the scene; "
                        f"encoder grid {f.get('grid')}. Baselines: a uniform map; chance pointing; k random cells; "
                        "the model against itself (Adebayo et al.'s sanity check: explanations must change when "
                        "the weights that make them are randomised).")


def _robustness_section(r: dict[str, Any]) -> Section:
    rows = [[str(x.get("attack")), _f(x.get("eps_255"), 1), _f(x.get("bleu4")), _f(x.get("cider_d")),
             _f(x.get("changed")), _f(x.get("content_changed")), _f(x.get("attention_js"))]
            for x in r.get("rows") or []]
    kw = _d(r.get("keyword"))
    flags = r.get("flags") or []
    note = (f"L∞ attacks on the pixels of the first {r.get('images', '?')} test images that raise the teacher-forced "
            "loss of the model's own clean caption; BLEU-4/CIDEr-D of the adversarial greedy captions against the "
            "references; captions changed: any word differs; content changed: the (colour, shape, cell) objects "
            "it names differ (scenes only); attention shift = Jensen–Shannon divergence (nats) between clean and "
            "adversarial maps "
            "on the clean caption.")
    if kw.get("images"):
        note += (f" Targeted keyword attack (PGD, {_f(kw.get('eps_255'), 1)}/255, {kw.get('steps')} steps): the "
                 f"colour of one named object forced to another colour in {_f(kw.get('success'))} of "
                 f"{kw.get('images')} captions (whole target caption exact: {_f(kw.get('exact_target'))}).")
    note += (" Sanity flags: " + "; ".join(f"{x.get('flag')}: {x.get('detail')} — {x.get('remedy')}" for x in flags)
             if flags else " Sanity flags: none raised.")
    return Section(title="Robustness of the captions", key="captioning-robustness",
                   table=Table(["attack", "eps (/255)", "BLEU-4", "CIDEr-D", "captions changed", "content changed",
                                "attention JS"], rows, [False] + [True] * 6), note=note)


def run_sections(run_dir: Path, results: dict[str, Any]) -> list[Section]:
    """The sections of an audited captioning run (``[]`` before the audit)."""
    c = _d(results.get(KEY))
    if not c:
        return []
    out = [_decoding_section(c)]
    breakdown = _breakdown_section(_d(_d(c.get("decoding")).get("greedy")))
    if breakdown is not None:
        out.append(breakdown)
    if c.get("faithfulness"):
        out.append(_faithfulness_section(_d(c["faithfulness"])))
    if c.get("robustness"):
        out.append(_robustness_section(_d(c["robustness"])))
    lang = str(c.get("language", "en"))
    examples = [(str(e.get("caption", "")), str(e.get("reference", ""))) for e in c.get("examples") or []]
    worst = [(" ".join(w.get("caption", [])), str((w.get("references") or [""])[0])) for w in c.get("worst") or []]
    html = Markup("")
    if examples:
        html += _caption_html(lang, examples, "First test captions")
    if worst:
        html += _caption_html(lang, worst, "Worst captions (lowest sentence BLEU-4; attention in the figure)")
    data = _d(results.get("data"))
    top = data.get("top_words") or []
    if top:
        html += Markup("<h2>Top training words</h2>\n<p><span {}>{}</span></p>\n").format(
            Markup('dir="rtl" lang="fa"' if lang == "fa" else 'dir="ltr"'),
            "، ".join(f"{w} ({n})" for w, n in top) if lang == "fa" else ", ".join(f"{w} ({n})" for w, n in top))
    figures = [(name, run_dir / "figures" / f"{name}.png") for name in ("attention", "robustness", "lengths")
               if (run_dir / "figures" / f"{name}.png").is_file()]
    out.append(Section(title="Captions, words and attention", key="captioning-samples", html=html or None,
                       figures=figures, embedded=[p for _, p in figures]))
    return out
