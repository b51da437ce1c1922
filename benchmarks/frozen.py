"""Frozen-features lab: head training on cached tokens vs recomputing the frozen backbone every epoch,
and frozen-token extraction throughput vs a naive loop.

Data: ``--tiles`` procedural tiles (``generate_tiles``, 112 px, seed 0, half with panels). Backbone:
timm ``vit_small_patch14_reg4_dinov2`` at the offline recipe's width (embed 96, depth 4, 3 heads),
random-init, frozen; head: the lab's ``AttentionHead`` (width 96, 4 heads, dropout 0.1), AdamW 1e-3,
batch 64, cross-entropy, both contenders from the same initial weights and the same batch order.

(1) Head epochs. (a) robustlab: the tokens are extracted once (``extract_features``: inference mode,
    channels-last, batches of 128, stored fp16) and every epoch trains the head on them; (b) the plain
    loop: every batch runs the frozen backbone (under ``no_grad``) on the pixels, then the head. (b)
    rounds the backbone's output to fp16 too, so both train on bit-identical inputs: the final head
    weights must be identical (checked). Reported: seconds of epoch 1 (for (a) including the
    extraction) and the median of epochs 2.. ; target: (a) at least 5x faster from the second epoch.
(2) Extraction: images/s of ``extract_features`` vs a naive loop (one image per forward, autograd on,
    contiguous NCHW); tokens compared (max abs difference).

Timing: wall seconds with ``torch.set_num_threads(--threads)`` (2 by default), after a warm-up.
The tables are written into ``BENCHMARKS.md`` between ``<!-- frozen:begin -->`` and
``<!-- frozen:end -->``; other sections are kept.

The head-epoch rows are repeated with the backbone at DINOv2 ViT-S/14's width (embed 384, depth 12,
6 heads; 22 M parameters) on ``--full-tiles`` tiles of 224 px.

Usage: ``python benchmarks/frozen.py [--quick] [--threads 2] [--epochs 4] [--tiles 1000] [--full-tiles 128]
[--out BENCHMARKS.md]``
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mdtable import machine, table, update_section  # noqa: E402
from robustlab.data.frozen_features import extract_features  # noqa: E402
from robustlab.labs.frozen.backbones import Backbone, seeded_vit  # noqa: E402
from robustlab.labs.frozen.head import AttentionHead  # noqa: E402
from robustlab.labs.frozen.tiles import generate_tiles  # noqa: E402

ARCH, SIZE, BATCH, LR, TARGET = "vit_small_patch14_reg4_dinov2", 112, 64, 1e-3, 5.0


def _orders(n: int, epochs: int) -> list[list[torch.Tensor]]:
    out = []
    for e in range(epochs):
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(e))
        out.append(list(perm.split(BATCH)))
    return out


def _train(head: AttentionHead, batches_of_epoch, labels: torch.Tensor, orders) -> tuple[list[float], AttentionHead]:
    """Train ``head`` for ``len(orders)`` epochs; ``batches_of_epoch(idx)`` gives the tokens of rows
    ``idx``; returns the seconds of every epoch."""
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(head.parameters(), lr=LR)
    head.train()
    times = []
    for order in orders:
        t0 = time.perf_counter()
        for idx in order:
            loss = F.cross_entropy(head(batches_of_epoch(idx)).logits, labels[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - t0)
    return times, head


def head_epochs(backbone: Backbone, head0: AttentionHead, images: torch.Tensor, labels: torch.Tensor,
                epochs: int) -> tuple[list[list[object]], bool]:
    orders = _orders(len(images), epochs)
    t0 = time.perf_counter()
    tokens = extract_features(backbone, images, 128)
    extraction = time.perf_counter() - t0
    cached_times, cached = _train(copy.deepcopy(head0), lambda idx: tokens[idx].float(), labels, orders)
    cached_times[0] += extraction

    def recompute(idx: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return backbone(images[idx].float() / 255).half().float()

    plain_times, plain = _train(copy.deepcopy(head0), recompute, labels, orders)
    same = all(torch.equal(a, b) for a, b in zip(cached.state_dict().values(), plain.state_dict().values(),
                                                 strict=True))
    later = (statistics.median(cached_times[1:]), statistics.median(plain_times[1:]))
    rows = [["(a) robustlab: tokens cached once (fp16)", cached_times[0], later[0], len(images) / later[0], 1.0],
            ["(b) plain loop: backbone every batch", plain_times[0], later[1], len(images) / later[1],
             later[1] / later[0]]]
    return rows, same


def extraction(backbone: Backbone, images: torch.Tensor, naive_n: int) -> tuple[list[list[object]], float]:
    extract_features(backbone, images[:128], 128)  # warm-up
    t0 = time.perf_counter()
    fast = extract_features(backbone, images, 128)
    t_fast = time.perf_counter() - t0
    backbone.eval()
    t0 = time.perf_counter()
    naive = torch.cat([backbone(images[i : i + 1].float() / 255).detach() for i in range(naive_n)])
    t_naive = time.perf_counter() - t0
    diff = float((fast[:naive_n].float() - naive).abs().max())
    rows = [["(a) extract_features: inference mode, channels-last, batch 128", len(images) / t_fast, 1.0],
            ["(b) naive loop: one image per forward, autograd on", naive_n / t_naive,
             (len(images) / t_fast) / (naive_n / t_naive)]]
    return rows, diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 tiles, 3 epochs (a check that it runs)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--tiles", type=int, default=1000)
    parser.add_argument("--full-tiles", type=int, default=128, help="tiles of the ViT-S/14 rows")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "BENCHMARKS.md")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n, epochs = (300, 3) if args.quick else (args.tiles, max(args.epochs, 2))
    tiles = generate_tiles(n, SIZE, seed=0)
    backbone = Backbone(seeded_vit(ARCH, SIZE, 0, 96, 4, 3))
    torch.manual_seed(1)
    rows, same = head_epochs(backbone, AttentionHead(backbone.layout, backbone.dim, 96, 4), tiles.images,
                             tiles.labels, epochs)
    speedup = rows[1][4]
    for row in rows:
        row.insert(0, f"{n} tiles, {SIZE} px, embed 96 × depth 4")
    # the real DINOv2 ViT-S/14 width (22 M parameters) at 224 px, on fewer tiles
    n_full = 64 if args.quick else args.full_tiles
    big = generate_tiles(n_full, 224, seed=0)
    vit_s = Backbone(seeded_vit(ARCH, 224, 0))
    torch.manual_seed(1)
    full_rows, same_full = head_epochs(vit_s, AttentionHead(vit_s.layout, vit_s.dim, 96, 4), big.images, big.labels,
                                       2 if args.quick else 3)
    for row in full_rows:
        row.insert(0, f"{n_full} tiles, 224 px, ViT-S/14 (embed 384 × depth 12)")
    ext_rows, diff = extraction(backbone, tiles.images, min(n, 200))
    section = (
        f"## Frozen-features lab: head epochs on cached tokens, token extraction\n\n"
        f"Machine: {machine()}. `python benchmarks/frozen.py{' --quick' if args.quick else ''}`: procedural "
        f"tiles, frozen random-init {ARCH} at the offline recipe's width (embed 96, depth 4, 3 heads; {epochs} epochs) "
        f"and at DINOv2 ViT-S/14's (3 epochs), the lab's attention head (width 96, 4 heads), AdamW {LR:g}, batch "
        f"{BATCH}, same initial weights and batch order.\n\n"
        + table(["tiles, backbone", "head training", "epoch 1 s", "epochs 2.. s (median)", "tiles/s (2..)",
                 "speed-up vs (a)"], rows + full_rows)
        + f"\nFrom the second epoch, caching is **{speedup:.1f}x** faster at the offline width (target >= {TARGET:g}x: "
        f"{'met' if speedup >= TARGET else 'NOT met'}) and **{full_rows[1][5]:.0f}x** with ViT-S/14; final head "
        f"weights identical: **{same}** / **{same_full}** (both contenders train on the same fp16-rounded tokens).\n\n"
        + table(["token extraction", "images/s", "speed-up of (a)"], ext_rows)
        + f"\nMax |token difference| (a) fp16 vs (b) fp32 on the first {min(n, 200)} tiles: {diff:.2e}.\n")
    update_section("frozen", section, args.out)
    sys.stdout.write(section)


if __name__ == "__main__":
    main()
