"""Language-model lab: training tokens/s of robustlab's trainer vs a plain PyTorch loop, and batched
vs one-prompt-at-a-time greedy generation, on a tiny GPT-2 trained on the Hafez couplets.

Model and data: ``parse_config({"task": "lm", ...})`` with dataset hafez, ``model: {n_layer: 2,
n_embd: 128, n_head: 4, n_positions: 96}`` (dropout 0.1, byte-level BPE of 2000 tokens, the lab's
defaults), batch 32, AdamW lr 1e-3 weight decay 0.01, gradient clipping at 1.0, ``schedule: none``,
no EMA.

(a) robustlab: ``train_experiment(cfg, out, overwrite=True)`` with ``max_steps = val_every = N`` for
    N1 and N2 steps (N2 < one epoch). Each run also prepares the data (corpus, split, BPE training,
    encoding), validates once, saves checkpoints and scores the test split; those costs are the same
    for both step counts, so ``(time(N2) - time(N1)) / (N2 - N1)`` is the cost of one training step.
(b) plain PyTorch (what nanoGPT-style scripts do): the same model built the same way
    (``lab.build_data``, ``lab.model_meta``, ``lab.build_model`` after ``seed_everything(cfg.seed)``),
    the same batches (``DataLoader(bundle.train, batch_sampler=bundle.train_batches(32, seed, 1, 0),
    collate_fn=bundle.collate)``, ``set_epoch(1)``), ``CausalLMTask().forward(...).loss``, backward,
    ``clip_grad_norm_(1.0)``, ``AdamW.step``; N2 steps from the initial weights, the first N1 the
    warm-up, steps N1+1..N2 timed — exactly the steps (a)'s difference covers.

Tokens/s counts the non-pad input tokens (``attention_mask.sum()``) of steps N1+1..N2, the same for
both since the batches are identical. Identity check: the same seed gives the same initial weights,
batches and dropout masks, so after N2 steps (a)'s token-weighted training loss (``metrics.jsonl``)
and weights (``checkpoints/last.pt``) must equal (b)'s.

Generation: ``generate(model, tokenizer, prompts, DecodeSettings(do_sample=False, max_new_tokens=32),
batch_size=32)`` vs ``batch_size=1`` on the first 32 test-split sources, with (b)'s model after N2
steps. ``min_new_tokens`` is fixed at 0 by the lab, so a row stops at its first ``</s>``: throughput is
reported per prompt and per generated token (ids through the first ``</s>``, recorded from
``model.generate``'s output); both modes must return the same ids and texts.

Timing: CPU time (process time) with ``torch.set_num_threads(--threads)`` (1 by default); training
rounds (a-N1, a-N2, b) are interleaved in a rotating order, ``--repeats`` of them, medians reported.
The table is written into ``BENCHMARKS.md`` between ``<!-- lm:begin -->`` and ``<!-- lm:end -->``.

Usage: ``python benchmarks/lm.py [--quick] [--threads 1] [--repeats 2] [--out BENCHMARKS.md]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("ROBUSTLAB_QUIET", "1")  # no progress bars in the timed runs

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mdtable import machine, table, update_section  # noqa: E402
from robustlab.config import parse_config  # noqa: E402
from robustlab.core.checkpoint import load_checkpoint  # noqa: E402
from robustlab.core.runs import RunDir  # noqa: E402
from robustlab.core.seeding import resolve_device, seed_everything  # noqa: E402
from robustlab.experiment import train_experiment  # noqa: E402
from robustlab.labs import get_lab  # noqa: E402
from robustlab.labs.lm.examples import special_id  # noqa: E402
from robustlab.labs.lm.generation import DecodeSettings, generate  # noqa: E402
from robustlab.labs.lm.task import CausalLMTask  # noqa: E402

BATCH, MAX_NEW, TRAIN_TARGET, GEN_TARGET, TOLERANCE = 32, 32, 1.0, 4.0, 1e-5


def lm_config(steps: int) -> Any:
    """The benchmark's LM config, training ``steps`` optimizer steps with one validation at the end."""
    return parse_config({
        "task": "lm", "name": f"bench-lm-{steps}",
        "data": {"dataset": "hafez", "batch_size": BATCH},
        "model": {"n_layer": 2, "n_embd": 128, "n_head": 4, "n_positions": 96},
        "train": {"max_steps": steps, "val_every": steps, "schedule": "none", "ema": None},
    })


