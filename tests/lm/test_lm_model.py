"""The language-model lab's tokenizer, examples, loss, perplexity and model loading — on tiny models
and tokenizers the tests build and save themselves (never the hub)."""

from __future__ import annotations

import json
import math
import os
import types

import pytest
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from torch.utils.data import DataLoader
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from robustlab.core.errors import RobustlabError
from robustlab.labs.lm.examples import IGNORE, collate_prompts, collate_training, encode_pairs
from robustlab.labs.lm.models import (
    fit_to_tokenizer,
    load_local_model,
    snapshot_state,
    tiny_gpt2,
)
from robustlab.labs.lm.perplexity import (
    CorpusNLL,
    corpus_nll,
    shifted_nll,
    shuffled_prompts,
    target_nll,
)
from robustlab.labs.lm.tokenizer import SPECIAL_TOKENS, ensure_special_tokens, train_bpe

ZWNJ = "\u200c"
BEYTS = [
    "الا یا ایها الساقی ادر کأسا و ناولها", "که عشق آسان نمود اول ولی افتاد مشکل‌ها",
    "دل می‌رود ز دستم صاحب‌دلان خدا را", "دردا که راز پنهان خواهد شد آشکارا",
    "بشنو از نی چون حکایت می‌کند", "از جدایی‌ها شکایت می‌کند",
    "توانا بود هر که دانا بود", "ز دانش دل پیر برنا بود",
]
SOURCES, TARGETS = BEYTS[0::2], BEYTS[1::2]


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerFast:
    return train_bpe(BEYTS * 2, vocab_size=400)


def _model(tok, seed: int = 0, spread: float = 0.0, vocab: int | None = None):
    """A tiny GPT-2 without dropout; ``spread`` > 0 perturbs its weights so predictions are far from
    uniform (different tokens get clearly different losses)."""
    torch.manual_seed(seed)
    model = tiny_gpt2(vocab or len(tok), n_positions=64, n_layer=2, n_embd=32, n_head=2, dropout=0.0,
                      bos_id=tok.bos_token_id, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    if spread:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * spread)
    return model.eval()


def _pairs(tok, k: int = 4):
    return encode_pairs(tok, SOURCES[:k], TARGETS[:k], max_length=64)


def _batches(pairs, size: int, pad_id: int) -> list[dict]:
    return [collate_training([pairs[i] for i in range(s, min(s + size, len(pairs)))], pad_id)
            for s in range(0, len(pairs), size)]


# --- tokenizer ---------------------------------------------------------------------------------


def test_bpe_round_trips_persian_and_fixes_the_special_ids(tok):
    for role, token_id in zip(SPECIAL_TOKENS, range(5), strict=True):
        assert tok.convert_tokens_to_ids(SPECIAL_TOKENS[role]) == token_id
        assert getattr(tok, f"{role}_token_id") == token_id
    unseen = f"گل{ZWNJ}ها و می{ZWNJ}خواران، ۱۴۰۲ — naïve ✓"
    for text in [*BEYTS, unseen, f"{ZWNJ}{ZWNJ}"]:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
    assert tok.encode("<sep>", add_special_tokens=False) == [tok.sep_token_id]  # never split
    assert 261 < len(tok) <= 400  # the byte alphabet, the specials and some merges
    assert len(tok.encode(BEYTS[0], add_special_tokens=False)) < len(BEYTS[0].encode())  # merges compress


def test_bpe_rejects_a_vocabulary_below_the_byte_alphabet():
    with pytest.raises(RobustlabError, match="at least 261"):
        train_bpe(BEYTS, vocab_size=100)


