"""Robust accuracy with per-sample worst case over attacks and an exact early exit.

What is measured (``K`` attacks in the order of ``cfg.attacks``, ``M`` budgets ``e_1 < … < e_M``)
----------------------------------------------------------------------------------------------
For a point ``i``, let ``F[k, m, i]`` be "attack ``k`` with budget ``e_m`` produced an input
``x_adv`` that the evaluator itself re-classified as wrong, with ``‖x_adv − x‖ ≤ e_m`` and
``x_adv ∈ [0, 1]``" (a verified adversarial example). For a minimal-perturbation attack
(``cw-l2``, ``deepfool``), run once without budget, ``F[k, m, i]`` is "its adversarial example has
norm ≤ ``e_m`` in the evaluation's norm".

A point is *fooled for attack k at eps e_m* when some attack ``j ≤ k`` fooled it at some budget
``e_m' ≤ e_m`` (or it is misclassified clean)::

    C[k, m] = ¬clean_correct ∨ OR_{j ≤ k, m' ≤ m} F[j, m']

This uses only adversarial examples that were computed and verified: an example found with budget
``e_m'`` lies inside every larger ball. With ``cfg.per_attack = "standalone"`` (the default) the row
of attack ``k`` at ``e_m`` reports that attack *on its own* (``C[k, m] = C[k, m-1] ∨ F[k, m]``: only
its own smaller budgets count as known); with ``"cumulative"`` it reports the robust accuracy
*against this attack and every attack listed before it* (AutoAttack's convention, ``C[k, m] = C[k-1,
m] ∨ C[k, m-1] ∨ F[k, m]``), which lets early exit skip every point an earlier attack already
fooled. Either way the worst case at ``e_m`` is ``¬(∨_k C[k, m])``: robust only if every attack, at
every budget up to ``e_m``, failed.

Early exit (``cfg.early_exit``)
-------------------------------
``C[k, m] = C[k-1, m] ∨ C[k, m-1] ∨ F[k, m]``, so ``F[k, m, i]`` is only needed where
``C[k-1, m]`` and ``C[k, m-1]`` are both false. Budgets are processed in increasing order and
attacks in list order; each attack runs only on those points (never on points misclassified clean),
and iterative attacks stop iterating on a point once it is fooled (``stop_on_success``). Without
early exit every attack runs on every point, for every step. Both give the same ``C``, hence
identical clean, per-attack and worst-case accuracies, per-sample masks, per-class tables and the
diagonal and row sums of the adversarial confusion matrix, provided the attacks are deterministic per
row: deterministic attacks, fitted ones (``uap``), or random ones whose ``__call__`` accepts
``active=`` (random draws made for the full batch). What may differ is *which* adversarial example
is kept for a fooled point (early exit keeps PGD's first successful iterate, the full run its last):
that moves points between off-diagonal cells of the adversarial confusion matrix and changes the
norm statistics of the rows, never whether a point is fooled. Minimal-perturbation attacks always
run on every clean-correct point (their norm distribution is reported). Floating-point results can
differ in the last bits between batch compositions; a point exactly on the decision boundary could
in principle flip, which the tests have never observed.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from robustlab.attacks.norms import geometry
from robustlab.config import EvalConfig
from robustlab.core import distributed as D
from robustlab.core.errors import RobustlabError
from robustlab.core.precision import autocast_context
from robustlab.core.progress import bar, bars_enabled, log
from robustlab.data import make_loader, subset
from robustlab.evaluation import flags as F
from robustlab.evaluation.metrics import (
    confusion_matrix,
    derive_seed,
    model_dtype,
    noisy_correct,
    norm_summary,
    per_class_accuracy,
    predict,
    superclass_accuracy,
)
from robustlab.evaluation.runner import (
    AttackFactory,
    AttackPlan,
    check_threat_model,
    fit_attacks,
    make_plans,
    run_attack,
)
from robustlab.evaluation.sanity import sanity_measurements
from robustlab.evaluation.state import fingerprint, load_state, save_state

N_EXAMPLES = 16
"""How many leading images keep their adversarial examples for figures (by default)."""

BatchCallback = Callable[[int, int], None]


@dataclass
class EvaluationResult:
    """Everything :func:`evaluate_robustness` measured.

    Per-sample tensors (CPU, length ``N`` = number of evaluated images, in dataset order):

    - ``labels`` int64, ``clean_pred`` int64, ``clean_correct`` bool;
    - ``robust_correct[attack][eps]`` bool: robust against this attack and every earlier one, at
      every budget ≤ eps (see the module docstring);
    - ``worst_case[eps]`` bool: robust against every attack at every budget ≤ eps;
    - ``adv_pred[eps]`` int64: the prediction on the first verified adversarial example found within
      eps (the clean prediction where none was found) — the adversarial confusion matrix;
    - ``min_norms[attack]`` float: for minimal-perturbation attacks, the norm of the adversarial
      perturbation in the attack's own norm (``inf``: none found; ``nan``: misclassified clean);
    - ``noise_correct[sigma]`` bool: correct under Gaussian noise of std ``sigma``.

    ``examples`` holds the first images for figures: ``x`` ``(n, C, H, W)``, ``y``, ``clean_pred``,
    ``x_adv[attack]`` and ``adv_pred[attack]`` (each attack alone at the largest eps).
    ``summary`` is the JSON (see :meth:`to_json`).
    """

    attacks: list[str]
    eps: list[float]
    norm: str
    class_names: list[str]
    labels: Tensor
    clean_pred: Tensor
    clean_correct: Tensor
    robust_correct: dict[str, dict[float, Tensor]]
    worst_case: dict[float, Tensor]
    adv_pred: dict[float, Tensor]
    min_norms: dict[str, Tensor]
    noise_correct: dict[float, Tensor]
    examples: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def clean_accuracy(self) -> float:
        return float(self.clean_correct.double().mean()) if self.clean_correct.numel() else 0.0

    @property
    def flags(self) -> list[dict[str, str]]:
        return list(self.summary.get("flags", []))

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready summary (a deep copy). Accuracies are fractions in [0, 1], eps in pixel units::

            clean_accuracy, n_samples, norm, attacks, eps,
            robust: [{attack, norm, eps, eps_255 (L∞: eps·255, 2 decimals; L2: null), accuracy
                      (against this attack and the ones before it), success_rate (fooled / clean-correct),
                      mean_norm, median_norm (perturbation norm of the points this row newly fooled),
                      newly_fooled, attacked (points the attack ran on), seconds}],
            worst_case: [{eps, eps_255, accuracy}],
            noise: [{sigma, accuracy}],
            per_class: {class: {clean, robust (worst case, largest eps), n}},
            superclass: null | {clean_accuracy, robust_accuracy, per_superclass: {name: {clean, robust, n}}},
            confusion: {clean: K×K, adversarial: K×K | null, eps},   # rows true, columns predicted
            min_perturbation: {attack: {norm, found, n, mean, median, quantiles: {"0.1": …, …}}},
            early_exit: {enabled, attacked_points, skipped_points},
            sanity: null | {...} (see robustlab.evaluation.sanity.sanity_measurements),
            flags: [{code, severity, message, remedy}],
            sanity_seconds, eval_seconds
        """
        return copy.deepcopy(self.summary)


