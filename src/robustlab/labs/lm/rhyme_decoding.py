"""Rhyme-word-first decoding: the model writes the beyt, the rhyme word is chosen from a lexicon.

A weak model's samples almost never rhyme, so reranking a few of them by the rhyme check rarely
finds a rhyming one. Here the rhyme word is chosen first among words known to rhyme, and the model
only decides which of them fits its own beyt best. All words and hemistichs are
:func:`~robustlab.data.persian.normalize`-d; the rhyme rule is :func:`~robustlab.labs.lm.poetry.rhymes`.

1. **Lexicon** (:meth:`RhymeLexicon.fit`), from the TRAINING beyts only. A hemistich's *rhyme word*
   is the word just before the radif when the hemistich ends with the radif's words, the last word
   when the radif is ``""``, and none otherwise (a radif glued to the word, or absent). Ghazal: the
   rhyme word of every beyt's second hemistich, and of its first hemistich when that rhymes with
   the second (the opening beyt), radif = the beyt's poem's radif. Masnavi: the rhyme words of both
   hemistichs of every beyt whose hemistichs rhyme, radif = the words the two share. Every word is
   counted, and indexed by the last 2 and the last 3 letters of its rhyme key (words of fewer than 2
   letters are not indexed).
2. **Target ending.** Ghazal: the source beyt's second hemistich's rhyme key with the radif's key
   cut off (the qafiye) and the poem's radif; a source whose second hemistich does not end with the
   radif's letters has no target. Masnavi: the key of the last word of the generated first
   hemistich, radif ``""``.
3. **Draft and candidates.** The model samples the beyt as usual (:func:`~robustlab.labs.lm.generation.generate`
   with the given :class:`~robustlab.labs.lm.generation.DecodeSettings`: batched, seeded), or the
   caller passes these drafts. A draft that is not two hemistichs (:func:`~robustlab.labs.lm.poetry.well_formed`
   on its first two) is kept as it is (fallback ``"malformed"``). Otherwise the second hemistich
   loses the radif's words when it ends with them, then its final word: ``prefix``. The candidates
   are the lexicon's words whose key shares the last 3 letters with the target, most frequent first,
   then those sharing only the last 2 — at least 2 letters of qafiye, so every candidate rhymes —
   without the source's own rhyme word (repeating the qafiye word is a flaw) and the generated first
   hemistich's last word (compared by rhyme key), the first ``k`` of them. Each is completed as
   ``first / prefix word [radif]`` followed by ``</s>``; a completion that fails
   :func:`~robustlab.labs.lm.poetry.rhymes` or does not fit the model's context is dropped.
4. **Choice.** Every completion is scored by the summed log-probability of its *appended* tokens
   given ``<s> source <sep>`` and the tokens its prompt's completions share with the draft's prefix
   (the longest common token prefix of ``target_ids(first / prefix)`` and all of them), so within a
   prompt the scores differ exactly as the completions' full log-probabilities do. Completions of
   many prompts are scored together in right-padded batches of ``score_batch`` rows, one forward
   pass each, in eval mode without gradients. The highest score wins (ties: the more frequent word).
   A prompt with no candidate keeps its draft (fallback ``"no_rhyme_word"``).
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from robustlab.core.errors import RobustlabError
from robustlab.core.modes import eval_mode
from robustlab.data.persian import normalize
from robustlab.labs.lm.corpus import Beyt, Poem, RhymeForm, parse_rhyme_form
from robustlab.labs.lm.examples import IGNORE, collate_training, prompt_ids, special_id, target_ids
from robustlab.labs.lm.generation import DecodeSettings, generate
from robustlab.labs.lm.pairs import HEMISTICH_SEP, Pair, beyt_text
from robustlab.labs.lm.poetry import hemistichs, poem_radif, radif, rhyme_key, rhymes, well_formed

SUFFIXES = (3, 2)  # letters of the rhyme key a lexicon word is indexed by, longest (preferred) first
FALLBACKS = ("malformed", "no_rhyme_word")


def rhyme_word(hemistich: str, radif_text: str) -> str | None:
    """The normalised word just before ``radif_text``'s words at the end of ``hemistich`` (the last
    word when the radif is ``""``); ``None`` when the hemistich does not end with the radif's words
    or has no word before them."""
    words, tail = normalize(hemistich).split(), normalize(radif_text).split()
    if len(words) <= len(tail) or (tail and words[-len(tail):] != tail):
        return None
    return words[-len(tail) - 1]


def _shared_suffix(a: str, b: str) -> int:
    return len(os.path.commonprefix([a[::-1], b[::-1]]))


@dataclass(frozen=True)
class RhymeLexicon:
    """Rhyme words of the training beyts (normalised) with their counts, indexed by the last 2 and
    3 letters of their rhyme keys; ``form`` is the corpus's rhyme form."""

    form: RhymeForm
    counts: Mapping[str, int]
    by_suffix: Mapping[str, tuple[str, ...]]  # key suffix → words, most frequent first (ties: by word)

    @classmethod
    def fit(cls, beyts: Sequence[Beyt], form: RhymeForm | str, radifs: Sequence[str] | None = None) -> RhymeLexicon:
        """The lexicon of ``beyts`` (training beyts only; rule: module docstring, step 1). ``radifs[i]``
        is the radif of ``beyts[i]``'s poem (ghazal; ``None`` = no radif anywhere); a masnavi uses each
        beyt's own shared radif and ignores ``radifs``."""
        form = parse_rhyme_form(form)
        rads = [""] * len(beyts) if radifs is None else list(radifs)
        if len(rads) != len(beyts):
            raise RobustlabError(f"{len(beyts)} beyts but {len(rads)} radifs; give one radif per beyt")
        counts: Counter[str] = Counter()
        for beyt, rad in zip(beyts, rads, strict=True):
            first, second = normalize(beyt.first), normalize(beyt.second)
            if form == RhymeForm.MASNAVI:
                if not rhymes(None, beyt, form):
                    continue
                shared = radif([first, second])
                found = [rhyme_word(first, shared), rhyme_word(second, shared)]
            else:
                found = [rhyme_word(second, rad)]
                if rhymes(Beyt(second, second), Beyt(first, first), form, rad):
                    found.append(rhyme_word(first, rad))
            counts.update(w for w in found if w is not None and len(rhyme_key(w)) >= min(SUFFIXES))
        index: dict[str, list[str]] = defaultdict(list)
        for word in sorted(counts, key=lambda w: (-counts[w], w)):
            key = rhyme_key(word)
            for n in SUFFIXES:
                if len(key) >= n:
                    index[key[-n:]].append(word)
        return cls(form, dict(counts), {s: tuple(ws) for s, ws in index.items()})

    @classmethod
    def from_pairs(cls, pairs: Sequence[Pair], form: RhymeForm | str) -> RhymeLexicon:
        """The lexicon of every beyt of ``pairs`` (each once), each poem's radif computed by
        :func:`~robustlab.labs.lm.poetry.poem_radif` from the poem as its pairs give it (consecutive
        pairs hold all of a poem's beyts)."""
        beyts: dict[str, dict[int, Beyt]] = defaultdict(dict)
        for p in pairs:
            beyts[p.poem_id][p.index], beyts[p.poem_id][p.index + 1] = p.source, p.target
        flat: list[Beyt] = []
        rads: list[str] = []
        for poem_id, by_index in beyts.items():
            ordered = tuple(by_index[i] for i in sorted(by_index))
            rad = poem_radif(Poem(poem_id, "", ordered), form)
            flat += ordered
            rads += [rad] * len(ordered)
        return cls.fit(flat, form, rads)

    def candidates(self, target_key: str, exclude: Sequence[str], k: int) -> list[str]:
        """At most ``k`` words whose rhyme key shares at least 2 final letters with ``target_key``:
        those sharing 3 first, each group most frequent first, without words whose rhyme key is in
        ``exclude`` (rhyme keys)."""
        banned = set(exclude)
        out: list[str] = []
        for n in SUFFIXES:
            if len(target_key) < n:
                continue
            for word in self.by_suffix.get(target_key[-n:], ()):
                if len(out) == k:
                    return out
                if word not in out and rhyme_key(word) not in banned:
                    out.append(word)
        return out[:k]

    def __len__(self) -> int:
        return len(self.counts)


