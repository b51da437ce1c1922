"""The diffusion lab's two studies as pure functions of samples: no sampling here, callers pass images.

Guidance-scale study (one row per classifier-free-guidance scale):

* :func:`guidance_row` — label following, FD (judge features), improved precision / recall and intra-class
  diversity of samples drawn at one scale, against the real test images.
* :func:`fd_floor` — FD (judge features) of real test vs real train images: what a perfect sampler scores.
* :func:`balanced_scale`, :func:`best_accuracy_scale` — the scale picked from the rows by a stated rule.

DreamBooth study (one row per model, e.g. before / after fine-tuning or per checkpoint step):

* :func:`dreambooth_row` — concept fidelity, language drift, copying of the instance images, diversity
  and the drift of the other prompts.
* :func:`copy_threshold` — the pixel distance below which a sample counts as a copy.
* :func:`overfitting_choice` — the checkpoint step picked from per-step rows by a stated rule.
* :func:`subject_row` — judge-free pixel proxies of fidelity, copying and drift for a user's own subject.

Every image is ``(N, 1, 8, 8)`` in ``[0, 1]`` (any device); labels are integer ``(N,)``. Features are the
64-d penultimate layer of a judge (:class:`robustlab.labs.diffusion.judges.JudgeCNN`) trained on real
digits, so every FD here is "FD (judge features)", not FID, comparable only between rows sharing the judge.
The rows are JSON-able dicts of plain ``float`` / ``int`` / ``str`` values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from robustlab.core.errors import RobustlabError
from robustlab.labs.diffusion.judges import MIRRORED, JudgeCNN, embed, mirror
from robustlab.labs.diffusion.measures import (
    diversity,
    frechet_distance,
    label_accuracy,
    nearest_distance,
    precision_recall,
    relative_diversity,
)

CLASS_DIGIT = 3  # the DreamBooth class: the subject is a (mirrored) 3
MIN_ACCURACY = 0.95  # balanced_scale: the label following a scale must reach to be eligible
COPY_FACTOR = 0.5  # copy_threshold: this fraction of the median distance between two distinct real 3s
FIDELITY_RATIO, MAX_DRIFT, MAX_COPYING = 0.9, 0.1, 0.5  # overfitting_choice's rule


def _labels(labels: torch.Tensor, n: int, name: str) -> torch.Tensor:
    lb = torch.as_tensor(labels).detach().cpu()
    if lb.shape != (n,) or torch.is_floating_point(lb) or lb.dtype == torch.bool:
        raise RobustlabError(f"{name} must be integer labels of shape ({n},); got {tuple(lb.shape)} {lb.dtype}")
    return lb.long()


def _class_diversity(fake: torch.Tensor, fake_labels: torch.Tensor, real: torch.Tensor,
                     real_labels: torch.Tensor) -> float:
    """Mean over the classes with at least two fake and two real rows of ``relative_diversity`` of that
    class's fake features against its real features; ``nan`` when no class qualifies."""
    ratios = []
    for c in torch.unique(fake_labels).tolist():
        f, r = fake[fake_labels == c], real[real_labels == c]
        if f.shape[0] >= 2 and r.shape[0] >= 2:
            ratios.append(relative_diversity(f, r))
    return float(sum(ratios) / len(ratios)) if ratios else float("nan")


