"""The language-model lab through the CLI: a local gpt2-fa-shaped directory (a tiny model the test
saves itself) fine-tuned on a small hemistich-per-line corpus and audited; bad inputs as one line
and exit 2; the offline BPE the same for the same training text."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from robustlab.config import parse_config
from robustlab.labs.lm.models import tiny_gpt2
from robustlab.labs.lm.prepare import couplet_data, train_tokenizer
from robustlab.labs.lm.tokenizer import train_bpe

HEMISTICHS = [
    "الا یا ایها الساقی ادر کاسا و ناولها", "که عشق آسان نمود اول ولی افتاد مشکل ها",
    "به بوی نافه ای کاخر صبا زان طره بگشاید", "ز تاب جعد مشکینش چه خون افتاد در دل ها",
    "مرا در منزل جانان چه امن عیش چون هر دم", "جرس فریاد می دارد که بربندید محمل ها",
    "به می سجاده رنگین کن گرت پیر مغان گوید", "که سالک بی خبر نبود ز راه و رسم منزل ها",
]


def _corpus_text(poems: int = 10) -> str:
    """``poems`` poems of four beyts (the same real lines, rotated), titles and a header comment."""
    out = ["# a test corpus: one hemistich per line"]
    for k in range(poems):
        out += ["", f"= poem {k + 1}"]
        out += [HEMISTICHS[(k + i) % len(HEMISTICHS)] for i in range(8)]
    return "\n".join(out) + "\n"


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "robustlab", "--threads", "1", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600, env={"ROBUSTLAB_QUIET": "1", "HF_HUB_OFFLINE": "1",
                                                                "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})


def _pretrained_dir(path, corpus_text: str, pickle_only: bool = False, vocab_rows: int | None = None):
    """A directory shaped like HooshvareLab/gpt2-fa: config.json, weights, tokenizer files."""
    lines = [line for line in corpus_text.splitlines() if line and not line.startswith(("#", "="))]
    tokenizer = train_bpe(lines, 400)
    torch.manual_seed(0)
    model = tiny_gpt2(vocab_rows or len(tokenizer), n_positions=96, n_layer=1, n_embd=32, n_head=2,
                      bos_id=tokenizer.bos_token_id, eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id)
    tokenizer.save_pretrained(path)
    model.save_pretrained(path)
    if pickle_only:
        (path / "model.safetensors").unlink()
        torch.save(model.state_dict(), path / "pytorch_model.bin")
    return path


def _train_args(corpus, model_dir, out, *extra: str) -> list[str]:
    return ["train", "--task", "lm", "--out", str(out), "--set", "data.dataset=text", "--set", f"data.path={corpus}",
            "--set", "model.name=pretrained", "--set", f"model.pretrained={model_dir}", "--set", "train.max_steps=3",
            "--set", "train.val_every=3", "--set", "data.val_fraction=0.2", "--set", "data.test_fraction=0.2",
            "--set", "evaluate.generate=3", "--set", "evaluate.samples=2", "--set", "evaluate.rhyme_candidates=2",
            "--set", "evaluate.decode.max_new_tokens=6", *extra]


def test_local_pretrained_directory_is_fine_tuned_and_audited(tmp_path):
    corpus = tmp_path / "shahnameh.txt"
    corpus.write_text(_corpus_text(), encoding="utf-8")
    model_dir = _pretrained_dir(tmp_path / "gpt2-fa", corpus.read_text(encoding="utf-8"))
    proc = _cli(*_train_args(corpus, model_dir, tmp_path / "run"), "--evaluate", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["model_source"].startswith("pretrained causal LM from") and str(model_dir) in results["model_source"]
    assert results["data"]["rhyme_form"] == "masnavi" and results["data"]["poems"] == {"train": 6, "val": 2, "test": 2}
    ppl = results["lm"]["perplexity"]
    assert ppl["model"]["tokens"] == ppl["unigram"]["tokens"] > 0
    assert "test ppl" in proc.stdout
    # the trained run reloads without the model directory (architecture from the checkpoint)
    for f in model_dir.iterdir():
        f.unlink()
    model_dir.rmdir()
    proc = _cli("evaluate", str(tmp_path / "run"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    again = json.loads((tmp_path / "run" / "results.json").read_text())["lm"]["perplexity"]["model"]
    assert again["perplexity"] == pytest.approx(ppl["model"]["perplexity"], rel=1e-9)


def test_a_pickle_checkpoint_needs_the_trust_option(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(_corpus_text(), encoding="utf-8")
    model_dir = _pretrained_dir(tmp_path / "m", corpus.read_text(encoding="utf-8"), pickle_only=True)
    proc = _cli(*_train_args(corpus, model_dir, tmp_path / "run"), cwd=tmp_path)
    assert proc.returncode == 2 and "trust_pickle" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()
    proc = _cli(*_train_args(corpus, model_dir, tmp_path / "run", "--set", "model.trust_pickle=true"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("case", ["empty", "odd", "no-weights", "no-tokenizer", "vocab", "context", "long-pair"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, case):
    corpus = tmp_path / "c.txt"
    text = _corpus_text()
    if case == "empty":
        text = "# nothing but a header\n"
    elif case == "odd":
        text = text.rstrip("\n") + "\nیک مصراع تنها\n"
    elif case == "long-pair":
        text = text.replace(HEMISTICHS[0], " ".join([HEMISTICHS[0]] * 12))
    corpus.write_text(text, encoding="utf-8")
    model_dir = _pretrained_dir(tmp_path / "m", _corpus_text(), vocab_rows=300 if case == "vocab" else None)
    extra: list[str] = []
    if case == "no-weights":
        (model_dir / "model.safetensors").unlink()
    if case == "no-tokenizer":
        for name in ("tokenizer.json", "vocab.json", "merges.txt"):
            (model_dir / name).unlink(missing_ok=True)
    if case == "context":
        extra = ["--set", "data.max_length=200"]
    proc = _cli(*_train_args(corpus, model_dir, tmp_path / "run", *extra), cwd=tmp_path)
    expected = {"empty": "no hemistichs", "odd": "line", "no-weights": "no weights", "no-tokenizer": "no tokenizer",
                "vocab": "do not belong together", "context": "context", "long-pair": "over the limit"}[case]
    err = proc.stderr.strip()
    assert proc.returncode == 2, err[-2000:]
    assert len(err.splitlines()) == 1 and expected in err and "Traceback" not in err, err


def test_the_offline_bpe_is_the_same_for_the_same_training_poems():
    """A prose-pretrained run and its fine-tuned successor rebuild one tokenizer (init_from needs it)."""
    cfg = parse_config({"task": "lm", "model": {"tokenizer": {"vocab_size": 400}}}, where="test")
    split = couplet_data(cfg, smoke=True, tokenizer=train_bpe(["ا ب"], 300)).split
    a, b = train_tokenizer(cfg, split, smoke=True), train_tokenizer(cfg, split, smoke=True)
    assert a.get_vocab() == b.get_vocab() and len(a) == 400
    assert a.backend_tokenizer.to_str() == b.backend_tokenizer.to_str()
