"""The audit of a trained captioner: test captions decoded greedily and with beams and scored
honestly (nltk corpus BLEU cross-checked against pycocoevalcap and sacrebleu, CIDEr-D, breakdowns),
attention scored against the scenes' ground truth, and the captions' robustness to pixel attacks."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from robustlab.core.modes import eval_mode
from robustlab.labs.captioning.config import CaptioningConfig
from robustlab.labs.captioning.decoding import Decoded, beam_search, greedy_decode
from robustlab.labs.captioning.metrics import (
    bleu_by_group,
    caption_metrics,
    cider_d,
    corpus_bleu,
    length_bucket,
    sentence_bleu4,
)
from robustlab.labs.captioning.prepare import CaptionCorpus
from robustlab.labs.captioning.robustness import CaptionObjective, caption_attack, jensen_shannon
from robustlab.labs.captioning.scenes import COLOURS, object_scores, parse_mentions
from robustlab.labs.captioning.text import EOS, PAD, SOS


def _pixels(images: Tensor, device: torch.device) -> Tensor:
    return images.to(device).float().div_(255)


def decode(model: nn.Module, images: Tensor, beam: int, cfg: CaptioningConfig, device: torch.device) -> Decoded:
    """Captions of uint8 ``images`` ``(N, 3, S, S)``: greedy (``beam`` 1) or beam search, in batches of
    ``data.eval_batch_size``; tokens and attention padded to ``evaluate.max_length`` steps."""
    e = cfg.evaluate
    parts: list[Decoded] = []
    with eval_mode(model), torch.no_grad():
        for start in range(0, images.shape[0], cfg.data.eval_batch_size):
            a = model.annotations(_pixels(images[start : start + cfg.data.eval_batch_size], device))
            d = (greedy_decode(model.decoder, a, e.max_length) if beam == 1
                 else beam_search(model.decoder, a, beam, e.max_length, e.length_penalty))
            pad = e.max_length - d.tokens.shape[1]
            parts.append(Decoded(torch.nn.functional.pad(d.tokens, (0, pad), value=PAD).cpu(), d.lengths.cpu(),
                                 torch.nn.functional.pad(d.alphas, (0, 0, 0, pad)).cpu(), d.logprob.cpu()))
    return Decoded(torch.cat([p.tokens for p in parts]), torch.cat([p.lengths for p in parts]),
                   torch.cat([p.alphas for p in parts]), torch.cat([p.logprob for p in parts]))


def with_sos(d: Decoded) -> tuple[Tensor, Tensor]:
    """The decoded captions as teacher-forcing input ``(N, T + 1)`` (``<sos>`` first, ``<eos>`` kept)
    and their lengths counting both."""
    tokens = torch.cat([torch.full((d.tokens.shape[0], 1), SOS, dtype=torch.long), d.tokens], 1)
    ends = d.lengths.clamp_max(d.tokens.shape[1] - 1)
    tokens[torch.arange(tokens.shape[0]), ends + 1] = torch.where(d.lengths < d.tokens.shape[1], EOS,
                                                                   tokens[torch.arange(tokens.shape[0]), ends + 1])
    return tokens, (d.lengths + 2).clamp_max(tokens.shape[1])


def _scored(refs: list[list[list[str]]], hyps: list[list[str]], corpus: CaptionCorpus, objects: Any,
            train_caps: set[tuple[str, ...]]) -> dict[str, Any]:
    out = caption_metrics(refs, hyps, train_caps)
    if objects is not None and corpus.grid is not None:
        out["objects"] = object_scores(hyps, objects, corpus.language, corpus.grid)  # type: ignore[arg-type]
    return out


def decoding_study(model: nn.Module, corpus: CaptionCorpus, itos: tuple[str, ...], cfg: CaptioningConfig,
                   device: torch.device) -> tuple[dict[str, Any], Decoded, list[list[str]]]:
    """Metrics of greedy decoding and of each beam width on the test split, plus breakdowns of the
    greedy captions by reference length and object count; returns the greedy :class:`Decoded` and
    words too."""
    test = corpus.splits["test"]
    refs, train_caps = test.tokens, corpus.training_captions()
    out: dict[str, Any] = {}
    greedy = decode(model, test.images, 1, cfg, device)
    greedy_words = greedy.words(itos)
    out["greedy"] = _scored(refs, greedy_words, corpus, test.objects, train_caps)
    for k in cfg.evaluate.beams:
        if k == 1:
            continue
        d = decode(model, test.images, k, cfg, device)
        out[f"beam{k}"] = _scored(refs, d.words(itos), corpus, test.objects, train_caps)
    mean_len = [round(sum(len(r) for r in rs) / len(rs)) for rs in refs]
    out["greedy"]["bleu_by_reference_length"] = {str(k): v for k, v in bleu_by_group(
        refs, greedy_words, [length_bucket(n) for n in mean_len]).items()}
    if test.objects is not None:
        out["greedy"]["bleu_by_object_count"] = {str(k): v for k, v in bleu_by_group(
            refs, greedy_words, [len(o) for o in test.objects]).items()}
    return out, greedy, greedy_words


def faithfulness(model: nn.Module, corpus: CaptionCorpus, greedy: Decoded, words: list[list[str]],
                 cfg: CaptioningConfig, device: torch.device, seed: int) -> dict[str, Any]:
    """Attention of the greedy captions against the scenes' boxes, the deletion test and the
    randomised-attention sanity check (procedural scenes only)."""
    from robustlab.labs.captioning.faithfulness import (
        box_attention,
        deletion_test,
        grounded_words,
        randomised_attention_check,
    )

    test = corpus.splits["test"]
    assert test.objects is not None
    n = min(len(test), cfg.evaluate.n_samples * 2)
    with eval_mode(model), torch.no_grad():
        a = model.annotations(_pixels(test.images[:n], device))
        grid = model.grid_shape(cfg.data.size)
        g = grounded_words(words[:n], greedy.tokens[:n], test.objects[:n], corpus.language, grid, cfg.data.size)
        out: dict[str, Any] = {"grid": list(grid), "images": n, "box": box_attention(greedy.alphas[:n], g)}
        if int(g.image.numel()):
            g_dev = type(g)(g.image.to(device), g.step.to(device), g.word.to(device), g.overlap.to(device))
            out["deletion"] = deletion_test(model.decoder, a, greedy.tokens[:n].to(device),
                                            greedy.alphas[:n].to(device), g_dev, cfg.evaluate.deletion_k, seed)
        caps, lengths = with_sos(greedy)
        keep = lengths[:n] > 2
        if keep.any():
            out["randomised"] = randomised_attention_check(model.decoder, a[keep.to(device)],
                                                           caps[:n][keep].to(device), lengths[:n][keep].to(device),
                                                           seed)
    return out


def _decode_pixels(model: nn.Module, x: Tensor, max_length: int) -> Decoded:
    with eval_mode(model), torch.no_grad():
        d = greedy_decode(model.decoder, model.annotations(x), max_length)
    return d


def _attention(model: nn.Module, x: Tensor, caps: Tensor, lengths: Tensor) -> Tensor:
    with eval_mode(model), torch.no_grad():
        _, alpha = model.decoder(model.annotations(x), caps, lengths)
    return alpha


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def robustness(model: nn.Module, corpus: CaptionCorpus, greedy: Decoded, itos: tuple[str, ...],
               cfg: CaptioningConfig, device: torch.device, seed: int) -> dict[str, Any]:
    """Captions of the first ``evaluate.n_samples`` test images under each attack and budget: corpus
    BLEU-4 and CIDEr-D against the references, the share of captions that changed, and the attention
    shift (Jensen–Shannon, teacher-forced on the clean caption); the targeted keyword attack on the
    scenes; sanity flags."""
    e = cfg.evaluate
    test = corpus.splits["test"]
    n = min(len(test), e.n_samples)
    refs = test.tokens[:n]
    clean_words = greedy.words(itos)[:n]
    caps, lengths = with_sos(Decoded(greedy.tokens[:n], greedy.lengths[:n], greedy.alphas[:n], greedy.logprob[:n]))
    x = _pixels(test.images[:n], device)
    batch = cfg.data.eval_batch_size
    clean_alpha = torch.cat([_attention(model, x[s], caps[s].to(device), lengths[s].to(device)).cpu()
                             for s in _chunks(n, batch)])
    mask = torch.arange(clean_alpha.shape[1]).unsqueeze(0) < (lengths - 1).unsqueeze(1)
    rows = [{"attack": "none", "eps": 0.0, "eps_255": 0.0, "bleu4": corpus_bleu(refs, clean_words)[3],
             "cider_d": cider_d(refs, clean_words), "changed": 0.0, "attention_js": 0.0}]
    scenes = test.objects is not None and corpus.grid is not None
    if scenes:
        clean_content = [_content(w, corpus) for w in clean_words]
        rows[0]["content_changed"] = 0.0
    loss_at: dict[tuple[str, float], float] = {}
    for kind in e.attacks:
        for eps in e.eps:
            adv = torch.cat([caption_attack(model, x[s], caps[s].to(device), lengths[s].to(device), eps, kind,
                                            e.steps, seed=seed) for s in _chunks(n, batch)])
            adv_words = [w for s in _chunks(n, batch) for w in _decode_pixels(model, adv[s], e.max_length).words(itos)]
            adv_alpha = torch.cat([_attention(model, adv[s], caps[s].to(device), lengths[s].to(device)).cpu()
                                   for s in _chunks(n, batch)])
            with torch.no_grad(), eval_mode(model):
                loss_at[(kind, eps)] = float(torch.cat([CaptionObjective(model, caps[s].to(device),
                                                                          lengths[s].to(device))(adv[s]).cpu()
                                                        for s in _chunks(n, batch)]).mean())
            rows.append({"attack": kind, "eps": eps, "eps_255": round(eps * 255, 3),
                         "bleu4": corpus_bleu(refs, adv_words)[3], "cider_d": cider_d(refs, adv_words),
                         "changed": sum(a != b for a, b in zip(adv_words, clean_words, strict=True)) / n,
                         "attention_js": jensen_shannon(clean_alpha, adv_alpha, mask),
                         "clean_caption_nll": loss_at[(kind, eps)]})
            if scenes:
                rows[-1]["content_changed"] = sum(_content(w, corpus) != c for w, c in zip(
                    adv_words, clean_content, strict=True)) / n
    out: dict[str, Any] = {"images": n, "rows": rows, "flags": sanity_flags(rows, loss_at)}
    if e.keyword_attack and test.objects is not None:
        out["keyword"] = keyword_attack(model, corpus, greedy, itos, cfg, device, seed)
    return out


def _content(words: list[str], corpus: CaptionCorpus) -> frozenset[tuple[str | None, str, int | None]]:
    """What a scene caption says: its (colour, shape, cell) mentions, wording ignored."""
    return frozenset((m.colour, m.shape, m.cell) for m in parse_mentions(words, corpus.language, corpus.grid or 3))


def sanity_flags(rows: list[dict[str, Any]], loss_at: dict[tuple[str, float], float]) -> list[dict[str, str]]:
    """Signs that the attack, not the model, is weak (after AutoAttack's checks), each with a remedy."""
    flags = []
    for (kind, eps), loss in loss_at.items():
        if kind == "pgd" and ("fgsm", eps) in loss_at and loss + 1e-6 < loss_at[("fgsm", eps)]:
            flags.append({"flag": "pgd_weaker_than_fgsm", "detail": f"at eps {eps * 255:g}/255 PGD raised the clean "
                          f"caption's loss to {loss:.3f}, FGSM to {loss_at[('fgsm', eps)]:.3f}",
                          "remedy": "raise evaluate.steps; a one-step attack beating the iterative one hints at "
                                    "gradient masking"})
    for kind in {k for k, _ in loss_at}:
        series = sorted((eps, v) for (k, eps), v in loss_at.items() if k == kind)
        if any(b[1] + 1e-6 < a[1] for a, b in zip(series, series[1:], strict=False)):
            flags.append({"flag": "not_monotone_in_eps", "detail": f"{kind}: the clean caption's loss falls as eps "
                          "grows", "remedy": "raise evaluate.steps or use restarts; a larger ball contains the "
                                             "smaller one's optimum"})
    largest = [r for r in rows if r["attack"] != "none" and r["eps"] == max(x["eps"] for x in rows)]
    if largest and all(r["changed"] == 0.0 for r in largest):
        flags.append({"flag": "no_caption_changed", "detail": "no caption changed at the largest budget",
                      "remedy": "check the gradients reach the pixels (a non-differentiable encoder step masks "
                                "them) before calling the model robust"})
    return flags


def _colour_words(language: str) -> dict[str, str]:
    return {k: (v if language == "fa" else k) for k, v in COLOURS.items()}


def keyword_attack(model: nn.Module, corpus: CaptionCorpus, greedy: Decoded, itos: tuple[str, ...],
                   cfg: CaptioningConfig, device: torch.device, seed: int) -> dict[str, Any]:
    """The targeted attack that forces one word: in each of the first ``evaluate.n_samples`` test
    captions with a grounded colour word, that colour is replaced by the next colour of the palette
    and PGD at the largest budget lowers the target caption's loss. ``success`` is the share of
    adversarial captions that say the target colour at that position; ``rest_kept`` the share of
    those whose other words are the clean caption's."""
    from robustlab.labs.captioning.scenes import groundings

    e = cfg.evaluate
    test = corpus.splits["test"]
    assert test.objects is not None
    colours = _colour_words(corpus.language)
    names = list(colours)
    stoi = {w: i for i, w in enumerate(itos)}
    words = greedy.words(itos)
    picks, targets, positions, target_ids = [], [], [], []
    for i in range(len(test)):
        if len(picks) >= e.n_samples:
            break
        objs = test.objects[i]
        for pos, j in groundings(words[i], objs, corpus.language):  # type: ignore[arg-type]
            if words[i][pos] == colours[objs[j].colour]:
                new = colours[names[(names.index(objs[j].colour) + 1) % len(names)]]
                if new in stoi:
                    t = list(words[i])
                    t[pos] = new
                    picks.append(i)
                    targets.append(t)
                    positions.append(pos)
                    target_ids.append(stoi[new])
                break
    if not picks:
        return {"images": 0}
    caps = torch.full((len(picks), max(len(t) for t in targets) + 2), PAD, dtype=torch.long)
    for r, t in enumerate(targets):
        caps[r, : len(t) + 2] = torch.tensor([SOS, *(stoi.get(w, 3) for w in t), EOS])
    lengths = torch.tensor([len(t) + 2 for t in targets])
    x = _pixels(test.images[picks], device)
    eps = max(e.eps)
    adv = torch.cat([caption_attack(model, x[s], caps[s].to(device), lengths[s].to(device), eps, "pgd", e.steps,
                                    targeted=True, seed=seed) for s in _chunks(len(picks), cfg.data.eval_batch_size)])
    adv_words = _decode_pixels(model, adv, e.max_length).words(itos)
    hit = [len(w) > p and w[p] == itos[t] for w, p, t in zip(adv_words, positions, target_ids, strict=True)]
    kept = [w == t for w, t in zip(adv_words, targets, strict=True)]
    return {"images": len(picks), "eps": eps, "eps_255": round(eps * 255, 3), "steps": e.steps,
            "success": sum(hit) / len(picks), "exact_target": sum(kept) / len(picks),
            "examples": [{"clean": " ".join(words[i]), "target": " ".join(t), "adversarial": " ".join(w)}
                         for i, t, w in list(zip(picks, targets, adv_words, strict=True))[:4]]}


def worst_samples(corpus: CaptionCorpus, greedy: Decoded, words: list[list[str]], k: int) -> list[dict[str, Any]]:
    """The ``k`` test images of lowest sentence BLEU-4 (smoothed; for ranking only) with their caption,
    first references and attention per word (rounded, for the figures)."""
    test = corpus.splits["test"]
    scores = [sentence_bleu4(refs, w) if w else 0.0 for refs, w in zip(test.tokens, words, strict=True)]
    order = sorted(range(len(scores)), key=lambda i: (scores[i], i))[:k]
    out = []
    for i in order:
        n = len(words[i])
        out.append({"index": i, "sentence_bleu4": scores[i], "caption": words[i], "references": test.raw[i][:3],
                    "attention": [[round(float(v), 4) for v in row] for row in greedy.alphas[i, :n].tolist()]})
    return out


def audit(model: nn.Module, corpus: CaptionCorpus, meta: dict[str, Any], cfg: CaptioningConfig,
          device: torch.device) -> dict[str, Any]:
    """Everything the report shows about a trained captioner (plain JSON values)."""
    itos = tuple(meta["vocabulary"])
    model = model.to(device)
    decoding, greedy, words = decoding_study(model, corpus, itos, cfg, device)
    out: dict[str, Any] = {"encoder": meta.get("encoder"), "language": corpus.language,
                           "normaliser": corpus.normaliser, "source": corpus.source, "decoding": decoding,
                           "test_images": len(corpus.splits["test"])}
    if corpus.splits["test"].objects is not None:
        out["faithfulness"] = faithfulness(model, corpus, greedy, words, cfg, device, cfg.seed)
    if cfg.evaluate.attacks and cfg.evaluate.eps:
        out["robustness"] = robustness(model, corpus, greedy, itos, cfg, device, cfg.seed)
    out["worst"] = worst_samples(corpus, greedy, words, cfg.evaluate.figures)
    out["examples"] = [{"caption": " ".join(words[i]), "reference": corpus.splits["test"].raw[i][0]}
                       for i in range(min(8, len(words)))]
    return out