@dataclass(frozen=True)
class RhymeFirstResult:
    """Per prompt ``i``: ``texts[i]`` the chosen beyt (``first / second``), ``drafts[i]`` the model's
    own sample, ``fallbacks[i]`` ``None`` when a rhyme word was chosen, else the reason the draft was
    kept (:data:`FALLBACKS`), ``candidates[i]`` the completions scored and ``scores[i]`` their
    appended-token log-probabilities (nats, ≤ 0)."""

    texts: list[str]
    drafts: list[str]
    fallbacks: list[str | None]
    candidates: list[list[str]]
    scores: list[list[float]]

    @property
    def fallback_rate(self) -> float:
        """Share in [0, 1] of prompts that kept their draft (0.0 for no prompt)."""
        return sum(f is not None for f in self.fallbacks) / len(self.fallbacks) if self.fallbacks else 0.0


def _target(source: Beyt, first: str, form: RhymeForm, rad: str) -> tuple[str, list[str]] | None:
    """The target qafiye key and the rhyme keys to exclude, or ``None`` when there is no target."""
    last = first.split()[-1]
    if form == RhymeForm.MASNAVI:
        return rhyme_key(last), [rhyme_key(last)]
    ks, kr = rhyme_key(source.second), rhyme_key(rad)
    if not ks.endswith(kr) or len(ks) == len(kr):
        return None
    own = rhyme_word(source.second, rad)
    return ks[: len(ks) - len(kr)], [rhyme_key(last), *([rhyme_key(own)] if own else [])]