def ours(steps: int, out: Path) -> tuple[float, float, float, dict[str, torch.Tensor]]:
    """One ``train_experiment`` run of ``steps`` steps: ``(wall s, CPU s, train_loss, final weights)``."""
    cfg = lm_config(steps)
    t0, c0 = time.perf_counter(), time.process_time()
    run = train_experiment(cfg, out, overwrite=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    loss = float(RunDir(out).metrics()[-1]["train_loss"])
    return wall, cpu, loss, load_checkpoint(run.checkpoint("last"))["model"]


def plain(warm: int, steps: int) -> dict[str, Any]:
    """``steps`` plain-PyTorch steps from the initial weights, steps ``warm+1..steps`` timed: wall and
    CPU seconds, the timed steps' non-pad tokens, the token-weighted training loss over all steps,
    the trained model and the data bundle."""
    cfg = lm_config(steps)
    lab = get_lab("lm")
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    bundle = lab.build_data(cfg)
    meta = lab.model_meta(cfg, bundle)
    model = lab.build_model(cfg, meta).to(device)
    task = CausalLMTask()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    sampler = bundle.train_batches(BATCH, cfg.seed, 1, 0)
    loader = DataLoader(bundle.train, batch_sampler=sampler, collate_fn=bundle.collate)
    model.train()
    nll = targets = 0.0
    tokens, done, epoch = 0, 0, 1
    t0 = c0 = 0.0
    while done < steps:
        sampler.set_epoch(epoch)
        for batch in loader:
            if done == warm:
                t0, c0 = time.perf_counter(), time.process_time()
            out = task.forward(model, *task.unpack(batch, device))
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip or 1.0)
            opt.step()
            nll += float(out.outputs)
            targets += float(out.targets[0])
            if done >= warm:
                tokens += int(batch["attention_mask"].sum())
            done += 1
            if done == steps:
                break
        epoch += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "tokens": tokens,
            "loss": nll / targets, "model": model, "bundle": bundle}


@contextlib.contextmanager
def recording(model: nn.Module, sink: list[list[int]], eos: int) -> Iterator[None]:
    """While inside, every ``model.generate`` call appends each row's new ids (through the first
    ``eos``) to ``sink``; the model is left as it was."""
    original = model.generate

    def generate_and_record(*args: Any, **kwargs: Any) -> torch.Tensor:
        sequences = original(*args, **kwargs)
        for row in sequences[:, kwargs["input_ids"].shape[1]:].tolist():
            sink.append(row[: row.index(eos) + 1] if eos in row else row)
        return sequences

    model.generate = generate_and_record
    try:
        yield
    finally:
        del model.generate