class _Evaluator:
    """One evaluation: per-batch attack passes, state keeping and the final summary."""

    def __init__(
        self,
        model: nn.Module,
        cfg: EvalConfig,
        plans: list[AttackPlan],
        device: torch.device,
        amp: str,
        seed: int,
    ) -> None:
        self.model, self.cfg, self.plans = model, cfg, plans
        self.device, self.amp, self.seed = device, amp, seed
        self.eps = sorted({float(e) for e in cfg.eps})
        self.sigmas = [float(s) for s in cfg.noise_sigma]
        self.early = cfg.early_exit
        self.standalone = cfg.per_attack == "standalone"
        self.geom = geometry(cfg.norm)
        self.minimal_idx = [k for k, p in enumerate(plans) if p.minimal]

    # -- per-sample storage -----------------------------------------------------------------------

    def empty_state(self, n: int) -> dict[str, Any]:
        k, m = len(self.plans), len(self.eps)
        return {
            "next_batch": 0,
            "clean_pred": torch.zeros(n, dtype=torch.long),
            "cum": torch.zeros(k, m, n, dtype=torch.bool),
            "adv_pred": torch.zeros(m, n, dtype=torch.long),
            "new_norm": torch.full((k, m, n), float("nan")),
            "min_norm": torch.full((len(self.minimal_idx), n), float("nan")),
            "noise": torch.zeros(len(self.sigmas), n, dtype=torch.bool),
            "attacked": torch.zeros(k, m, dtype=torch.long),
            "seconds": torch.zeros(k, m, dtype=torch.float64),
        }

    # -- one batch -------------------------------------------------------------------------------

    def _attack(
        self, k: int, eps: float | None, x: Tensor, y: Tensor, todo: Tensor, seed: int
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Run plan ``k`` on rows ``todo``: ``(pred (B,), verified fooled (B,), eval-norm norms (B,),
        native norms (B,))``; rows outside ``todo`` get pred −1, not fooled, nan norms."""
        plan = self.plans[k]
        attack = plan.build(eps, seed, self.early)
        with autocast_context(self.device, self.amp):
            x_adv = run_attack(attack, self.model, x, y, todo)
        idx = todo.nonzero().squeeze(1)
        xa, xo = x_adv[idx], x[idx]
        delta = (xa - xo).float()
        norms = self.geom.norms(delta)
        check_threat_model(plan.name, xo, xa, eps, self.cfg.norm, norms)
        native = norms if plan.native_norm() == self.cfg.norm else geometry(plan.native_norm()).norms(delta)
        p_rows = predict(self.model, xa, self.amp)
        pred = torch.full_like(y, -1)
        pred[idx] = p_rows
        fooled = torch.zeros_like(todo)
        fooled[idx] = p_rows != y[idx]
        nrm = torch.full(y.shape, float("nan"), device=y.device)
        nat = torch.full(y.shape, float("nan"), device=y.device)
        nrm[idx], nat[idx] = norms, native
        return pred, fooled, nrm, nat

    def run_batch(self, x: Tensor, y: Tensor, batch_seed: int, acc: dict[str, Any], rows: slice) -> None:
        """Evaluate one batch ``x`` ``(B, C, H, W)``, ``y`` ``(B,)``; write its rows of ``acc``."""
        dev = x.device
        clean_pred = predict(self.model, x, self.amp)
        correct = clean_pred == y
        k_n, m_n, b = len(self.plans), len(self.eps), y.shape[0]
        cum = torch.zeros(k_n, m_n, b, dtype=torch.bool, device=dev)
        adv_pred = torch.empty(m_n, b, dtype=torch.long, device=dev)
        new_norm = torch.full((k_n, m_n, b), float("nan"), device=dev)
        attacked = torch.zeros(k_n, m_n, dtype=torch.long)
        seconds = torch.zeros(k_n, m_n, dtype=torch.float64)
        minimal: dict[int, tuple[Tensor, Tensor]] = {}  # k -> (pred, eval-norm norm, inf if not found)
        min_native = torch.full((len(self.minimal_idx), b), float("nan"), device=dev)
        everyone = torch.ones_like(correct)

        for m, e in enumerate(self.eps):
            prev_k = ~correct  # C[k-1, m]
            wc_found = ~correct if m == 0 else cum[:, m - 1].any(0)  # worst-case fooled so far
            adv_pred[m] = clean_pred if m == 0 else adv_pred[m - 1]
            for k, plan in enumerate(self.plans):
                prev_m = ~correct if m == 0 else cum[k, m - 1]  # C[k, m-1]
                # standalone: each attack is judged on its own (only its smaller budgets count as known)
                known = prev_m if self.standalone else prev_k | prev_m
                t0 = time.perf_counter()
                if plan.minimal:
                    if k not in minimal:
                        todo = correct if self.early else everyone
                        pred, fooled, nrm, nat = self._attack(k, None, x, y, todo, derive_seed(batch_seed, plan.name))
                        ok = fooled & correct
                        minimal[k] = (pred, torch.where(ok, nrm, torch.full_like(nrm, float("inf"))))
                        j = self.minimal_idx.index(k)
                        min_native[j] = torch.where(ok, nat, torch.full_like(nat, float("inf")))
                        min_native[j][~correct] = float("nan")
                        attacked[k, m] += int(todo.sum())
                    pred, min_norm = minimal[k]
                    fooled = min_norm <= e
                    nrm = min_norm
                elif e == 0:
                    pred = clean_pred
                    fooled = torch.zeros_like(correct)
                    nrm = torch.zeros(b, device=dev)
                else:
                    todo = ~known if self.early else everyone
                    if bool(todo.any()):
                        pred, fooled, nrm, _ = self._attack(k, e, x, y, todo, derive_seed(batch_seed, plan.name, m))
                        fooled = fooled & correct
                        attacked[k, m] += int(todo.sum())
                    else:
                        pred, fooled, nrm = clean_pred, torch.zeros_like(correct), torch.zeros(b, device=dev)
                seconds[k, m] += time.perf_counter() - t0
                new = fooled & ~known
                cum[k, m] = known | fooled
                new_norm[k, m] = torch.where(new, nrm, new_norm[k, m])
                first = fooled & ~wc_found
                adv_pred[m] = torch.where(first, pred, adv_pred[m])
                wc_found |= fooled
                prev_k = cum[k, m]

        acc["clean_pred"][rows] = clean_pred.cpu()
        acc["cum"][:, :, rows] = cum.cpu()
        acc["adv_pred"][:, rows] = adv_pred.cpu()
        acc["new_norm"][:, :, rows] = new_norm.cpu()
        acc["min_norm"][:, rows] = min_native.cpu()
        acc["noise"][:, rows] = noisy_correct(self.model, x, y, self.sigmas, batch_seed, self.amp).cpu()
        acc["attacked"] += attacked
        acc["seconds"] += seconds

    # -- examples for figures ----------------------------------------------------------------------

    def examples(self, x: Tensor, y: Tensor) -> dict[str, Any]:
        """Each attack alone at the largest eps (or without eps) on the first images."""
        clean_pred = predict(self.model, x, self.amp)
        out: dict[str, Any] = {"x": x.cpu(), "y": y.cpu(), "clean_pred": clean_pred.cpu(), "x_adv": {},
                               "adv_pred": {}, "eps": self.eps[-1] if self.eps else None}
        if not self.eps or self.eps[-1] == 0:
            return out
        everyone = torch.ones_like(y, dtype=torch.bool)
        for k, plan in enumerate(self.plans):
            eps = None if plan.minimal else self.eps[-1]
            attack = plan.build(eps, derive_seed(self.seed, "examples", k), False)
            with autocast_context(self.device, self.amp):
                x_adv = run_attack(attack, self.model, x, y, everyone)
            out["x_adv"][plan.name] = x_adv.detach().cpu()
            out["adv_pred"][plan.name] = predict(self.model, x_adv, self.amp).cpu()
        return out


PER_SAMPLE_KEYS = ("clean_pred", "cum", "adv_pred", "new_norm", "min_norm", "noise")
"""Entries of the evaluation state indexed by sample along their last dimension."""


def rank_state_path(path: str | Path, rank: int, world: int) -> Path:
    """Where rank ``rank`` of ``world`` keeps its evaluation progress: ``eval_state.rank1-of-2.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.rank{rank}-of-{world}{path.suffix}")


def _gather_ranks(acc: dict[str, Any], filled: Tensor) -> dict[str, Any]:
    """Every rank's rows (``filled`` ``(N,)``: this rank's) and summed counters, on every rank."""
    out = dict(acc)
    for key in PER_SAMPLE_KEYS:
        out[key] = D.sum_rows_(acc[key], filled)
    for key in ("attacked", "seconds"):
        out[key] = D.sum_(acc[key])
    return out


def _eval_dataset(dataset: Any, n: int | None) -> Any:
    if n is None or n >= len(dataset):
        return dataset
    return subset(dataset, indices=torch.arange(n))


def _first_rows(dataset: Any, n: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    x, y = next(iter(make_loader(_eval_dataset(dataset, n), batch_size=max(n, 1))))
    return x.to(device, dtype), y.to(device)


def evaluate_robustness(
    model: nn.Module,
    dataset: Any,
    cfg: EvalConfig,
    device: torch.device = torch.device("cpu"),
    batch_size: int = 256,
    seed: int = 0,
    amp: str = "none",
    state_path: str | Path | None = None,
    on_batch_end: BatchCallback | None = None,
    sanity_samples: int = 100,
    n_examples: int = N_EXAMPLES,
    attack_factory: AttackFactory | None = None,
) -> EvaluationResult:
    """Robust accuracy of ``model`` on ``dataset`` under ``cfg`` (see the module docstring).

    Args:
        model: pixels ``(B, C, H, W)`` in [0, 1] → logits ``(B, K)``; moved to ``device`` if needed,
            run in eval mode (its mode is restored afterwards), weights never modified.
        dataset: an :class:`~robustlab.data.ImageDataset`; the first ``cfg.n_samples`` images are used.
        cfg: attacks, budgets (``eps`` in pixel units of ``cfg.norm``), PGD settings, noise levels,
            early exit and sanity switches.
        device: where the model and the batches live.
        batch_size: images per batch (attacks see at most this many at once).
        seed: every random draw (attack starts, noise) derives from it, per batch.
        amp: ``"none"``, ``"bf16"`` or ``"fp16"``: forward passes under :func:`torch.autocast`.
        state_path: file where progress is saved after every batch; an existing file with the same
            config/model/data fingerprint is resumed from its last finished batch.
        on_batch_end: called as ``on_batch_end(batch_index, n_batches)`` after a batch is saved.
        sanity_samples: images used by the sanity measurements (when ``cfg.sanity``).
        n_examples: leading images whose adversarial examples (each attack alone at the largest eps)
            are kept in ``result.examples`` for figures; 0 skips that pass.
        attack_factory: ``factory(name, **params) -> attack``; defaults to
            :func:`robustlab.attacks.build_attack`.

    Returns:
        An :class:`EvaluationResult`; ``result.to_json()`` is the ``results.json`` section.
    """
    if batch_size < 1:
        raise RobustlabError(f"batch size must be >= 1, got {batch_size}")
    t_start = time.perf_counter()
    device = torch.device(device)
    if any(p.device != device for p in model.parameters()):
        model.to(device)
    plans = make_plans(cfg, attack_factory)
    ev = _Evaluator(model, cfg, plans, device, amp, seed)
    data = _eval_dataset(dataset, cfg.n_samples)
    n = len(data)
    if n == 0:
        raise RobustlabError("cannot evaluate on an empty dataset")
    labels = torch.as_tensor(data.targets).long().reshape(-1)
    dtype = model_dtype(model)
    n_batches = (n + batch_size - 1) // batch_size

    world, rank = D.world_size(), D.rank()
    own = list(range(rank, n_batches, world))  # whole batches per rank: same rows and seeds as 1 process
    identity: dict[str, Any] = {
        "cfg": cfg.model_dump(mode="json"), "n": n, "batch_size": batch_size, "seed": seed, "amp": amp,
        "sanity_samples": sanity_samples,
    }
    if world > 1:
        identity.update(world=world, rank=rank)
        if state_path is not None:
            state_path = rank_state_path(state_path, rank, world)
    fp = fingerprint(identity, model, labels)
    acc = load_state(state_path, fp) or ev.empty_state(n)
    if acc["next_batch"]:
        log.info("resuming evaluation: %d of %d batches already done", acc["next_batch"], len(own))

    def rows_of(b: int) -> slice:
        return slice(b * batch_size, min(n, (b + 1) * batch_size))

    filled = torch.zeros(n, dtype=torch.bool)  # rows this rank has results for
    for b in own[: acc["next_batch"]]:
        filled[rows_of(b)] = True

    was_training = model.training
    model.eval()
    try:

        def batches():
            for xb, yb in make_loader(data, batch_size=batch_size):
                yield xb.to(device, dtype), yb.to(device)

        fit_seconds = fit_attacks(plans, model, batches, ev.eps, seed, lambda: autocast_context(device, amp))
        for (k, e), sec in fit_seconds.items():
            acc["seconds"][k, ev.eps.index(e)] += sec

        todo = own[acc["next_batch"]:]
        if todo:
            if world == 1 and not acc["next_batch"]:
                rest = data
            else:  # this rank's remaining batches, back to back (only the dataset's last one can be short)
                rest = subset(data, indices=torch.cat([torch.arange(n)[rows_of(b)] for b in todo]))
            loader = make_loader(rest, batch_size=batch_size)
            pbar = bar(loader, desc="robust evaluation", total=len(todo))
            for b, (x, y) in zip(todo, pbar, strict=True):
                rows = rows_of(b)
                x, y = x.to(device, dtype), y.to(device)
                ev.run_batch(x, y, derive_seed(seed, b), acc, rows)
                acc["next_batch"] += 1
                filled[rows] = True
                if state_path is not None:
                    save_state(state_path, {**acc, "fingerprint": fp})
                if bars_enabled() and plans and ev.eps:
                    robust_so_far = (~acc["cum"][-1, -1][filled]).double().mean()
                    pbar.set_postfix(robust=f"{float(robust_so_far):.3f}")
                if on_batch_end is not None:
                    on_batch_end(b, n_batches)
        if world > 1:
            acc = _gather_ranks(acc, filled)
        examples: dict[str, Any] = {}
        if n_examples > 0 and D.is_main():  # figures are drawn by rank 0 only
            xe, ye = _first_rows(data, min(n_examples, n), device, dtype)
            examples = ev.examples(xe, ye)
        t_sanity = time.perf_counter()
        sanity = None
        if cfg.sanity:
            if D.is_main():
                xs, ys = _first_rows(data, min(sanity_samples, n), device, dtype)
                sanity = sanity_measurements(model, xs, ys, plans, ev.eps, cfg, amp, seed, attack_factory)
            sanity = D.broadcast_json(sanity)  # every rank returns the same summary and flags
        sanity_seconds = time.perf_counter() - t_sanity
    finally:
        model.train(was_training)

    result = _assemble(ev, data, labels, acc, examples)
    result.summary = _summary(ev, data, result, acc, sanity)
    result.summary["sanity_seconds"] = sanity_seconds
    result.summary["eval_seconds"] = time.perf_counter() - t_start
    return result


def _assemble(
    ev: _Evaluator, data: Any, labels: Tensor, acc: dict[str, Any], examples: dict[str, Any]
) -> EvaluationResult:
    clean_pred = acc["clean_pred"]
    correct = clean_pred == labels
    robust = {
        p.name: {e: ~acc["cum"][k, m] for m, e in enumerate(ev.eps)} for k, p in enumerate(ev.plans)
    }
    if ev.plans:
        worst = {e: ~acc["cum"][:, m].any(0) for m, e in enumerate(ev.eps)}
        adv_pred = {e: acc["adv_pred"][m] for m, e in enumerate(ev.eps)}
    else:
        worst = {e: correct.clone() for e in ev.eps}
        adv_pred = {e: clean_pred.clone() for e in ev.eps}
    return EvaluationResult(
        attacks=[p.name for p in ev.plans],
        eps=list(ev.eps),
        norm=ev.cfg.norm,
        class_names=list(data.classes),
        labels=labels,
        clean_pred=clean_pred,
        clean_correct=correct,
        robust_correct=robust,
        worst_case=worst,
        adv_pred=adv_pred,
        min_norms={ev.plans[k].name: acc["min_norm"][j] for j, k in enumerate(ev.minimal_idx)},
        noise_correct={s: acc["noise"][i] for i, s in enumerate(ev.sigmas)},
        examples=examples,
    )


def _mean(mask: Tensor) -> float:
    return float(mask.double().mean()) if mask.numel() else 0.0


def _eps_255(eps: float, norm: str) -> float | None:
    return round(eps * 255, 2) if norm == "linf" else None


def _summary(
    ev: _Evaluator, data: Any, res: EvaluationResult, acc: dict[str, Any], sanity: dict[str, Any] | None
) -> dict[str, Any]:
    n = res.labels.numel()
    norm = ev.cfg.norm
    clean_acc = res.clean_accuracy
    n_correct = int(res.clean_correct.sum())
    rows = []
    for k, plan in enumerate(ev.plans):
        for m, e in enumerate(ev.eps):
            robust_acc = _mean(res.robust_correct[plan.name][e])
            stats = acc["new_norm"][k, m]
            stats = stats[torch.isfinite(stats)]
            rows.append({
                "attack": plan.name,
                "norm": norm,
                "eps": e,
                "eps_255": _eps_255(e, norm),
                "accuracy": robust_acc,
                "success_rate": (clean_acc - robust_acc) * n / n_correct if n_correct else None,
                "mean_norm": float(stats.double().mean()) if stats.numel() else None,
                "median_norm": float(stats.double().median()) if stats.numel() else None,
                "newly_fooled": int(stats.numel()),
                "attacked": int(acc["attacked"][k, m]),
                "seconds": float(acc["seconds"][k, m]),
            })
    worst = [{"eps": e, "eps_255": _eps_255(e, norm), "accuracy": _mean(res.worst_case[e])} for e in ev.eps]
    k_cls = len(res.class_names)
    largest = ev.eps[-1] if ev.eps else None
    robust_mask = res.worst_case[largest] if largest is not None else None
    clean_pc = per_class_accuracy(res.labels, res.clean_correct, k_cls)
    robust_pc: list[float | None] = [None] * k_cls
    if robust_mask is not None:
        robust_pc = per_class_accuracy(res.labels, robust_mask, k_cls)
    counts = torch.bincount(res.labels, minlength=k_cls).tolist()
    per_class = {
        name: {"clean": c, "robust": r, "n": int(cnt)}
        for name, c, r, cnt in zip(res.class_names, clean_pc, robust_pc, counts, strict=True)
    }
    adv_pred = res.adv_pred[largest] if largest is not None else None
    confusion = {
        "clean": confusion_matrix(res.labels, res.clean_pred, k_cls).tolist(),
        "adversarial": None if adv_pred is None else confusion_matrix(res.labels, adv_pred, k_cls).tolist(),
        "eps": largest,
    }
    superclass = None
    coarse = getattr(data, "coarse_targets", None)
    if coarse is not None and data.coarse_classes:
        preds = {"clean": res.clean_pred}
        if adv_pred is not None:
            preds["robust"] = adv_pred
        coarse = torch.as_tensor(coarse)
        superclass = superclass_accuracy(res.labels, coarse, preds, k_cls, data.coarse_classes)
    min_pert = {}
    for name, norms in res.min_norms.items():
        ok = res.clean_correct
        vals = norms[ok]
        plan = next(p for p in ev.plans if p.name == name)
        min_pert[name] = {
            "norm": plan.native_norm(),
            "found": _mean(torch.isfinite(vals)) if vals.numel() else None,
            **norm_summary(vals),
        }
    total = sum(n if (not p.minimal and e > 0) else 0 for p in ev.plans for e in ev.eps)
    total += n * sum(1 for p in ev.plans if p.minimal and ev.eps)
    attacked = int(acc["attacked"].sum())
    summary: dict[str, Any] = {
        "clean_accuracy": clean_acc,
        "n_samples": n,
        "norm": norm,
        "attacks": res.attacks,
        "eps": list(ev.eps),
        "robust": rows,
        "worst_case": worst,
        "noise": [{"sigma": s, "accuracy": _mean(res.noise_correct[s])} for s in ev.sigmas],
        "per_class": per_class,
        "superclass": superclass,
        "confusion": confusion,
        "min_perturbation": min_pert,
        "early_exit": {"enabled": ev.early, "attacked_points": attacked, "skipped_points": total - attacked},
        "per_attack": ev.cfg.per_attack,
        "sanity": sanity,
    }
    summary["flags"] = [f.to_json() for f in F.run_checks(summary)]
    return summary