def _prefix(second: str, rad: str) -> list[str]:
    """The words of ``second`` before its final word (and before the radif's words when it ends with them)."""
    words, tail = second.split(), rad.split()
    if tail and words[-len(tail):] == tail:
        words = words[: -len(tail)]
    return words[:-1]


def _common_prefix(rows: Sequence[Sequence[int]]) -> int:
    n = 0
    while all(len(r) > n for r in rows) and len({r[n] for r in rows}) == 1:
        n += 1
    return n


def appended_logprobs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                      rows: Sequence[tuple[list[int], list[int]]], score_batch: int = 64) -> list[float]:
    """Per row ``(context, appended)`` (token ids; ``appended`` non-empty), the summed log-probability
    (nats, float64 arithmetic) of ``appended`` after ``context``, in right-padded batches of
    ``score_batch`` rows, one forward pass each, in eval mode without gradients."""
    if score_batch < 1:
        raise RobustlabError(f"score_batch must be >= 1, got {score_batch}")
    device = next(model.parameters()).device
    pad = special_id(tokenizer, "pad")
    out: list[float] = []
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(rows), score_batch):
            chunk = rows[start:start + score_batch]
            items = [{"prompt": torch.tensor(c, dtype=torch.long), "target": torch.tensor(a, dtype=torch.long),
                      "target_chars": 0} for c, a in chunk]
            batch = collate_training(items, pad)
            logits = model(input_ids=batch["input_ids"].to(device),
                           attention_mask=batch["attention_mask"].to(device)).logits
            targets = batch["labels"][:, 1:].to(device)
            scored = targets != IGNORE
            picked = F.log_softmax(logits[:, :-1][scored].double(), dim=-1)
            token_lp = picked.gather(1, targets[scored].unsqueeze(1)).squeeze(1)
            row_of = torch.arange(len(chunk), device=device).unsqueeze(1).expand_as(targets)[scored]
            sums = torch.zeros(len(chunk), dtype=torch.float64, device=device).index_add_(0, row_of, token_lp)
            out += sums.tolist()
    return out