def guidance_row(scale: float, samples: torch.Tensor, labels: torch.Tensor, judge: JudgeCNN,
                 real_test: torch.Tensor, real_labels: torch.Tensor, k: int = 3) -> dict[str, Any]:
    """Scores of ``samples`` ``(N, 1, 8, 8)`` in ``[0, 1]``, drawn at guidance ``scale`` for the prompts
    ``labels`` ``(N,)``, against ``real_test`` ``(M, 1, 8, 8)`` with labels ``real_labels`` ``(M,)``
    (``N, M > k``), all on the features of the digit ``judge``.

    Returns ``{"scale", "judge_accuracy", "fd", "precision", "recall", "diversity", "n"}``:

    * ``judge_accuracy`` in ``[0, 1]`` — the fraction of samples the judge gives the label they were drawn
      for (label following; chance ``1 / K``).
    * ``fd`` ``>= 0`` — FD (judge features) of all samples against all real test images (lower is better;
      compare with :func:`fd_floor`).
    * ``precision``, ``recall`` in ``[0, 1]`` — improved precision (samples inside the real manifold:
      fidelity) and recall (real images inside the samples' manifold: coverage), ``k``-NN balls.
    * ``diversity`` ``>= 0`` — the mean over the sampled classes (those with at least two samples and two
      real images) of the samples' intra-class diversity relative to the real test images of the same
      class: ``1`` for real-like spread, towards ``0`` for collapse; ``nan`` when no class qualifies.
    * ``n`` — the number of samples.
    """
    lb = _labels(labels, samples.shape[0], "labels")
    rl = _labels(real_labels, real_test.shape[0], "real_labels")
    fake_f, fake_logits = embed(judge, samples)
    real_f, _ = embed(judge, real_test)
    pr = precision_recall(real_f, fake_f, k=k)
    return {
        "scale": float(scale),
        "judge_accuracy": label_accuracy(fake_logits, lb),
        "fd": frechet_distance(fake_f, real_f),
        "precision": pr["precision"],
        "recall": pr["recall"],
        "diversity": _class_diversity(fake_f, lb, real_f, rl),
        "n": int(samples.shape[0]),
    }


def fd_floor(judge: JudgeCNN, real_train: torch.Tensor, real_test: torch.Tensor) -> float:
    """FD (judge features) of the real test images against the real train images (both ``(·, 1, 8, 8)``,
    at least two each): the FD that real data itself scores, the floor a sample set is compared against
    (a sampler matching the data distribution lands near it, not at 0)."""
    return frechet_distance(embed(judge, real_test)[0], embed(judge, real_train)[0])


def _check_rows(rows: Sequence[Mapping[str, Any]], keys: tuple[str, ...], what: str) -> None:
    if not rows:
        raise RobustlabError(f"{what} needs at least one row")
    for r in rows:
        missing = [key for key in keys if key not in r]
        if missing:
            raise RobustlabError(f"{what}: a row lacks {missing}; got keys {sorted(r)}")


def best_accuracy_scale(rows: Sequence[Mapping[str, Any]]) -> float:
    """The scale of the row (from :func:`guidance_row`) with the highest ``judge_accuracy``; ties go to
    the smallest scale (the least guidance, so the most diversity, for the same label following)."""
    _check_rows(rows, ("scale", "judge_accuracy"), "best_accuracy_scale")
    best = min(rows, key=lambda r: (-r["judge_accuracy"], r["scale"]))
    return float(best["scale"])


def balanced_scale(rows: Sequence[Mapping[str, Any]], min_accuracy: float = MIN_ACCURACY) -> float:
    """The guidance scale that balances fidelity and diversity, by this rule:

    among the rows (from :func:`guidance_row`) whose ``judge_accuracy >= min_accuracy`` (the samples follow
    their prompt), the scale with the lowest ``fd`` — FD on judge features penalises both off-manifold
    samples and lost variety, so it falls as guidance starts to work and rises again once guidance
    collapses the classes; ties go to the smaller scale. When no row reaches ``min_accuracy``, the scale
    of the highest ``judge_accuracy`` (ties: lowest ``fd``, then the smaller scale).
    """
    _check_rows(rows, ("scale", "judge_accuracy", "fd"), "balanced_scale")
    eligible = [r for r in rows if r["judge_accuracy"] >= min_accuracy]
    if eligible:
        best = min(eligible, key=lambda r: (r["fd"], r["scale"]))
    else:
        best = min(rows, key=lambda r: (-r["judge_accuracy"], r["fd"], r["scale"]))
    return float(best["scale"])


