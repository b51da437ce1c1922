"""Captioning lab: the lab's own training loop (cached encoder grids, the shared Trainer) vs a
plain-PyTorch reimplementation of the loop of sgrvinod's "a-PyTorch-Tutorial-to-Image-Captioning"
(the anchor) on the same model and batches, and batched beam search vs the anchor's per-image beam
search.

Data: ``--images`` procedural scenes of the lab (``dataset: shapes``, 64 px, 5 English references,
seed 0; 10 % held out for validation as in every run), vocabulary of the words seen at least 3 times,
one training row per (image, reference) pair. Model: the lab's captioner at its default width (embed
256, decoder 512, additive attention 256, β gate, dropout 0.5, λ = 1) over a frozen random-init
encoder; Adam 1e-3, gradient-norm clipping 5 (the lab's defaults), batch 64.

(1) Decoder training. (a) robustlab: ``build_data`` extracts the frozen encoder's grids once
    (inference mode, channels-last, stored fp16) and ``Trainer.train_epoch`` runs the lab's task on
    them (the lab's ``AttentionDecoder`` computes the attention keys once per caption and the output
    layer once over all steps). (b) the anchor: every batch runs the frozen encoder (eval,
    ``no_grad``) on its pairs' pixels, then the tutorial's ``DecoderWithAttention.forward`` written over
    the same modules (captions sorted by length, the batch shrinks as captions end, the attention
    projects the encoder output at every step, the output layer runs per step into a zero-filled
    predictions tensor), loss on ``pack_padded_sequence`` of scores and targets + λ × the doubly
    stochastic penalty. Both start from the same initial weights and see the same batches (the run's
    seeded sampler); (b) rounds the grids to fp16 too. Equivalence check: one epoch of both with
    dropout 0 must end with allclose decoder weights (rtol 1e-2, atol 1e-2; a rare fp16 rounding flip
    between the channels-last and the contiguous convolution makes them differ slightly). Timed
    with dropout 0.5, the contenders' epochs interleaved; reported: epoch 1 (for (a) including the
    extraction) and the median of epochs 2.. . Encoders: ``small-cnn`` (width 128, 8×8 grid) and
    torchvision ``resnet18`` (``weights=None``, 2×2 grid of 512 channels at 64 px).
(2) Beam search (k = 3, 5; at most 20 words; no length penalty) with the small-cnn decoder trained by
    (a), on ``--test-images`` scenes of seed 1: (a) robustlab's ``beam_search`` over all images in one
    call (images whose beams have all ended leave the batch); (b) the anchor's
    ``caption_image_beam_search``: one image at a time, ``k`` rows, a Python loop over steps, a beam
    that emits ``<eos>`` is moved to the finished list and ``k`` shrinks by one; the best finished
    caption wins (beams still live after 20 steps join the finished list, as robustlab keeps them). To
    compare like with like, (b) bans ``<pad>``/``<sos>`` as robustlab does and computes the attention
    keys once per image (the anchor recomputes them every step). Each is warmed up on the same shapes
    and timed ``--repeats`` times, interleaved; reported: the median images/s and the share of images
    where both return the same caption.

Timing: wall seconds with ``torch.set_num_threads(--threads)`` (2 by default).
The tables are written into ``BENCHMARKS.md`` between ``<!-- captioning:begin -->`` and
``<!-- captioning:end -->``; other sections are kept.

Usage: ``python benchmarks/captioning.py [--quick] [--threads 2] [--epochs 3] [--images 200]
[--resnet-images 100] [--test-images 64] [--repeats 3] [--out BENCHMARKS.md]``
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mdtable import machine, table, update_section  # noqa: E402
from robustlab.config import parse_config  # noqa: E402
from robustlab.core.seeding import seed_everything  # noqa: E402
from robustlab.data.frozen_features import extract_features  # noqa: E402
from robustlab.experiment import train_loaders  # noqa: E402
from robustlab.labs.captioning.config import CaptioningConfig  # noqa: E402
from robustlab.labs.captioning.decoder import AttentionDecoder  # noqa: E402
from robustlab.labs.captioning.decoding import NEVER, beam_search  # noqa: E402
from robustlab.labs.captioning.lab import LAB  # noqa: E402
from robustlab.labs.captioning.model import Captioner, grid_annotations  # noqa: E402
from robustlab.labs.captioning.prepare import CaptionRows, build_encoder  # noqa: E402
from robustlab.labs.captioning.scenes import generate_scenes  # noqa: E402
from robustlab.labs.captioning.text import EOS, SOS  # noqa: E402
from robustlab.training import Trainer  # noqa: E402

SIZE, BATCH, MIN_COUNT, MAX_WORDS, BEAM_LENGTH, BEAMS = 64, 64, 3, 40, 20, (3, 5)
RTOL, ATOL = 1e-2, 1e-2


def lab_config(encoder: str, n: int, cache: Path, dropout: float, epochs: int) -> CaptioningConfig:
    """The lab's config of a run on ``n`` shapes scenes over a frozen random ``encoder``."""
    return parse_config({
        "task": "captioning", "seed": 0,
        "data": {"dataset": "shapes", "size": SIZE, "train_images": n, "test_images": 8, "references": 5,
                 "min_count": MIN_COUNT, "max_length": MAX_WORDS, "batch_size": BATCH, "cache": str(cache)},
        "model": {"encoder": encoder, "weights": "random", "dropout": dropout},
        "train": {"epochs": epochs, "patience": None},
    }, "benchmark")


