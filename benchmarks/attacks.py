"""Attack speed and memory against torchattacks, IBM ART and Foolbox: FGSM and PGD-10 per batch.

Two workloads, each on one fixed random batch and one randomly initialised model (weights do not
change the cost of these attacks):

- ``small_cnn`` (1×28×28, batch 128);
- ``resnet18_cifar`` (3×32×32, batch 32).

For each library the same model and batch are attacked with FGSM (eps 8/255) and PGD-10
(eps 8/255, alpha 2/255, one uniform random start). The reference cost, the *floor*, is one forward
and one backward pass w.r.t. the input (cross-entropy), i.e. the least a gradient step can cost;
PGD-10 cannot cost less than 10 floors. Repetitions are interleaved (every contender once per round,
in a rotating order, and the floor three times per round, spread over it) so that load drifts hit
all of them alike; the table reports medians. ART is driven through its public API
(``PyTorchClassifier`` + ``FastGradientMethod`` / ``ProjectedGradientDescentPyTorch``, NumPy in
and out, as its users call it); Foolbox through ``PyTorchModel`` + ``FGSM`` / ``LinfPGD``.

Memory is measured during each contender's call in the first timed round: on CUDA, the growth of
``torch.cuda.max_memory_allocated``; on CPU, the peak growth of the process's resident set size
(``/proc/self/statm``, sampled every ~2 ms by a thread) after ``malloc_trim(0)`` has handed freed
heap pages back to the OS — ``tracemalloc`` does not see torch's allocations, and ``ru_maxrss`` only
ever grows. CPU figures are approximate (allocator caching, page granularity).

Targets: robustlab's PGD-10 ≤ 1.05 × 10 floors, and no slower than torchattacks.

The run fits a time budget (``--budget-min``, default 9 minutes): rounds continue while another one
fits, at least one per workload. On a busy machine, prefer more rounds (``--rounds``) over trusting
one.

    python benchmarks/attacks.py            # full run (several minutes on a CPU), writes BENCHMARKS.md
    python benchmarks/attacks.py --quick    # fewer rounds, a quick check
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mdtable import BENCHMARKS_MD, machine, table, update_section  # noqa: E402
from robustlab.attacks import FGSM, PGD  # noqa: E402
from robustlab.models import build_model  # noqa: E402

EPS, ALPHA, STEPS = 8 / 255, 2 / 255, 10
Runner = Callable[[], object]


@dataclass
class Workload:
    name: str
    arch: str
    channels: int
    size: int
    batch: int
    model: torch.nn.Module = field(init=False)
    x: torch.Tensor = field(init=False)
    y: torch.Tensor = field(init=False)

    def build(self, device: torch.device) -> None:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            self.model = build_model(self.arch, 10, in_channels=self.channels, image_size=self.size).to(device).eval()
        g = torch.Generator().manual_seed(0)
        self.x = torch.rand(self.batch, self.channels, self.size, self.size, generator=g).to(device)
        self.y = torch.randint(0, 10, (self.batch,), generator=g).to(device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- the contenders ---------------------------------------------------------------------------------


def floor_runner(w: Workload) -> Runner:
    def run() -> torch.Tensor:
        x = w.x.detach().requires_grad_(True)
        loss = F.cross_entropy(w.model(x), w.y)
        return torch.autograd.grad(loss, x)[0]

    return run


def robustlab_runners(w: Workload) -> dict[str, Runner]:
    fgsm, pgd = FGSM(eps=EPS), PGD(eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)
    return {"FGSM": lambda: fgsm(w.model, w.x, w.y), "PGD-10": lambda: pgd(w.model, w.x, w.y)}


def torchattacks_runners(w: Workload) -> dict[str, Runner]:
    import torchattacks

    fgsm = torchattacks.FGSM(w.model, eps=EPS)
    pgd = torchattacks.PGD(w.model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)
    return {"FGSM": lambda: fgsm(w.x, w.y), "PGD-10": lambda: pgd(w.x, w.y)}


def art_runners(w: Workload) -> dict[str, Runner]:
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescentPyTorch
    from art.estimators.classification import PyTorchClassifier

    clf = PyTorchClassifier(
        model=w.model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(w.x.shape[1:]),
        nb_classes=10,
        clip_values=(0.0, 1.0),
        device_type="gpu" if w.x.is_cuda else "cpu",
    )
    n = w.x.shape[0]
    fgsm = FastGradientMethod(clf, norm=np.inf, eps=EPS, batch_size=n)
    pgd = ProjectedGradientDescentPyTorch(
        clf, norm=np.inf, eps=EPS, eps_step=ALPHA, max_iter=STEPS, num_random_init=1, batch_size=n, verbose=False
    )
    x_np, y_np = w.x.cpu().numpy(), w.y.cpu().numpy()
    return {"FGSM": lambda: fgsm.generate(x_np, y_np), "PGD-10": lambda: pgd.generate(x_np, y_np)}


def foolbox_runners(w: Workload) -> dict[str, Runner]:
    import foolbox as fb

    fmodel = fb.PyTorchModel(w.model, bounds=(0.0, 1.0), device=w.x.device)
    fgsm, pgd = fb.attacks.FGSM(), fb.attacks.LinfPGD(abs_stepsize=ALPHA, steps=STEPS, random_start=True)
    return {
        "FGSM": lambda: fgsm(fmodel, w.x, w.y, epsilons=EPS),
        "PGD-10": lambda: pgd(fmodel, w.x, w.y, epsilons=EPS),
    }


MODULES = {"torchattacks": "torchattacks", "ART": "art", "Foolbox": "foolbox"}
LIBRARIES: dict[str, Callable[[Workload], dict[str, Runner]]] = {
    "robustlab": robustlab_runners,
    "torchattacks": torchattacks_runners,
    "ART": art_runners,
    "Foolbox": foolbox_runners,
}


# -- measuring --------------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _malloc_trim() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def timed(run: Runner, device: torch.device, memory: bool) -> tuple[float, float | None]:
    """``(seconds, peak memory growth in MiB or None)`` of one call (see the module docstring)."""
    if not memory:
        sync(device)
        t0 = time.perf_counter()
        run()
        sync(device)
        return time.perf_counter() - t0, None
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        t0 = time.perf_counter()
        run()
        sync(device)
        return time.perf_counter() - t0, (torch.cuda.max_memory_allocated(device) - base) / 2**20
    _malloc_trim()  # hand freed heap pages back, so that reused memory shows up as growth again
    base = rss_bytes()
    peak = base
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_bytes())
            time.sleep(0.002)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    try:
        run()
    finally:
        seconds = time.perf_counter() - t0
        stop.set()
        t.join()
    peak = max(peak, rss_bytes())
    return seconds, (peak - base) / 2**20


def bench(
    w: Workload, libs: list[str], max_rounds: int, budget_s: float, device: torch.device
) -> list[dict[str, object]]:
    """Interleaved rounds until ``max_rounds`` or until another round would overrun ``budget_s``
    (at least one round)."""
    runners: dict[tuple[str, str], Runner] = {("floor", "fwd+bwd"): floor_runner(w)}
    for lib in libs:
        for attack, run in LIBRARIES[lib](w).items():
            runners[lib, attack] = run
    keys = list(runners)
    start = time.perf_counter()
    for k in keys:  # warm-up: lazy init, allocator, ART's first-call conversions (PGD shares them)
        if k[1] != "PGD-10":
            runners[k]()
    times: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    mem: dict[tuple[str, str], float] = {}
    floor_key, others = keys[0], keys[1:]
    r, durations = 0, []
    while r < max_rounds:
        elapsed = time.perf_counter() - start
        if r > 0 and elapsed + statistics.mean(durations) > budget_s:
            break
        t_round = time.perf_counter()
        rotated = others[r % len(others) :] + others[: r % len(others)]
        # the floor is every ratio's denominator: time it three times per round, spread over the round
        third = max(1, len(rotated) // 3)
        order = [floor_key, *rotated[:third], floor_key, *rotated[third : 2 * third], floor_key, *rotated[2 * third :]]
        for j, k in enumerate(order):
            seconds, peak = timed(runners[k], device, memory=r == 0 and (k != floor_key or j == 0))
            times[k].append(seconds)
            if peak is not None:
                mem[k] = peak
        durations.append(time.perf_counter() - t_round)
        r += 1
        print(f"  {w.name}: round {r} done ({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
    floor = statistics.median(times["floor", "fwd+bwd"])
    ours = {a: statistics.median(times["robustlab", a]) for (lib, a) in keys if lib == "robustlab"}
    rows = []
    for k in keys:
        lib, attack = k
        med = statistics.median(times[k])
        rows.append(
            {
                "workload": w.name,
                "library": lib,
                "attack": attack,
                "ms": 1000 * med,
                "floors": med / floor,
                "vs_robustlab": med / ours[attack] if attack in ours else None,
                "mem_mb": mem[k],
                "rounds": r,
            }
        )
    return rows


def render(rows: list[dict[str, object]], args: argparse.Namespace, device: torch.device, seconds: float) -> str:
    body = [
        "## Attack speed: FGSM and PGD-10 per batch",
        "",
        f"Machine: {machine()}; device: {device}. Written by `python benchmarks/attacks.py"
        f"{' '.join(['', *sys.argv[1:]])}` in {seconds / 60:.1f} min; interleaved rounds, medians. "
        "*Floor* = one forward + backward pass w.r.t. the input; PGD-10 cannot cost less than 10 floors. "
        "Memory = peak growth during the first timed call "
        + (
            "(`torch.cuda.max_memory_allocated`)."
            if device.type == "cuda"
            else "(process RSS sampled every ~2 ms after `malloc_trim`; approximate)."
        ),
        "",
    ]
    for wl in dict.fromkeys(r["workload"] for r in rows):
        sub = [r for r in rows if r["workload"] == wl]
        n = sub[0]["rounds"]
        body.append(f"**{wl}** ({n} round{'s' if n != 1 else ''})")
        body.append("")
        body.append(
            table(
                ["library", "attack", "ms/batch (median)", "× floor", "× robustlab", "peak mem (MiB)"],
                [
                    [
                        r["library"],
                        r["attack"],
                        f"{r['ms']:.1f}",
                        f"{r['floors']:.2f}",
                        "—" if r["vs_robustlab"] is None else f"{r['vs_robustlab']:.2f}",
                        f"{r['mem_mb']:.1f}",
                    ]
                    for r in sub
                ],
            )
        )
        pgd = next((r for r in sub if r["library"] == "robustlab" and r["attack"] == "PGD-10"), None)
        ta = next((r for r in sub if r["library"] == "torchattacks" and r["attack"] == "PGD-10"), None)
        if pgd is not None:
            ok = pgd["floors"] <= 1.05 * STEPS
            line = f"Target PGD-10 ≤ 10.5 floors: {pgd['floors']:.2f} → {'met' if ok else '**not met**'}"
            if ta is not None:
                ok2 = pgd["ms"] <= ta["ms"]
                line += (
                    f"; no slower than torchattacks: {ta['ms'] / pgd['ms']:.2f}× → {'met' if ok2 else '**not met**'}"
                )
            body += [line + ".", ""]
    return "\n".join(body)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds and a 3-minute budget, for a quick check")
    p.add_argument("--rounds", type=int, default=None, help="max interleaved rounds for small_cnn (default 9, quick 2)")
    p.add_argument(
        "--resnet-rounds", type=int, default=None, help="max interleaved rounds for resnet18_cifar (default 5, quick 1)"
    )
    p.add_argument(
        "--budget-min",
        type=float,
        default=None,
        help="time budget in minutes (default 9, quick 3): 30%% for small_cnn, 70%% for resnet18_cifar; "
        "rounds stop early when the next one would overrun it (at least one round each)",
    )
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--libs", default=",".join(LIBRARIES), help="comma-separated subset of " + ",".join(LIBRARIES))
    p.add_argument("--workloads", default="small_cnn,resnet18_cifar")
    p.add_argument("--out", type=Path, default=BENCHMARKS_MD, help="Markdown file to update")
    args = p.parse_args(argv)
    if args.rounds is None:
        args.rounds = 2 if args.quick else 9
    if args.resnet_rounds is None:
        args.resnet_rounds = 1 if args.quick else 5
    if args.budget_min is None:
        args.budget_min = 3.0 if args.quick else 9.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    libs = []
    for lib in args.libs.split(","):
        if lib not in LIBRARIES:
            p = ", ".join(LIBRARIES)
            raise SystemExit(f"unknown library {lib!r}; choose from {p}")
        module = MODULES.get(lib)
        if module and importlib.util.find_spec(module) is None:
            print(f"skipping {lib}: {module} is not installed", file=sys.stderr)
            continue
        libs.append(lib)
    all_workloads = {
        "small_cnn": Workload("small_cnn, 1×28×28, batch 128", "small_cnn", 1, 28, 128),
        "resnet18_cifar": Workload("resnet18_cifar, 3×32×32, batch 32", "resnet18_cifar", 3, 32, 32),
    }
    t0 = time.perf_counter()
    rows: list[dict[str, object]] = []
    for key in args.workloads.split(","):
        w = all_workloads[key]
        w.build(device)
        share = 0.3 if key == "small_cnn" else 0.7
        budget = share * 60 * args.budget_min
        rows += bench(w, libs, args.rounds if key == "small_cnn" else args.resnet_rounds, budget, device)
    text = render(rows, args, device, time.perf_counter() - t0)
    update_section("attacks", text, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