def _pairwise_median(x: torch.Tensor) -> float:
    """The median Euclidean pixel distance over the pairs ``i < j`` of the rows of ``x`` ``(n, ...)``."""
    flat = x.detach().cpu().flatten(1).double()
    d = torch.cdist(flat, flat)
    i, j = torch.triu_indices(flat.shape[0], flat.shape[0], offset=1)
    return float(d[i, j].median())


def copy_threshold(real_threes: torch.Tensor, factor: float = COPY_FACTOR) -> tuple[float, float]:
    """``(threshold, reference)``: ``reference`` is the median pixel-space Euclidean distance between two
    distinct real 3s ``real_threes`` ``(n, 1, 8, 8)``, ``n >= 2`` (how far apart two different
    handwritings of the same digit are), and ``threshold = factor · reference``. A generated sample nearer
    than ``threshold`` to an instance image is counted as a copy of it: closer than half the typical
    distance between two real 3s is far closer than two independent drawings of a 3 come."""
    if real_threes.shape[0] < 2:
        raise RobustlabError(f"copy_threshold needs at least two real 3s; got {real_threes.shape[0]}")
    reference = _pairwise_median(real_threes)
    return factor * reference, reference


def _called(detector: JudgeCNN, x: torch.Tensor, cls: int) -> float:
    """The fraction of images ``x`` the detector assigns to class ``cls``."""
    logits = embed(detector, x)[1]
    return float((logits.argmax(dim=1) == cls).double().mean())


def dreambooth_row(name: str, sks_samples: torch.Tensor, class_samples: torch.Tensor, instance_images: torch.Tensor,
                   style_detector: JudgeCNN, judge: JudgeCNN, other_samples: Mapping[int, torch.Tensor] | None,
                   real_test: torch.Tensor, real_labels: torch.Tensor, step: int | None = None) -> dict[str, Any]:
    """The DreamBooth scores of one model (``name``, e.g. ``"before"`` / ``"after"``; ``step`` when given).

    ``sks_samples`` ``(N, 1, 8, 8)``: samples of the instance prompt ("sks 3", the subject is a mirrored 3);
    ``class_samples`` ``(N', 1, 8, 8)``: samples of the class prompt ("3"); ``instance_images``
    ``(n, 1, 8, 8)``: the fine-tuning images; ``style_detector``: 0 = normal 3, 1 = mirrored 3 (see
    :func:`robustlab.labs.diffusion.judges.train_style_detector`); ``judge``: the digit judge;
    ``other_samples``: optional ``{digit: samples (·, 1, 8, 8)}`` of the other digit prompts;
    ``real_test`` / ``real_labels``: the real test images and labels (at least two 3s). All in ``[0, 1]``,
    ``N, N' >= 2``. Returns (fractions in ``[0, 1]``, distances in pixel units of ``[0, 1]`` images):

    * ``concept_fidelity`` — fraction of "sks 3" samples the style detector calls mirrored (the concept
      was learnt).
    * ``concept_digit`` — fraction of the "sks 3" samples, un-mirrored, that the judge reads as a 3 (the
      subject is still a 3, not a blob).
    * ``language_drift`` — fraction of "3" samples the style detector calls mirrored (the class prompt
      drifted towards the subject; prior preservation should keep it near the base model's rate).
    * ``class_digit`` — fraction of "3" samples the judge reads as a 3.
    * ``copy_distance`` — mean over the "sks 3" samples of the pixel distance to the nearest instance image.
    * ``copy_fraction`` — fraction of "sks 3" samples nearer than ``copy_threshold`` to an instance image.
    * ``copy_threshold``, ``real_pair_median`` — the threshold and its reference (:func:`copy_threshold`
      on the real test 3s: half the median distance between two distinct real 3s).
    * ``diversity`` — the "sks 3" samples' diversity relative to the real test 3s: both un-mirrored
      samples and real 3s go through the judge's features (mirroring the samples back keeps them in the
      judge's domain; ``1`` = real-like spread, ``0`` = every sample alike).
    * ``class_diversity`` — the "3" samples' diversity relative to the real test 3s (judge features).
    * ``n_sks``, ``n_class`` — the sample counts.
    * only when ``other_samples`` is given: ``other_accuracy`` (pooled fraction of the other prompts'
      samples the judge labels with their digit), ``other_fd`` (FD (judge features) of the pooled other
      samples against the real test images of those digits), ``other_accuracy_by_class``
      (``{"digit": accuracy}``) and ``n_other``.
    """
    if sks_samples.shape[0] < 2 or class_samples.shape[0] < 2:
        raise RobustlabError(f"dreambooth_row needs at least two instance-prompt and two class-prompt samples; "
                             f"got {sks_samples.shape[0]} and {class_samples.shape[0]}")
    rl = _labels(real_labels, real_test.shape[0], "real_labels")
    real_threes = real_test[rl.to(real_test.device) == CLASS_DIGIT]
    threshold, reference = copy_threshold(real_threes)
    real3_f = embed(judge, real_threes)[0]
    sks_f, sks_logits = embed(judge, mirror(sks_samples))
    cls_f, cls_logits = embed(judge, class_samples)
    nearest = nearest_distance(sks_samples, instance_images)
    row: dict[str, Any] = {"name": name}
    if step is not None:
        row["step"] = int(step)
    row.update({
        "concept_fidelity": _called(style_detector, sks_samples, MIRRORED),
        "concept_digit": label_accuracy(sks_logits, torch.full((sks_samples.shape[0],), CLASS_DIGIT)),
        "language_drift": _called(style_detector, class_samples, MIRRORED),
        "class_digit": label_accuracy(cls_logits, torch.full((class_samples.shape[0],), CLASS_DIGIT)),
        "copy_distance": float(nearest.double().mean()),
        "copy_fraction": float((nearest < threshold).double().mean()),
        "copy_threshold": float(threshold),
        "real_pair_median": float(reference),
        "diversity": relative_diversity(sks_f, real3_f),
        "class_diversity": relative_diversity(cls_f, real3_f),
        "n_sks": int(sks_samples.shape[0]),
        "n_class": int(class_samples.shape[0]),
    })
    if other_samples:
        row.update(_other_prompts(other_samples, judge, real_test, rl))
    return row