def _tokenizer_without_sep() -> PreTrainedTokenizerFast:
    """Like a pretrained tokenizer with ``<s> </s> <pad> <unk>`` but no ``<sep>``."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer, core.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(BEYTS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


def test_ensure_special_tokens_adds_a_missing_sep_and_the_model_grows_to_fit():
    tokenizer = _tokenizer_without_sep()
    before = len(tokenizer)
    kept = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    assert ensure_special_tokens(tokenizer) == 1
    assert tokenizer.sep_token == "<sep>" and tokenizer.sep_token_id == before and len(tokenizer) == before + 1
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == kept
    assert tokenizer.encode("a<sep>b", add_special_tokens=False)[1] == before
    assert ensure_special_tokens(tokenizer) == 0  # idempotent
    model = _model(tokenizer, vocab=before)
    assert fit_to_tokenizer(model, tokenizer) == 1
    assert model.get_input_embeddings().num_embeddings == len(tokenizer)
    assert model(torch.tensor([[tokenizer.sep_token_id]])).logits.shape[-1] == len(tokenizer)


def test_ensure_special_tokens_leaves_a_complete_tokenizer_alone(tok):
    assert ensure_special_tokens(tok) == 0
    assert [tok.bos_token_id, tok.eos_token_id, tok.pad_token_id, tok.sep_token_id] == [0, 1, 2, 3]


# --- examples and batching -----------------------------------------------------------------------


def test_pairs_encode_prompt_and_target_with_their_markers(tok):
    pairs = _pairs(tok, 2)
    body = tok.encode(SOURCES[1], add_special_tokens=False)
    assert pairs.prompts[1] == [tok.bos_token_id, *body, tok.sep_token_id]
    assert pairs.targets[1] == [*tok.encode(TARGETS[1], add_special_tokens=False), tok.eos_token_id]
    assert pairs.target_chars == [len(TARGETS[0]), len(TARGETS[1])]
    assert pairs.prompt_lengths[1] == len(body) + 2


def test_a_pair_over_max_length_is_an_error_not_a_truncation(tok):
    lengths = _pairs(tok).lengths
    limit = max(lengths) - 1
    i = lengths.index(max(lengths))
    with pytest.raises(RobustlabError, match=f"pair {i} is {max(lengths)} tokens long.*max_length={limit}"):
        encode_pairs(tok, SOURCES, TARGETS, max_length=limit)
    assert len(encode_pairs(tok, SOURCES, TARGETS, max_length=max(lengths))) == len(SOURCES)


def test_training_batches_learn_only_the_target_and_its_end(tok):
    pairs = _pairs(tok, 3)
    batch = collate_training([pairs[i] for i in range(3)], tok.pad_token_id)
    longest = max(pairs.lengths)
    assert batch["input_ids"].shape == batch["labels"].shape == (3, longest)
    for b in range(3):
        p, t = len(pairs.prompts[b]), len(pairs.targets[b])
        row, labels, mask = batch["input_ids"][b], batch["labels"][b], batch["attention_mask"][b]
        assert row[: p + t].tolist() == pairs.prompts[b] + pairs.targets[b]  # right-padded
        assert (labels[:p] == IGNORE).all() and (labels[p + t:] == IGNORE).all()
        assert labels[p: p + t].tolist() == pairs.targets[b] and labels[p + t - 1] == tok.eos_token_id
        assert mask[: p + t].eq(1).all() and mask[p + t:].eq(0).all()
        assert (row[p + t:] == tok.pad_token_id).all()
    assert batch["target_chars"].tolist() == pairs.target_chars[:3]


def test_prompt_batches_are_left_padded(tok):
    pairs = _pairs(tok, 3)
    batch = collate_prompts(pairs.prompts[:3], tok.pad_token_id)
    width = max(pairs.prompt_lengths[:3])
    for b, prompt in enumerate(pairs.prompts[:3]):
        pad = width - len(prompt)
        assert batch["input_ids"][b, pad:].tolist() == prompt
        assert batch["input_ids"][b, :pad].eq(tok.pad_token_id).all()
        assert batch["attention_mask"][b].tolist() == [0] * pad + [1] * len(prompt)
    assert batch["input_ids"][:, -1].eq(tok.sep_token_id).all()  # every row ends on its own <sep>


# --- loss and perplexity -------------------------------------------------------------------------


def _by_hand(model, pairs, i: int) -> float:
    """Summed NLL of example ``i``'s target tokens, alone (no padding), with explicit indexing."""
    ids = pairs.prompts[i] + pairs.targets[i]
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    start = len(pairs.prompts[i])
    return -sum(float(logp[t - 1, ids[t]]) for t in range(start, len(ids)))


def test_target_nll_equals_the_hand_computed_sum(tok):
    model, pairs = _model(tok, spread=0.3), _pairs(tok, 3)
    batch = collate_training([pairs[i] for i in range(3)], tok.pad_token_id)
    with torch.no_grad():
        nll, n = target_nll(model, batch)
    assert nll.dtype == torch.float64 and nll.dim() == 0
    assert n == sum(len(t) for t in pairs.targets[:3])
    assert float(nll) == pytest.approx(sum(_by_hand(model, pairs, i) for i in range(3)), rel=1e-6)


def test_sum_over_count_equals_transformers_shifted_mean_loss(tok):
    model, pairs = _model(tok, spread=0.3), _pairs(tok, 1)
    batch = collate_training([pairs[0]], tok.pad_token_id)
    with torch.no_grad():
        nll, n = target_nll(model, batch)
        hf = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss  # shifts inside, averages
    assert float(nll) / n == pytest.approx(float(hf), rel=1e-5)


