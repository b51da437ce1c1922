"""Training and evaluation throughput (images/s) of robustlab's trainer and defenses.

For the small CNN (1x28x28, batch 128) and the CIFAR ResNet-18 (3x32x32, batch 64): clean training,
fgsm-rs, free (m=4), pgd-at (k = 7 and 10) and PGD-10 evaluation; fp32, and bf16 autocast where a GPU
is present; 1 process, and 2 processes under torchrun (DDP; gloo on CPU, nccl on GPUs).
Targets (issue 8): fgsm-rs epoch <= 2.2x a clean epoch; pgd-at with k steps <= (k + 1.2)x a clean epoch.

    python benchmarks/throughput.py            # full table, writes BENCHMARKS.md
    python benchmarks/throughput.py --quick    # fewer batches, small CNN only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mdtable import machine, table, update_section  # noqa: E402
from robustlab.attacks import PGD  # noqa: E402
from robustlab.config import TrainConfig  # noqa: E402
from robustlab.core import distributed as D  # noqa: E402
from robustlab.data import DatasetInfo, TensorImageDataset, make_loader  # noqa: E402
from robustlab.defenses import build_defense  # noqa: E402
from robustlab.labs.classification.task import ClassificationTask  # noqa: E402
from robustlab.models import build_model  # noqa: E402
from robustlab.training import Trainer  # noqa: E402

MODELS = {"small_cnn": (1, 28, 128), "resnet18_cifar": (3, 32, 64)}
BATCHES = {"small_cnn": 8, "resnet18_cifar": 2}
"""Batches per measurement by default (the ResNet-18 takes seconds per batch on a CPU)."""
STRATEGIES = {
    "clean": ("none", {}),
    "fgsm-rs": ("fgsm-rs", {"eps": 8 / 255, "guard_batch": 0}),
    "free (m=4)": ("free", {"eps": 8 / 255, "replays": 4}),
    "pgd-at k=7": ("pgd-at", {"eps": 8 / 255, "steps": 7}),
    "pgd-at k=10": ("pgd-at", {"eps": 8 / 255, "steps": 10}),
}


def _data(c: int, s: int, n: int) -> TensorImageDataset:
    g = torch.Generator().manual_seed(0)
    info = DatasetInfo("synthetic", 10, c, (s, s), (0.5,) * c, (0.25,) * c, n, 0, "benchmark data")
    return TensorImageDataset(torch.randint(0, 256, (n, c, s, s), generator=g, dtype=torch.uint8),
                              torch.randint(0, 10, (n,), generator=g), info)


def train_rate(arch: str, strategy: str, batches: int, amp: str, device: torch.device) -> float:
    """Images/s of one training epoch of ``batches`` batches (after one warm-up epoch), all ranks."""
    c, s, bs = MODELS[arch]
    ds = _data(c, s, bs * batches * D.world_size())
    sampler = torch.utils.data.distributed.DistributedSampler(ds, D.world_size(), D.rank(), shuffle=True)
    loader = make_loader(ds, bs, sampler=sampler)
    model = build_model(arch, 10, in_channels=c, image_size=s)
    name, params = STRATEGIES[strategy]
    tr = Trainer(model, ClassificationTask(10), TrainConfig(epochs=2, amp=amp), loader,
                 strategy=build_defense(name, **params), device=device)
    tr.train_epoch(1)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    tr.train_epoch(2)
    _sync(device)
    return len(ds) / (time.perf_counter() - t0)


def eval_rate(arch: str, batches: int, amp: str, device: torch.device) -> float:
    """Images/s of PGD-10 (L-inf, 8/255) over ``batches`` batches on this rank's shard."""
    c, s, bs = MODELS[arch]
    model = build_model(arch, 10, in_channels=c, image_size=s).to(device).eval()
    x = torch.rand(bs, c, s, s, device=device)
    y = torch.randint(0, 10, (bs,), device=device)
    atk = PGD(eps=8 / 255, alpha=2 / 255, steps=10)
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if amp == "bf16" else torch.autocast(device.type,
                                                                                                 enabled=False)
    with ctx:
        atk(model, x, y)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(batches):
            atk(model, x, y)
        _sync(device)
    return bs * batches * D.world_size() / (time.perf_counter() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    D.barrier()


def measure(archs: list[str], batches: dict[str, int], amps: list[str]) -> list[dict]:
    """Rows ``{model, amp, what, img_s, x_clean}`` with ``batches[arch]`` batches per measurement."""
    device = D.local_device(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    rows = []
    for arch in archs:
        for amp in amps:
            clean = None
            for strategy in STRATEGIES:
                rate = train_rate(arch, strategy, batches[arch], amp, device)
                clean = clean or rate
                rows.append({"model": arch, "amp": amp, "what": f"train {strategy}", "img_s": rate,
                             "x_clean": clean / rate})
            rate = eval_rate(arch, batches[arch], amp, device)
            rows.append({"model": arch, "amp": amp, "what": "eval PGD-10", "img_s": rate, "x_clean": None})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small CNN only, fewer batches")
    ap.add_argument("--batches", type=int, default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--archs", default=None)
    ap.add_argument("--no-ddp", action="store_true", help="skip the 2-process measurement")
    args = ap.parse_args()
    t_start = time.perf_counter()
    archs = args.archs.split(",") if args.archs else (["small_cnn"] if args.quick else list(MODELS))
    if args.batches:
        batches = dict.fromkeys(archs, args.batches)
    else:
        batches = {a: max(2, BATCHES[a] // 2) if args.quick else BATCHES[a] for a in archs}
    gpu = torch.cuda.is_available()
    amps = ["none", "bf16"] if gpu else ["none"]
    if args.worker:  # one rank of a torchrun launch
        D.init_from_env("cuda" if gpu else "cpu")
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // D.world_size()))
        rows = measure(archs, batches, amps[:1])
        if D.is_main():
            print(json.dumps(rows))  # noqa: T201 - the parent reads this line
        return
    rows = [dict(r, procs=1) for r in measure(archs, batches, amps)]
    if not args.no_ddp:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
               "--worker", "--archs", ",".join(archs), *(["--quick"] if args.quick else []),
               *(["--batches", str(args.batches)] if args.batches else [])]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        rows += [dict(r, procs=2) for r in json.loads(out)]
    t_total = time.perf_counter() - t_start
    header = ["model", "procs", "amp", "what", "images/s", "time vs clean epoch"]
    body = [[r["model"], r["procs"], r["amp"], r["what"], round(r["img_s"], 1),
             "" if r["x_clean"] is None else f"{r['x_clean']:.2f}x"] for r in rows]
    text = (f"## Throughput (`python benchmarks/throughput.py{' --quick' if args.quick else ''}`)\n\n"
            f"Machine: {machine()}. Synthetic data, "
            + ", ".join(f"{a}: {n} batches of {MODELS[a][2]}" for a, n in batches.items())
            + " per measurement, after a warm-up epoch of as many; "
            "2 processes = torchrun DDP on the same machine (gloo on CPU), threads split between ranks.\n"
            f"Total {t_total / 60:.1f} min. "
            "Targets: fgsm-rs <= 2.2x a clean epoch; pgd-at k steps <= (k + 1.2)x; 2 GPUs >= 1.7x one.\n\n"
            + table(header, body))
    update_section("throughput", text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