def _other_prompts(other_samples: Mapping[int, torch.Tensor], judge: JudgeCNN, real_test: torch.Tensor,
                   real_labels: torch.Tensor) -> dict[str, Any]:
    """``other_accuracy``, ``other_fd``, ``other_accuracy_by_class`` and ``n_other`` (see
    :func:`dreambooth_row`)."""
    feats, logits, labels, by_class = [], [], [], {}
    for digit, x in sorted(other_samples.items()):
        if x.shape[0] == 0:
            continue
        f, lg = embed(judge, x)
        lb = torch.full((x.shape[0],), int(digit))
        by_class[str(int(digit))] = label_accuracy(lg, lb)
        feats.append(f)
        logits.append(lg)
        labels.append(lb)
    if not feats:
        raise RobustlabError("dreambooth_row: other_samples holds no images")
    all_f, all_labels = torch.cat(feats), torch.cat(labels)
    digits = torch.tensor([int(d) for d in by_class])
    real = real_test[torch.isin(real_labels, digits).to(real_test.device)]
    return {
        "other_accuracy": label_accuracy(torch.cat(logits), all_labels),
        "other_fd": frechet_distance(all_f, embed(judge, real)[0]),
        "other_accuracy_by_class": by_class,
        "n_other": int(all_f.shape[0]),
    }