class _Copier(torch.nn.Module):
    """Predicts, at every position, the token it is reading: perfect under a position-aligned loss
    (logits[t] scored against labels[t]), useless under the causal shift."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab, self.scale = vocab, torch.nn.Parameter(torch.tensor(30.0))

    def forward(self, input_ids, attention_mask=None):
        return types.SimpleNamespace(logits=F.one_hot(input_ids, self.vocab).float() * self.scale)


def test_a_copying_model_wins_only_under_a_position_aligned_loss(tok):
    pairs = _pairs(tok, 3)
    batch = collate_training([pairs[i] for i in range(3)], tok.pad_token_id)
    copier = _Copier(len(tok))
    with torch.no_grad():
        logits = copier(batch["input_ids"]).logits
        aligned = F.cross_entropy(logits.transpose(1, 2), batch["labels"], ignore_index=IGNORE)
        nll, n = target_nll(copier, batch)
    assert float(aligned) < 1e-6
    assert float(nll) / n > 5.0


def test_corpus_perplexity_does_not_depend_on_batch_size(tok):
    model, pairs = _model(tok, spread=0.3), _pairs(tok, 4)
    results = []
    for size in (1, 3, 4):
        corpus = CorpusNLL()
        for batch in _batches(pairs, size, tok.pad_token_id):
            corpus.update(model, batch)
        results.append(corpus.totals() + (corpus.perplexity(),))
    (nll1, n1, c1, ppl1), *others = results
    for nll, n, c, ppl in others:
        assert (n, c) == (n1, c1)
        assert nll == pytest.approx(nll1, rel=1e-6) and ppl == pytest.approx(ppl1, rel=1e-6)
    # the number a mean of batch means would report (batches of 3 and 1) is visibly different
    with torch.no_grad():
        means = [nll / n for nll, n in (target_nll(model, b) for b in _batches(pairs, 3, tok.pad_token_id))]
    assert abs(math.exp(sum(float(m) for m in means) / len(means)) - ppl1) > 1e-3 * ppl1


def test_pads_and_an_unscored_long_neighbour_change_nothing(tok):
    model, pairs = _model(tok, spread=0.3), _pairs(tok, 4)
    short = pairs.lengths.index(min(pairs.lengths))
    long_ = pairs.lengths.index(max(pairs.lengths))
    alone = collate_training([pairs[short]], tok.pad_token_id)
    together = collate_training([pairs[short], pairs[long_]], tok.pad_token_id)
    together["labels"][1] = IGNORE  # the neighbour is there only to pad the short example
    assert together["attention_mask"][0].eq(0).any()
    with torch.no_grad():
        (a, na), (b, nb) = target_nll(model, alone), target_nll(model, together)
    assert na == nb == len(pairs.targets[short])
    assert float(b) == pytest.approx(float(a), rel=1e-6)


def test_corpus_nll_scores_the_whole_split_in_eval_mode(tok):
    model, pairs = _model(tok, spread=0.3), _pairs(tok, 4)
    model.train()
    loader = DataLoader(pairs, batch_size=3, collate_fn=lambda b: collate_training(b, tok.pad_token_id))
    corpus = corpus_nll(model, loader)
    assert model.training  # mode restored
    nll, tokens, chars = corpus.totals()
    assert tokens == sum(len(t) for t in pairs.targets) and chars == sum(len(t) for t in TARGETS)
    assert nll == pytest.approx(sum(_by_hand(model.eval(), pairs, i) for i in range(4)), rel=1e-6)
    assert corpus.perplexity() == pytest.approx(math.exp(nll / tokens))
    assert corpus.bits_per_char() == pytest.approx(nll / math.log(2) / chars)
    assert corpus.summary()["tokens"] == tokens
    with pytest.raises(RobustlabError, match="no target tokens"):
        CorpusNLL().perplexity()


def test_shifted_nll_is_differentiable_for_training(tok):
    model, pairs = _model(tok), _pairs(tok, 2)
    nll, n = target_nll(model, collate_training([pairs[0], pairs[1]], tok.pad_token_id))
    (nll / n).backward()
    assert model.transformer.wte.weight.grad.abs().sum() > 0
    logits = torch.zeros(1, 3, 5)
    nll0, n0 = shifted_nll(logits, torch.tensor([[IGNORE, IGNORE, IGNORE]]))
    assert (float(nll0), n0) == (0.0, 0)


def test_shuffled_prompts_is_a_seeded_derangement():
    for n in range(2, 12):
        sources = [f"s{i}" for i in range(n)]
        for seed in range(5):
            out = shuffled_prompts(sources, seed)
            assert sorted(out) == sorted(sources)
            assert all(o != s for o, s in zip(out, sources, strict=True))
            assert out == shuffled_prompts(sources, seed)
    many = [f"s{i}" for i in range(30)]
    assert shuffled_prompts(many, 0) != shuffled_prompts(many, 1)
    assert shuffled_prompts([], 0) == []
    with pytest.raises(RobustlabError, match="at least 2"):
        shuffled_prompts(["only"], 0)


# --- checkpoints ---------------------------------------------------------------------------------


def test_snapshot_survives_training_while_a_state_dict_reference_does_not(tok):
    model, pairs = _model(tok), _pairs(tok, 2)
    snapshot, live = snapshot_state(model), model.state_dict()
    before = {k: v.clone() for k, v in live.items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    nll, n = target_nll(model, collate_training([pairs[0], pairs[1]], tok.pad_token_id))
    (nll / n).backward()
    optimizer.step()
    name = "transformer.h.0.mlp.c_fc.weight"
    assert not torch.equal(model.state_dict()[name], before[name])  # the step changed the weights
    assert all(torch.equal(snapshot[k], before[k]) for k in before)  # the snapshot did not move
    assert not torch.equal(live[name], before[name])  # a naive reference moved with the weights
    model.load_state_dict(snapshot)
    assert all(torch.equal(model.state_dict()[k], before[k]) for k in before)


# --- loading a local model -----------------------------------------------------------------------


def _saved(tok, folder, vocab: int | None = None):
    model = _model(tok, vocab=vocab)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return model


def _logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits


def test_a_saved_model_loads_offline_with_identical_logits(tok, tmp_path):
    model = _saved(tok, tmp_path)
    loaded, tokenizer = load_local_model(tmp_path)
    ids = _pairs(tok, 1).prompts[0]
    assert torch.equal(_logits(loaded, ids), _logits(model, ids))
    assert not loaded.training
    assert tokenizer.encode(BEYTS[0], add_special_tokens=False) == tok.encode(BEYTS[0], add_special_tokens=False)
    assert (tokenizer.bos_token_id, tokenizer.sep_token_id, tokenizer.eos_token_id) == (0, 3, 1)


@pytest.mark.parametrize(("removed", "words"), [
    (["config.json"], "no config.json"),
    (["model.safetensors"], "no weights.*model.safetensors"),
    (["tokenizer.json"], "no tokenizer files.*tokenizer.json or vocab.json"),
])
def test_an_incomplete_directory_is_named(tok, tmp_path, removed, words):
    _saved(tok, tmp_path)
    for name in removed:
        (tmp_path / name).unlink()
    with pytest.raises(RobustlabError, match=words) as err:
        load_local_model(tmp_path)
    assert "\n" not in str(err.value)
    with pytest.raises(RobustlabError, match="does not exist"):
        load_local_model(tmp_path / "nowhere")


def _pickle_only(tok, folder):
    model = _saved(tok, folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # transformers 5 writes only safetensors
    return model


def test_pickle_weights_are_refused_unless_trusted(tok, tmp_path):
    model = _pickle_only(tok, tmp_path)
    with pytest.raises(RobustlabError, match="pickle.*arbitrary code.*trust_pickle.*safetensors"):
        load_local_model(tmp_path)
    loaded, _ = load_local_model(tmp_path, trust_pickle=True)
    ids = _pairs(tok, 1).prompts[0]
    assert torch.equal(_logits(loaded, ids), _logits(model, ids))


def test_a_trusted_pickle_that_runs_code_is_still_refused(tok, tmp_path):
    model = _pickle_only(tok, tmp_path)
    marker = tmp_path / "code-ran"

    class _Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    torch.save({**model.state_dict(), "payload": _Payload()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(RobustlabError, match="objects other than tensors"):
        load_local_model(tmp_path, trust_pickle=True)
    assert not marker.exists()


def test_a_tokenizer_larger_than_the_embeddings_is_refused(tok, tmp_path):
    _saved(tok, tmp_path, vocab=len(tok) - 10)
    with pytest.raises(RobustlabError, match=f"{len(tok)} tokens.*embeds only {len(tok) - 10}"):
        load_local_model(tmp_path)
    _saved(tok, tmp_path / "roomy", vocab=len(tok) + 8)  # a smaller tokenizer is fine
    model, tokenizer = load_local_model(tmp_path / "roomy")
    assert model.get_input_embeddings().num_embeddings == len(tokenizer) + 8


def test_a_tokenizer_saved_as_vocab_and_merges_is_accepted(tok, tmp_path):
    """The layout of older GPT-2 repositories: vocab.json + merges.txt and a GPT2Tokenizer config."""
    _saved(tok, tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    tok.backend_tokenizer.model.save(str(tmp_path))
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    config.pop("backend", None)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "tokenizer_class": "GPT2Tokenizer"}))
    _, tokenizer = load_local_model(tmp_path)
    assert tokenizer.encode(BEYTS[2], add_special_tokens=False) == tok.encode(BEYTS[2], add_special_tokens=False)
    assert AutoTokenizer.from_pretrained(tmp_path, local_files_only=True).sep_token == "<sep>"
