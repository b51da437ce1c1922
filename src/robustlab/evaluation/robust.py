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

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from robustlab.core import distributed as D
from robustlab.core.errors import RobustlabError
from robustlab.core.modes import eval_mode
from robustlab.core.precision import autocast_context
from robustlab.core.progress import bar, bars_enabled
from robustlab.data import make_loader, subset
from robustlab.evaluation.evaluator import BatchEvaluator
from robustlab.evaluation.metrics import derive_seed
from robustlab.evaluation.plan import EvaluationPlan
from robustlab.evaluation.result import EvaluationResult, assemble_result
from robustlab.evaluation.runner import AttackFactory, fit_attacks
from robustlab.evaluation.sanity import sanity_measurements
from robustlab.evaluation.state import BatchProgress
from robustlab.evaluation.summary import summarise
from robustlab.models.inference import model_dtype

if TYPE_CHECKING:
    from robustlab.evaluation.config import EvalConfig

__all__ = ["N_EXAMPLES", "BatchCallback", "EvaluationResult", "evaluate_robustness"]

N_EXAMPLES = 16
"""How many leading images keep their adversarial examples for figures (by default)."""

BatchCallback = Callable[[int, int], None]
"""``on_batch_end(batch_index, n_batches)``."""


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
            run in eval mode (every submodule's own mode is restored afterwards), weights never modified.
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
    plan = EvaluationPlan.from_config(cfg, attack_factory)
    ev = BatchEvaluator(model, plan, device, amp, seed)
    data = _eval_dataset(dataset, cfg.n_samples)
    n = len(data)
    if n == 0:
        raise RobustlabError("cannot evaluate on an empty dataset")
    labels = torch.as_tensor(data.targets).long().reshape(-1)
    dtype = model_dtype(model)
    identity: dict[str, Any] = {
        "cfg": cfg.model_dump(mode="json"), "n": n, "batch_size": batch_size, "seed": seed, "amp": amp,
        "sanity_samples": sanity_samples,
    }
    progress = BatchProgress.open(plan, n, batch_size, identity, model, labels, state_path)
    with eval_mode(model):
        _fit(plan, model, data, batch_size, device, dtype, seed, amp, progress.acc)
        _run_batches(ev, data, progress, device, dtype, seed, on_batch_end)
        acc = progress.gathered()
        examples: dict[str, Any] = {}
        if n_examples > 0 and D.is_main():  # figures are drawn by rank 0 only
            examples = ev.examples(*_first_rows(data, min(n_examples, n), device, dtype))
        t_sanity = time.perf_counter()
        sanity = _sanity(model, data, plan, cfg, sanity_samples, device, dtype, amp, seed, attack_factory)
        sanity_seconds = time.perf_counter() - t_sanity

    result = assemble_result(plan, data, labels, acc, examples)
    result.summary = summarise(plan, data, result, acc, sanity)
    result.summary["sanity_seconds"] = sanity_seconds
    result.summary["eval_seconds"] = time.perf_counter() - t_start
    return result


def _fit(
    plan: EvaluationPlan, model: nn.Module, data: Any, batch_size: int, device: torch.device, dtype: torch.dtype,
    seed: int, amp: str, acc: dict[str, Any],
) -> None:
    """Fit the plan's fitted attacks on ``data`` and add their seconds to the rows of ``acc``."""

    def batches():
        for xb, yb in make_loader(data, batch_size=batch_size):
            yield xb.to(device, dtype), yb.to(device)

    fit_seconds = fit_attacks(plan.attacks, model, batches, plan.eps, seed, lambda: autocast_context(device, amp))
    for (k, e), sec in fit_seconds.items():
        acc["seconds"][k, plan.eps.index(e)] += sec


def _run_batches(
    ev: BatchEvaluator, data: Any, progress: BatchProgress, device: torch.device, dtype: torch.dtype, seed: int,
    on_batch_end: BatchCallback | None,
) -> None:
    """Evaluate this process's remaining batches, saving the state after each."""
    todo = progress.todo
    if not todo:
        return
    acc, n = progress.acc, progress.n
    if progress.world == 1 and not acc["next_batch"]:
        rest = data
    else:  # this rank's remaining batches, back to back (only the dataset's last one can be short)
        rest = subset(data, indices=torch.cat([torch.arange(n)[progress.rows_of(b)] for b in todo]))
    loader = make_loader(rest, batch_size=progress.batch_size)
    pbar = bar(loader, desc="robust evaluation", total=len(todo))
    for b, (x, y) in zip(todo, pbar, strict=True):
        rows = progress.rows_of(b)
        x, y = x.to(device, dtype), y.to(device)
        ev.run_batch(x, y, derive_seed(seed, b), acc, rows)
        progress.done(b)
        if bars_enabled() and ev.plan.attacks and ev.plan.eps:
            robust_so_far = (~acc["cum"][-1, -1][progress.filled]).double().mean()
            pbar.set_postfix(robust=f"{float(robust_so_far):.3f}")
        if on_batch_end is not None:
            on_batch_end(b, progress.n_batches)


def _sanity(
    model: nn.Module, data: Any, plan: EvaluationPlan, cfg: EvalConfig, sanity_samples: int, device: torch.device,
    dtype: torch.dtype, amp: str, seed: int, attack_factory: AttackFactory | None,
) -> dict[str, Any] | None:
    """Rank 0's sanity measurements (None when ``cfg.sanity`` is off), on every rank."""
    if not cfg.sanity:
        return None
    sanity = None
    if D.is_main():
        xs, ys = _first_rows(data, min(sanity_samples, len(data)), device, dtype)
        sanity = sanity_measurements(model, xs, ys, plan.attacks, plan.eps, cfg, amp, seed, attack_factory)
    return D.broadcast_json(sanity)  # every rank returns the same summary and flags