def overfitting_choice(rows_by_step: Sequence[Mapping[str, Any]], fidelity_ratio: float = FIDELITY_RATIO,
                       max_drift: float = MAX_DRIFT, max_copying: float = MAX_COPYING) -> int:
    """The fine-tuning step to keep, from rows (:func:`dreambooth_row` with ``step``) of several steps.

    Rule: with ``F`` the highest ``concept_fidelity`` over the rows, the earliest ``step`` whose
    ``concept_fidelity >= fidelity_ratio · F`` (the concept is nearly as learnt as it gets), whose
    ``language_drift <= max_drift`` (the class prompt still draws normal 3s) and whose
    ``copy_fraction <= max_copying`` (at most half the samples copy an instance image) — stopping as soon
    as the concept is learnt, before further steps only add drift and memorisation. When no step passes,
    the step with the largest ``concept_fidelity - language_drift`` (ties: the earliest step).
    """
    _check_rows(rows_by_step, ("step", "concept_fidelity", "language_drift", "copy_fraction"), "overfitting_choice")
    rows = sorted(rows_by_step, key=lambda r: r["step"])
    top = max(r["concept_fidelity"] for r in rows)
    for r in rows:
        if (r["concept_fidelity"] >= fidelity_ratio * top and r["language_drift"] <= max_drift
                and r["copy_fraction"] <= max_copying):
            return int(r["step"])
    best = max(rows, key=lambda r: (r["concept_fidelity"] - r["language_drift"], -r["step"]))
    return int(best["step"])


PROXY_SIDE = 32
"""Side of the downsampled images that :func:`subject_row`'s pixel proxies compare."""


def _proxy(x: torch.Tensor) -> torch.Tensor:
    """Images ``(N, C, H, W)`` in [0, 1] as ``(N, C·32·32)`` float vectors (area-downsampled)."""
    return torch.nn.functional.adaptive_avg_pool2d(x.detach().float().cpu(), PROXY_SIDE).flatten(1)


def subject_row(name: str, sks_samples: torch.Tensor, class_samples: torch.Tensor, instance_images: torch.Tensor,
                class_before: torch.Tensor | None = None) -> dict[str, Any]:
    """Judge-free DreamBooth scores of one model, for subjects no judge was trained on (the user's own
    Stable Diffusion and images). Images ``(N, 3, H, W)`` in [0, 1]; every distance is Euclidean
    between images area-downsampled to 32 × 32 (a pixel proxy, not a DINO/CLIP score):

    * ``instance_distance`` — mean distance of the instance-prompt samples to their nearest instance
      image (falls as the subject is learnt);
    * ``copy_fraction`` — share of instance-prompt samples nearer an instance image than
      ``copy_threshold`` = half the median distance between two distinct instance images;
    * ``diversity`` — mean distance between distinct instance-prompt samples;
    * ``class_drift`` (only with ``class_before``, the starting model's class-prompt samples from the same
      seeds) — mean distance between each class-prompt sample and its same-seed sample before fine-tuning,
      over the mean distance between two distinct samples before: ``0`` = unchanged, ``1`` = as different
      as another seed (language drift).
    """
    if sks_samples.shape[0] < 2 or instance_images.shape[0] < 2:
        raise RobustlabError(f"subject_row needs at least two instance-prompt samples and two instance images; "
                             f"got {sks_samples.shape[0]} and {instance_images.shape[0]}")
    sks, inst = _proxy(sks_samples), _proxy(instance_images)
    threshold = COPY_FACTOR * float(torch.pdist(inst).median())
    nearest = nearest_distance(sks, inst)
    row: dict[str, Any] = {"name": name, "instance_distance": float(nearest.double().mean()),
                           "copy_fraction": float((nearest < threshold).double().mean()),
                           "copy_threshold": threshold, "diversity": diversity(sks),
                           "n_sks": int(sks.shape[0]), "n_class": int(class_samples.shape[0])}
    if class_before is not None:
        after, before = _proxy(class_samples), _proxy(class_before)
        if after.shape != before.shape:
            raise RobustlabError(f"class_before must match class_samples; got {tuple(class_before.shape)} and "
                                 f"{tuple(class_samples.shape)}")
        row["class_drift"] = float((after - before).norm(dim=1).mean()) / max(diversity(before), 1e-12)
    return row