class Contenders:
    """(a) the lab's Trainer on cached grids and (b) the anchor's loop on pixels, same initial
    weights and batches."""

    def __init__(self, encoder: str, n: int, cache: Path, dropout: float, epochs: int) -> None:
        cfg = lab_config(encoder, n, cache, dropout, epochs)
        seed_everything(cfg.seed)
        bundle = LAB.build_data(cfg)
        self.encoder = build_encoder(cfg).eval()
        images = torch.cat([split.images for split in bundle.extras["corpus"].splits.values()])
        t0 = time.perf_counter()  # what build_data spent on the grids of every split, timed again
        extract_features(self.encoder, images, cfg.data.eval_batch_size)
        self.extraction = time.perf_counter() - t0
        meta = LAB.model_meta(cfg, bundle)
        model = LAB.build_model(cfg, meta)
        assert isinstance(model, Captioner) and model.reads_features
        self.cfg, self.bundle, self.vocab = cfg, bundle, bundle.extras["vocabulary"]
        self.decoder0 = copy.deepcopy(model.decoder)
        loader, _ = train_loaders(cfg, bundle)
        self.trainer = Trainer(model, LAB.build_task(cfg, meta), cfg.train, loader, strategy=LAB.build_strategy(cfg))
        cached = bundle.train
        pixels = CaptionRows(bundle.extras["corpus"].splits["train"].images, cached.image, cached.captions,
                             cached.lengths, cached.references)
        self.anchor_loader, _ = train_loaders(cfg, dataclasses.replace(bundle, streams={**bundle.streams,
                                                                                         "train": pixels}))
        self.decoder = copy.deepcopy(self.decoder0)
        group = self.trainer.optimizer.param_groups[0]
        self.optimizer = torch.optim.Adam(self.decoder.parameters(), lr=group["lr"], betas=group["betas"],
                                          eps=group["eps"], weight_decay=group["weight_decay"])
        self.pairs = len(cached)

    def ours(self, epoch: int) -> float:
        t0 = time.perf_counter()
        self.trainer.train_epoch(epoch)
        return time.perf_counter() - t0

    def anchor(self, epoch: int) -> float:
        t0 = time.perf_counter()
        anchor_epoch(self.encoder, self.decoder, self.optimizer, self.anchor_loader, epoch, self.cfg.model.alpha_c,
                     self.cfg.train.grad_clip)
        return time.perf_counter() - t0

    def weight_difference(self) -> tuple[float, bool]:
        """Max |difference| of the two decoders' weights and whether they are allclose."""
        diff, close = 0.0, True
        pairs = zip(self.trainer.model.decoder.state_dict().values(), self.decoder.state_dict().values(), strict=True)
        for x, y in pairs:
            diff = max(diff, float((x.float() - y.float()).abs().max()))
            close = close and torch.allclose(x.float(), y.float(), rtol=RTOL, atol=ATOL)
        return diff, close