def _context_size(model: PreTrainedModel) -> int | None:
    config = model.config
    return getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)


def rhyme_first(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, sources: Sequence[Beyt],
                radifs: Sequence[str], lexicon: RhymeLexicon, settings: DecodeSettings, k: int = 16,
                batch_size: int = 16, drafts: Sequence[str] | None = None, prompts: Sequence[str] | None = None,
                score_batch: int = 64) -> RhymeFirstResult:
    """Rhyme-word-first decoding of one beyt per source (algorithm: module docstring).

    ``radifs[i]`` is the radif of source ``i``'s poem (ghazal; ignored for a masnavi); ``k`` ≥ 1
    rhyme words are tried per prompt; ``drafts`` are the model's samples when already drawn (else
    :func:`~robustlab.labs.lm.generation.generate` draws them with ``settings`` in batches of
    ``batch_size``); ``prompts`` are the prompt texts the drafts were written after (default: the
    sources as beyt strings). Same inputs and settings → same result."""
    if k < 1:
        raise RobustlabError(f"rhyme-first decoding needs k >= 1 rhyme words per prompt, got {k}")
    n = len(sources)
    texts_in = [beyt_text(s) for s in sources] if prompts is None else list(prompts)
    for name, values in (("radifs", radifs), ("prompts", texts_in), ("drafts", drafts)):
        if values is not None and len(values) != n:
            raise RobustlabError(f"{n} sources but {len(values)} {name}; give one per source")
    if drafts is None:
        drafts = generate(model, tokenizer, texts_in, settings, batch_size) if n else []
    form, context = lexicon.form, _context_size(model)
    fallbacks: list[str | None] = [None] * n
    options: list[list[str]] = [[] for _ in range(n)]
    rows: list[tuple[list[int], list[int]]] = []
    owners: list[int] = []
    for i, (source, draft, rad) in enumerate(zip(sources, drafts, radifs, strict=True)):
        parts = hemistichs(draft)
        if len(parts) < 2 or not well_formed(HEMISTICH_SEP.join(parts[:2])):
            fallbacks[i] = "malformed"
            continue
        first, rad = parts[0], ("" if form == RhymeForm.MASNAVI else normalize(rad))
        target = _target(source, first, form, rad)
        words = lexicon.candidates(target[0], target[1], k) if target and len(target[0]) >= 2 else []
        prefix = _prefix(parts[1], rad)
        made = [HEMISTICH_SEP.join((first, " ".join([*prefix, w, *rad.split()]))) for w in words]
        options[i] = [m for m in made if rhymes(source, m, form, rad)]
        prompt = prompt_ids(tokenizer, texts_in[i])
        ids = [target_ids(tokenizer, m) for m in options[i]]
        keep = [j for j, t in enumerate(ids) if context is None or len(prompt) + len(t) <= context]
        options[i], ids = [options[i][j] for j in keep], [ids[j] for j in keep]
        if not options[i]:
            fallbacks[i] = "no_rhyme_word"
            continue
        head = target_ids(tokenizer, HEMISTICH_SEP.join((first, " ".join(prefix))))[:-1]
        shared = min(_common_prefix([head, *ids]), min(len(t) for t in ids) - 1)
        rows += [(prompt + t[:shared], t[shared:]) for t in ids]
        owners += [i] * len(ids)
    flat = appended_logprobs(model, tokenizer, rows, score_batch) if rows else []
    scores: list[list[float]] = [[] for _ in range(n)]
    for i, value in zip(owners, flat, strict=True):
        scores[i].append(value)
    texts = [options[i][scores[i].index(max(scores[i]))] if scores[i] else drafts[i] for i in range(n)]
    return RhymeFirstResult(texts, list(drafts), fallbacks, options, scores)
