"""Batched couplet generation (left padding, stopping, seeding) and reranking, on tiny GPT-2s."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from robustlab.core.errors import RobustlabError
from robustlab.labs.lm.examples import collate_prompts, collate_training, encode_pairs, prompt_ids
from robustlab.labs.lm.generation import (
    DecodeSettings,
    continuation_text,
    generate,
    generate_reranked,
    rerank,
    sample_candidates,
)
from robustlab.labs.lm.models import tiny_gpt2
from robustlab.labs.lm.perplexity import target_nll
from robustlab.labs.lm.tokenizer import train_bpe

BEYTS = [
    "الا یا ایها الساقی ادر کأسا و ناولها", "که عشق آسان نمود اول ولی افتاد مشکل‌ها",
    "دل می‌رود ز دستم صاحب‌دلان خدا را", "دردا که راز پنهان خواهد شد آشکارا",
    "بشنو از نی چون حکایت می‌کند", "از جدایی‌ها شکایت می‌کند",
    "توانا بود", "ز دانش دل پیر برنا بود",
]
SOURCES, TARGETS = BEYTS[0::2], BEYTS[1::2]
_UNSEEN = "ای ساربان آهسته ران کآرام جانم می‌رود"
PROMPTS = [" ".join(_UNSEEN.split(" ")[:k]) for k in (2, 4, 5, 7)]  # token lengths strictly increase


@pytest.fixture(scope="module")
def tok():
    return train_bpe(BEYTS * 2, vocab_size=400)


def _model(tok, seed: int = 0, spread: float = 0.5):
    """A tiny GPT-2 whose weights are perturbed so that its greedy outputs vary with the context."""
    torch.manual_seed(seed)
    model = tiny_gpt2(len(tok), n_positions=64, n_layer=2, n_embd=32, n_head=2, dropout=0.0,
                      bos_id=tok.bos_token_id, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * spread)
    return model.eval()


@pytest.fixture(scope="module")
def trained(tok):
    """A tiny GPT-2 that has learned the four pairs by heart (including where they end)."""
    torch.manual_seed(0)
    model = tiny_gpt2(len(tok), n_positions=64, n_layer=2, n_embd=32, n_head=2, dropout=0.0,
                      bos_id=tok.bos_token_id, eos_id=tok.eos_token_id, pad_id=tok.pad_token_id)
    pairs = encode_pairs(tok, SOURCES, TARGETS, max_length=64)
    batch = collate_training([pairs[i] for i in range(len(pairs))], tok.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        nll, n = target_nll(model, batch)
        (nll / n).backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


GREEDY = DecodeSettings(max_new_tokens=12)


def test_batched_greedy_decoding_equals_one_prompt_at_a_time(tok):
    model = _model(tok)
    lengths = {len(prompt_ids(tok, s)) for s in PROMPTS}
    assert len(lengths) == 4  # four different prompt lengths: the batch is padded
    batched = generate(model, tok, PROMPTS, GREEDY, batch_size=4)
    single = [generate(model, tok, [s], GREEDY, batch_size=1)[0] for s in PROMPTS]
    assert batched == single
    assert len(set(batched)) > 1 and all(batched)


def test_right_padding_would_have_changed_the_outputs(tok):
    """The equality above is not automatic: the same batch padded on the right decodes differently."""
    model = _model(tok)
    ids = [prompt_ids(tok, s) for s in PROMPTS]
    left = collate_prompts(ids, tok.pad_token_id)
    width = left["input_ids"].shape[1]
    right = {k: torch.stack([torch.cat([row[m.bool()], row[~m.bool()]]) for row, m in
                             zip(t, left["attention_mask"], strict=True)]) for k, t in left.items()}
    kwargs = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": tok.pad_token_id,
              "eos_token_id": tok.eos_token_id}
    out_left = model.generate(**left, **kwargs)[:, width:]
    out_right = model.generate(**right, **kwargs)[:, width:]
    assert not torch.equal(out_left, out_right)


def test_a_trained_model_writes_the_target_and_stops_at_its_end(tok, trained):
    settings = DecodeSettings(max_new_tokens=40)
    out = generate(trained, tok, SOURCES, settings, batch_size=3)
    assert out == TARGETS  # nothing after </s>, although 40 new tokens were allowed


def test_continuation_text_stops_at_the_first_end_token(tok):
    ids = tok.encode("گل سرخ", add_special_tokens=False)
    tail = tok.encode("خار", add_special_tokens=False)
    assert continuation_text(tok, [*ids, tok.eos_token_id, *tail]) == "گل سرخ"
    assert continuation_text(tok, [*ids, tok.pad_token_id, tok.pad_token_id]) == "گل سرخ"


def test_a_seed_reproduces_sampling_and_leaves_the_callers_rng_alone(tok):
    model = _model(tok)
    settings = DecodeSettings(max_new_tokens=10, do_sample=True, temperature=1.5, top_k=50, top_p=0.95, seed=7)
    state = torch.get_rng_state()
    first = sample_candidates(model, tok, SOURCES, settings, batch_size=2, n=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert sample_candidates(model, tok, SOURCES, settings, batch_size=2, n=3) == first
    other = sample_candidates(model, tok, SOURCES, settings.model_copy(update={"seed": 8}), batch_size=2, n=3)
    assert other != first
    assert [len(c) for c in first] == [3, 3, 3, 3]


def test_rerank_picks_the_best_score_and_the_first_of_ties():
    candidates = [["a", "bbb", "cc"], ["xx", "yy", "z"], ["p", "q"]]
    assert rerank(candidates, lambda i, c: len(c)) == ["bbb", "xx", "p"]
    assert rerank([["n", "m"]], lambda i, c: float("nan") if c == "n" else 0.0) == ["m"]
    assert rerank([["a", "b"]], lambda i, c: -1.0 if i == 0 and c == "a" else 1.0) == ["b"]
    with pytest.raises(RobustlabError, match="prompt 0 has no candidates"):
        rerank([[]], lambda i, c: 0.0)


def test_generate_reranked_keeps_the_best_sampled_candidate(tok):
    model = _model(tok)
    settings = DecodeSettings(max_new_tokens=10, do_sample=True, num_candidates=4, seed=3)
    pool = sample_candidates(model, tok, SOURCES, settings, batch_size=2, n=4)
    chosen = generate_reranked(model, tok, SOURCES, settings, lambda i, c: len(c), batch_size=2)
    assert chosen == [max(options, key=len) for options in pool]
    assert any(len(set(options)) > 1 for options in pool)  # the choice was a real one


def test_settings_are_checked(tok):
    model = _model(tok)
    with pytest.raises(RobustlabError, match="need do_sample=True"):
        generate_reranked(model, tok, SOURCES, DecodeSettings(num_candidates=2), lambda i, c: 0.0)
    with pytest.raises(RobustlabError, match="prompt 0 has .* context of 64"):
        generate(model, tok, SOURCES[:1], DecodeSettings(max_new_tokens=60))
    with pytest.raises(ValidationError):
        DecodeSettings(top_p=0.0)
    with pytest.raises(ValidationError):
        DecodeSettings(beams=4)
    with pytest.raises(ValidationError):
        GREEDY.max_new_tokens = 3  # frozen