def anchor_forward(decoder: AttentionDecoder, encoder_out: Tensor, captions: Tensor, lengths: Tensor
                   ) -> tuple[Tensor, Tensor, list[int], Tensor]:
    """The tutorial's ``DecoderWithAttention.forward`` over ``decoder``'s modules: (scores ``(B, T, V)``,
    sorted captions, decode lengths, alphas ``(B, T, P)``), captions sorted longest first."""
    lengths, order = lengths.sort(descending=True)
    encoder_out, captions = encoder_out[order], captions[order]
    decode_lengths = (lengths - 1).tolist()
    b, p, t_max = encoder_out.shape[0], encoder_out.shape[1], max(decode_lengths)
    embeddings = decoder.embedding(captions)
    mean = encoder_out.mean(1)
    h, c = decoder.init_h(mean), decoder.init_c(mean)
    predictions = torch.zeros(b, t_max, decoder.vocab_size)
    alphas = torch.zeros(b, t_max, p)
    for t in range(t_max):
        bt = sum(n > t for n in decode_lengths)
        enc = encoder_out[:bt]
        alpha = decoder.attention.scores(decoder.attention.keys(enc), h[:bt]).softmax(-1)
        context = torch.sigmoid(decoder.gate(h[:bt])) * (enc * alpha.unsqueeze(2)).sum(1)
        h, c = decoder.lstm(torch.cat([embeddings[:bt, t, :], context], 1), (h[:bt], c[:bt]))
        predictions[:bt, t, :] = decoder.fc(decoder.dropout(h))
        alphas[:bt, t, :] = alpha
    return predictions, captions, decode_lengths, alphas


