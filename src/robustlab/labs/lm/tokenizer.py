"""Tokenizers of the couplet model: one example is ``<s> beyt_in <sep> beyt_out </s>``.

The offline model gets a byte-level BPE trained on the training split (:func:`train_bpe`): every
string, Persian with its zero-width non-joiners included, encodes and decodes back unchanged, and the
special tokens hold the fixed ids 0–4 in the order of :data:`SPECIAL_TOKENS`. A pretrained tokenizer
(HooshvareLab/gpt2-fa) keeps its own vocabulary; :func:`ensure_special_tokens` adds the roles it lacks.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from robustlab.core.errors import RobustlabError

#: role -> token string; :func:`train_bpe` gives them the ids 0, 1, 2, 3, 4 in this order
SPECIAL_TOKENS: dict[str, str] = {"bos": "<s>", "eos": "</s>", "pad": "<pad>", "sep": "<sep>", "unk": "<unk>"}

#: the roles an example needs: ``<s>`` opens the prompt, ``<sep>`` ends it, ``</s>`` ends the target
#: (and stops generation), ``<pad>`` fills batches
REQUIRED_ROLES = ("bos", "eos", "pad", "sep")


def _role_kwargs() -> dict[str, str]:
    return {f"{role}_token": token for role, token in SPECIAL_TOKENS.items()}


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """A byte-level BPE of at most ``vocab_size`` tokens learned from ``texts`` (merges seen at least
    ``min_frequency`` times). The 256 byte symbols are always in the vocabulary, so nothing is ever
    unknown and ``decode(encode(x)) == x`` for every string; the special tokens hold ids 0–4 (order of
    :data:`SPECIAL_TOKENS`) and are never split. The result is deterministic for the same texts."""
    floor = len(SPECIAL_TOKENS) + len(pre_tokenizers.ByteLevel.alphabet())
    if vocab_size < floor:
        raise RobustlabError(f"vocab_size {vocab_size} is too small; a byte-level BPE needs at least {floor}")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                  special_tokens=list(SPECIAL_TOKENS.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, **_role_kwargs())


def _usable(tokenizer: PreTrainedTokenizerBase, role: str, taken: set[str]) -> bool:
    token = getattr(tokenizer, f"{role}_token", None)
    return token is not None and token in tokenizer.get_vocab() and token not in taken


def ensure_special_tokens(tokenizer: PreTrainedTokenizerBase) -> int:
    """Give ``tokenizer`` (in place) a bos, eos, pad and sep token that are in its vocabulary, keeping
    those it already has; a missing role gets the token of :data:`SPECIAL_TOKENS` (``<sep>`` for
    gpt2-fa). ``sep`` must differ from bos, eos and pad, or the end of the prompt would be ambiguous.
    Returns how many tokens were appended to the vocabulary: when it is > 0 the model's embedding
    matrix must grow to ``len(tokenizer)`` rows (:func:`robustlab.labs.lm.models.fit_embeddings`)."""
    before = len(tokenizer)
    missing: dict[str, str] = {}
    for role in ("bos", "eos", "pad"):
        if not _usable(tokenizer, role, set()):
            missing[f"{role}_token"] = SPECIAL_TOKENS[role]
    tokenizer.add_special_tokens(missing)
    others = {getattr(tokenizer, f"{role}_token") for role in ("bos", "eos", "pad")}
    if not _usable(tokenizer, "sep", others):
        if SPECIAL_TOKENS["sep"] in others:
            raise RobustlabError(f"the tokenizer uses {SPECIAL_TOKENS['sep']!r} as bos, eos or pad; "
                                 "it cannot also end prompts")
        tokenizer.add_special_tokens({"sep_token": SPECIAL_TOKENS["sep"]})
    return len(tokenizer) - before