def timed_generation(model: nn.Module, tokenizer: Any, prompts: list[str], batch_size: int,
                     runs: int) -> tuple[float, float, list[str], list[list[int]]]:
    """Median wall and CPU seconds of ``generate`` over ``runs`` calls, its texts and generated ids."""
    settings = DecodeSettings(do_sample=False, max_new_tokens=MAX_NEW)
    eos = special_id(tokenizer, "eos")
    walls, cpus = [], []
    texts: list[str] = []
    ids: list[list[int]] = []
    for _ in range(runs):
        ids = []
        with recording(model, ids, eos):
            t0, c0 = time.perf_counter(), time.process_time()
            texts = generate(model, tokenizer, prompts, settings, batch_size=batch_size)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), texts, ids


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between two state dicts' floating tensors (same keys)."""
    return max(float((a[k].float().cpu() - b[k].float().cpu()).abs().max()) for k in a if a[k].is_floating_point())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="N1=4, N2=20 steps, 8 prompts, one round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=None, help="interleaved training rounds (default 2; quick: 1)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    n1, n2, n_prompts = (4, 20, 8) if args.quick else (10, 90, 32)
    repeats = args.repeats or (1 if args.quick else 2)
    start = time.perf_counter()

    # warm-up: kernels and allocator (a short plain run; the data path is exercised by both)
    plain(2, 4)
    rounds: dict[str, list[tuple[float, float]]] = {"a": [], "b": []}
    ours_loss = plain_loss = float("nan")
    weight_diff = float("nan")
    trained: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-lm-") as tmp:
        for r in range(repeats):
            jobs = ["a1", "a2", "b"]
            jobs = jobs[r % 3:] + jobs[: r % 3]  # rotating order: load drifts hit all alike
            res: dict[str, Any] = {}
            for job in jobs:
                if job == "a1":
                    res[job] = ours(n1, Path(tmp) / "n1")
                elif job == "a2":
                    res[job] = ours(n2, Path(tmp) / "n2")
                else:
                    res[job] = plain(n1, n2)
            a1, a2, b = res["a1"], res["a2"], res["b"]
            rounds["a"].append(((a2[0] - a1[0]) / (n2 - n1), (a2[1] - a1[1]) / (n2 - n1)))
            rounds["b"].append((b["wall"] / (n2 - n1), b["cpu"] / (n2 - n1)))
            ours_loss, plain_loss, trained = a2[2], b["loss"], b
            weight_diff = max_diff(a2[3], b["model"].state_dict())
    tokens_per_step = trained["tokens"] / (n2 - n1)
    train_s = time.perf_counter() - start

    step_wall = {k: statistics.median(w for w, _ in v) for k, v in rounds.items()}
    step_cpu = {k: statistics.median(c for _, c in v) for k, v in rounds.items()}
    train_ratio = step_cpu["b"] / step_cpu["a"]
    same_training = abs(ours_loss - plain_loss) <= TOLERANCE and weight_diff <= TOLERANCE

    model, bundle = trained["model"], trained["bundle"]
    couplets = bundle.extras["couplets"]
    tokenizer = couplets.tokenizer
    prompts = couplets.texts("test")[0][:n_prompts]
    gen_runs = 1 if args.quick else 2
    generate(model, tokenizer, prompts[:4], DecodeSettings(do_sample=False, max_new_tokens=MAX_NEW), batch_size=4)
    b_wall, b_cpu, b_texts, b_ids = timed_generation(model, tokenizer, prompts, n_prompts, gen_runs)
    s_wall, s_cpu, s_texts, s_ids = timed_generation(model, tokenizer, prompts, 1, gen_runs)
    gen_ratio = s_cpu / b_cpu
    same_text = b_texts == s_texts and b_ids == s_ids
    new_tokens = sum(len(row) for row in s_ids)
    stopped = sum(1 for row in s_ids if row and row[-1] == special_id(tokenizer, "eos"))

    train_met, gen_met = train_ratio >= TRAIN_TARGET, gen_ratio >= GEN_TARGET
    rows = [
        ["training tokens/CPU-s (`train_experiment` vs plain loop)", f"{tokens_per_step / step_cpu['a']:,.0f}",
         f"{tokens_per_step / step_cpu['b']:,.0f}", f"{train_ratio:.2f}x", f">= {TRAIN_TARGET:.1f}x",
         "met" if train_met else "**not met**"],
        ["training tokens/wall-s", f"{tokens_per_step / step_wall['a']:,.0f}",
         f"{tokens_per_step / step_wall['b']:,.0f}", f"{step_wall['b'] / step_wall['a']:.2f}x", "", ""],
        [f"generation tokens/CPU-s, {n_prompts} prompts, batch {n_prompts} vs 1", f"{new_tokens / b_cpu:,.0f}",
         f"{new_tokens / s_cpu:,.0f}", f"{gen_ratio:.2f}x", f">= {GEN_TARGET:.0f}x",
         "met" if gen_met else "**not met**"],
        ["generation prompts/CPU-s", f"{n_prompts / b_cpu:.1f}", f"{n_prompts / s_cpu:.1f}", f"{gen_ratio:.2f}x",
         "", ""],
        ["generation prompts/wall-s", f"{n_prompts / b_wall:.1f}", f"{n_prompts / s_wall:.1f}",
         f"{s_wall / b_wall:.2f}x", "", ""],
    ]
    flags = (" --quick" if args.quick else "") + (f" --threads {args.threads}" if args.threads != 1 else "")
    flags += f" --repeats {args.repeats}" if args.repeats else ""
    lines = [
        "## Language-model lab: training and generation throughput (Hafez couplets, tiny GPT-2)",
        "",
        f"Machine: {machine()}. GPT-2 2 layers x 128 (4 heads, 96 positions, dropout 0.1, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters, BPE of {len(tokenizer)} tokens) on the "
        f"{len(bundle.train)} training couplet pairs of dataset hafez; batch {BATCH}, AdamW lr 1e-3 (weight decay "
        f"0.01), gradients clipped at 1.0, no schedule, no EMA. Training: medians of {repeats} interleaved "
        f"round(s), {tokens_per_step:,.0f} non-pad tokens per step; generation: medians of {gen_runs} call(s); "
        f"{time.perf_counter() - start:.0f} s in all ({train_s:.0f} s training).",
        "",
        table(["measure", "robustlab", "anchor", "robustlab / anchor", "target", "result"], rows).rstrip(),
        "",
        f"Training: robustlab is `train_experiment(cfg, out, overwrite=True)` with `max_steps = val_every = N` "
        f"run for N = {n1} and N = {n2}; data preparation (corpus, split, BPE training, encoding), the one "
        f"validation, checkpoints and the test pass cost the same in both runs, so (time({n2}) - time({n1})) / "
        f"{n2 - n1} is one training step of the trainer. The anchor is a plain PyTorch loop on the same model "
        "(`lab.build_model` after `seed_everything`), the same batches (`DataLoader` over "
        "`bundle.train_batches(32, seed, 1, 0)`, `set_epoch(1)`) and `CausalLMTask().forward(...).loss`, "
        f"backward, `clip_grad_norm_(1.0)`, `AdamW.step`: {n2} steps from the initial weights, steps "
        f"{n1 + 1}..{n2} timed (the first {n1} are its warm-up). Tokens/s counts every non-pad input token "
        "(`attention_mask.sum()`), the same for both. Same training: after "
        f"{n2} steps robustlab's token-weighted training loss is {ours_loss:.6f}, the anchor's "
        f"{plain_loss:.6f}, and their weights differ by at most {weight_diff:.1e} "
        f"(tolerance {TOLERANCE:g}): {'yes' if same_training else 'NO'} — same initial weights, batches and "
        "dropout masks; the trainer also clips at 1.0 and applies no warm-up with `schedule: none`.",
        "",
        f"Generation: `generate(model, tokenizer, prompts, DecodeSettings(do_sample=False, "
        f"max_new_tokens={MAX_NEW}), batch_size={n_prompts})` vs `batch_size=1` on the first {n_prompts} "
        f"test-split sources, with the anchor's model after {n2} steps (trained, not converged). The lab fixes "
        "`min_new_tokens` at 0, so a row stops at its first `</s>` "
        f"({stopped} of {n_prompts} did{'' if stopped == n_prompts else f', the rest ran to {MAX_NEW} tokens'}; "
        f"{new_tokens} generated tokens in all, "
        "counted through the first `</s>`, the same in both modes); a batch decodes until its longest row is "
        "done. Both modes give the same ids and texts (greedy, left-padded prompts): "
        f"{'yes' if same_text else 'NO'}. Ratios use CPU time (process time, {args.threads} torch thread(s)), "
        "which a shared machine disturbs less than wall time.",
        "",
        f"Reproduce: `python benchmarks/lm.py{flags}`.",
    ]
    section = "\n".join(lines)
    update_section("lm", section, args.out)
    sys.stdout.write(section + "\n")
    return 0 if train_met and gen_met and same_training and same_text else 1


if __name__ == "__main__":
    raise SystemExit(main())