def anchor_epoch(encoder: torch.nn.Module, decoder: AttentionDecoder, optimizer: torch.optim.Optimizer,
                 loader: torch.utils.data.DataLoader, epoch: int, alpha_c: float, clip: float | None) -> None:
    """One epoch of the tutorial's ``train``: the frozen encoder on every batch's pixels, then the
    decoder, loss on the packed scores and targets + ``alpha_c`` × the doubly stochastic penalty."""
    loader.sampler.set_epoch(epoch)
    decoder.train()
    for pixels, captions, lengths, _ in loader:
        with torch.no_grad():
            grid = encoder(pixels.float() / 255).half().float()
        scores, caps, decode_lengths, alphas = anchor_forward(decoder, grid_annotations(grid), captions, lengths)
        targets = caps[:, 1:]
        scores = pack_padded_sequence(scores, decode_lengths, batch_first=True).data
        targets = pack_padded_sequence(targets, decode_lengths, batch_first=True).data
        loss = F.cross_entropy(scores, targets) + alpha_c * ((1.0 - alphas.sum(1)) ** 2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(decoder.parameters(), clip)
        optimizer.step()


def decoder_epochs(encoder: str, n: int, epochs: int, cache: Path
                   ) -> tuple[list[list[object]], float, bool, float, Contenders]:
    """Rows of the table, the equivalence check's max |weight difference| and allclose, the largest
    relative spread of the later epochs' times, and the timed contenders."""
    check = Contenders(encoder, n, cache / f"{encoder}-check", 0.0, 1)
    check.ours(1)
    check.anchor(1)
    diff, close = check.weight_difference()
    run = Contenders(encoder, n, cache / encoder, 0.5, epochs)
    ours, theirs = [], []
    for epoch in range(1, epochs + 1):
        ours.append(run.ours(epoch))
        theirs.append(run.anchor(epoch))
    ours[0] += run.extraction
    later = (statistics.median(ours[1:]), statistics.median(theirs[1:]))
    spread = max((max(t[1:]) - min(t[1:])) / statistics.median(t[1:]) for t in (ours, theirs))
    p = run.pairs
    out = [["(a) robustlab: Trainer on grids extracted once (fp16)", ours[0], later[0], p / later[0], 1.0],
           ["(b) anchor: tutorial loop, frozen encoder every batch", theirs[0], later[1], p / later[1],
            later[1] / later[0]]]
    return out, diff, close, spread, run


@torch.no_grad()
def anchor_beam_search(decoder: AttentionDecoder, a1: Tensor, beam: int, max_length: int) -> tuple[list[int], float]:
    """sgrvinod's ``caption_image_beam_search`` for one image's annotations ``a1`` ``(P, E)``: the words
    (ids before ``<eos>``) and the log-probability of the best finished caption (see the module
    docstring)."""
    k, v = beam, decoder.vocab_size
    a = a1.unsqueeze(0).expand(k, -1, -1)
    h, c, keys = decoder.start(a)
    prev = torch.full((k,), SOS, dtype=torch.long)
    seqs = torch.zeros(k, 0, dtype=torch.long)
    top = torch.zeros(k)
    done: list[list[int]] = []
    done_scores: list[float] = []
    for step in range(max_length):
        context, _ = decoder.attend(a, keys, h)
        h, c = decoder.lstm(torch.cat([decoder.embedding(prev), context], 1), (h, c))
        lp = decoder.fc(h).log_softmax(-1)
        lp[:, list(NEVER)] = float("-inf")
        scores = top.unsqueeze(1) + lp
        top, idx = scores[0].topk(k) if step == 0 else scores.view(-1).topk(k)
        parent, word = torch.div(idx, v, rounding_mode="floor"), idx % v
        seqs = torch.cat([seqs[parent], word.unsqueeze(1)], 1)
        live = [i for i, w in enumerate(word.tolist()) if w != EOS]
        complete = [i for i in range(len(word)) if i not in live]
        if complete:
            done.extend(seqs[complete].tolist())
            done_scores.extend(top[complete].tolist())
        k -= len(complete)
        if k == 0:
            break
        seqs, top, prev = seqs[live], top[live], word[live]
        h, c = h[parent[live]], c[parent[live]]
        a, keys = a[:k], keys[:k]
    else:  # beams still live after max_length steps compete too (as in robustlab)
        done.extend(seqs.tolist())
        done_scores.extend(top.tolist())
    best = max(range(len(done)), key=done_scores.__getitem__)
    return [w for w in done[best] if w != EOS], done_scores[best]


def beams(decoder: AttentionDecoder, a: Tensor, repeats: int) -> list[list[object]]:
    """Per beam width: rows of (a) batched ``beam_search`` and (b) the anchor's per-image loop."""
    decoder.eval()
    out = []
    n = a.shape[0]
    for k in BEAMS:
        beam_search(decoder, a, k, BEAM_LENGTH)  # warm-up on the timed shapes
        anchor_beam_search(decoder, a[0], k, BEAM_LENGTH)
        fast_t, slow_t = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fast = beam_search(decoder, a, k, BEAM_LENGTH)
            fast_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            slow = [anchor_beam_search(decoder, a[i], k, BEAM_LENGTH) for i in range(n)]
            slow_t.append(time.perf_counter() - t0)
        ours = [row[:m] for row, m in zip(fast.tokens.tolist(), fast.lengths.tolist(), strict=True)]
        differ = [i for i in range(n) if ours[i] != slow[i][0]]
        better = sum(slow[i][1] > float(fast.logprob[i]) for i in differ)
        ips = (n / statistics.median(fast_t), n / statistics.median(slow_t))
        out.append([f"k = {k}", f"(a) robustlab: beam_search, {n} images in one call", ips[0], 1.0, "—"])
        out.append([f"k = {k}", "(b) anchor: one image at a time, shrinking k", ips[1], ips[0] / ips[1],
                    f"{(n - len(differ)) / n:.1%} ({len(differ)} differ; (b)'s log-prob higher in {better})"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 epochs (a check that it runs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=200, help="training scenes of the small-cnn rows")
    parser.add_argument("--resnet-images", type=int, default=100, help="training scenes of the resnet18 rows")
    parser.add_argument("--test-images", type=int, default=64, help="scenes decoded by beam search (one batch)")
    parser.add_argument("--repeats", type=int, default=3, help="timed beam searches per contender and width")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t_start, load = time.perf_counter(), os.getloadavg()[0]
    if args.quick:
        n, n_res, n_test, epochs, repeats = 40, 20, 12, 2, 1
    else:
        n, n_res, n_test, epochs, repeats = (args.images, args.resnet_images, args.test_images, max(args.epochs, 2),
                                             args.repeats)
    with tempfile.TemporaryDirectory(prefix="captioning-bench-") as cache:
        train_rows, diff, close, spread, small = decoder_epochs("small-cnn", n, epochs, Path(cache))
        res_rows, diff_r, close_r, spread_r, res = decoder_epochs("resnet18", n_res, epochs, Path(cache))
    for row in train_rows:
        row.insert(0, f"{n} scenes ({small.pairs} pairs), small-cnn 128 (8×8 grid)")
    for row in res_rows:
        row.insert(0, f"{n_res} scenes ({res.pairs} pairs), resnet18 random (2×2 grid)")
    test = generate_scenes(n_test, size=SIZE, seed=1, n_refs=1).images
    a = grid_annotations(extract_features(small.encoder, test, 128))
    beam_rows = beams(small.trainer.model.decoder, a, repeats)
    spread = max(spread, spread_r)
    wait = os.environ.get("OMP_WAIT_POLICY")
    loaded = (f" Measured on a loaded machine (load average {load:.1f} at the start; later-epoch times of one "
              f"contender varied by up to {spread:.0%}), so read the speed-ups as approximate."
              if spread > 0.15 or load > 0.5 else "")
    loaded += f" Run with `OMP_WAIT_POLICY={wait}`." if wait else ""
    section = (
        f"## Captioning lab: decoder training loop, batched beam search\n\n"
        f"Machine: {machine()}. `python benchmarks/captioning.py{' --quick' if args.quick else ''}`: the lab's "
        f"procedural scenes ({SIZE} px, 5 English references each, 10 % held out; vocabulary {len(small.vocab)} words "
        f"with min count {MIN_COUNT}), one row per (image, reference) pair, the lab's captioner at its default width "
        f"(embed 256, decoder 512, additive attention 256, gate, dropout 0.5) over a frozen random encoder, Adam "
        f"1e-3, clipping 5, batch {BATCH}, CE + doubly stochastic penalty, {epochs} epochs, same initial weights and "
        f"batches. The anchor is a plain-PyTorch reimplementation of sgrvinod's a-PyTorch-Tutorial-to-Image-Captioning "
        f"loop on the same modules (the frozen encoder run on every batch, the attention keys and the output layer "
        f"computed per step; per-image beam search).{loaded}\n\n"
        + table(["scenes, frozen encoder", "decoder training", "epoch 1 s", "epochs 2.. s (median)",
                 "pairs/s (2..)", "speed-up of (a)"], train_rows + res_rows)
        + f"\nFrom the second epoch, the lab's loop is **{train_rows[1][5]:.1f}x** the anchor's speed with the "
        f"small-cnn and **{res_rows[1][5]:.1f}x** with resnet18 (target ≥ 1.0x: "
        f"{'met' if min(train_rows[1][5], res_rows[1][5]) >= 1.0 else 'NOT met'}). Same computation: after one "
        f"epoch with dropout 0 the two decoders' weights are allclose (rtol {RTOL:g}, atol {ATOL:g}): **{close}** / "
        f"**{close_r}**, max |difference| {diff:.2e} / {diff_r:.2e} (both train on fp16-rounded grids).\n\n"
        + table(["beam", "beam search (small-cnn decoder of (a), at most 20 words, no length penalty)", "images/s",
                 "speed-up of (a)", "same caption as (a)"], beam_rows)
        + f"\n{n_test} test scenes (seed 1), median of {repeats} interleaved timings. Batched k = 3 is "
        f"**{beam_rows[1][3]:.1f}x** the per-image loop (target ≥ 5x on a batch of 64: "
        f"{'met' if beam_rows[1][3] >= 5 else 'NOT met'}). Where the captions differ, the cause is the anchor's "
        f"rule: a beam that emits `<eos>` leaves the beam for good and k shrinks, whereas robustlab keeps k beams "
        f"and lets a finished one compete on its score (it can be pushed out by k better live beams), so the two "
        f"searches explore different hypotheses.\n"
        f"\nWhole script: {time.perf_counter() - t_start:.0f} s.\n")
    update_section("captioning", section, args.out)
    sys.stdout.write(section)


if __name__ == "__main__":
    main()
