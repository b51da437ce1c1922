"""Attention that is scored, not just shown: the decoder's attention maps against the scenes' ground truth.

Shapes: annotations ``a`` ``(N, P, E)`` over ``P = h·w`` encoder cells in row-major order covering an
``S``×``S`` image (cell ``(r, c)`` covers pixels ``[c·S/w, (c+1)·S/w) × [r·S/h, (r+1)·S/h)``); greedy
tokens ``ids`` ``(N, T)`` (no leading ``<sos>``) and their attention ``alphas`` ``(N, T, P)``, whose row
``alphas[n, t]`` is the map the decoder used when it predicted ``ids[n, t]``.

* :func:`cell_box_overlap` / :func:`grounded_words`: for every colour/shape word of a caption that
  :func:`~robustlab.labs.captioning.scenes.groundings` ties to one object, the share of each cell's
  area inside that object's box;
* :func:`box_attention`: how much attention mass lands on the named object, against what a uniform
  map would put there, and how often the most attended cell is mostly inside the box ("pointing game");
* :func:`deletion_test`: whether the attended cells matter — the word's log-probability drop when the
  top-``k`` attended cells are zeroed, against ``k`` random cells;
* :func:`randomised_attention_check`: the model-randomisation sanity check of Adebayo et al. (2018):
  maps that survive re-initialising the attention weights explain the input, not the model.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robustlab.labs.captioning.decoder import AttentionDecoder
from robustlab.labs.captioning.scenes import SceneObject, groundings
from robustlab.labs.captioning.text import PAD, SOS, Language

POINTING_THRESHOLD = 0.5  #: a cell "is inside" a box when at least this share of its area is


def cell_box_overlap(boxes: Tensor, grid: tuple[int, int], size: int) -> Tensor:
    """The share (0–1) of each encoder cell's area that lies inside each box.

    ``boxes`` ``(K, 4)`` pixel boxes ``(x0, y0, x1, y1)``, end-exclusive (any numeric dtype); ``grid``
    ``(h, w)`` cells over a ``size``×``size`` image. Returns float ``(K, P)``, ``P = h·w``, cells in
    row-major order; ``1`` where a cell lies wholly inside a box, ``0`` where they do not meet."""
    h, w = grid
    if h < 1 or w < 1 or size < 1:
        raise ValueError(f"grid and size must be positive, got grid={grid}, size={size}")
    boxes = torch.as_tensor(boxes)
    dtype = boxes.dtype if boxes.is_floating_point() else torch.float32
    boxes = boxes.to(dtype).reshape(-1, 4)
    device = boxes.device
    xs = torch.arange(w + 1, device=device, dtype=dtype) * (size / w)  # cell edges
    ys = torch.arange(h + 1, device=device, dtype=dtype) * (size / h)
    x0, y0, x1, y1 = (boxes[:, i : i + 1] for i in range(4))  # (K, 1)
    ox = (torch.minimum(x1, xs[1:]) - torch.maximum(x0, xs[:-1])).clamp(min=0) / (size / w)  # (K, w)
    oy = (torch.minimum(y1, ys[1:]) - torch.maximum(y0, ys[:-1])).clamp(min=0) / (size / h)  # (K, h)
    return (oy.unsqueeze(2) * ox.unsqueeze(1)).reshape(boxes.shape[0], h * w)


@dataclass
class Grounded:
    """``G`` grounded words: word ``g`` is token ``step[g]`` of image ``image[g]`` (its attention is
    ``alphas[image[g], step[g]]``), with id ``word[g]``; ``overlap`` ``(G, P)`` float, the share (0–1) of
    each cell inside the box of the object the word names. ``image``, ``step``, ``word`` ``(G,)`` long."""

    image: Tensor
    step: Tensor
    word: Tensor
    overlap: Tensor

    def __len__(self) -> int:
        """The number of grounded words ``G``."""
        return int(self.image.shape[0])


def grounded_words(tokens: Sequence[Sequence[str]], ids: Tensor, objects: Sequence[Sequence[SceneObject]],
                   language: Language, grid: tuple[int, int], size: int) -> Grounded:
    """The colour/shape words of each caption that name exactly one object of its scene.

    ``tokens`` per image the caption's words, position ``t`` being the word of ``ids[n, t]`` (as
    :meth:`~robustlab.labs.captioning.decoding.Decoded.words` gives for greedy tokens); ``ids`` ``(N, T)``
    long; ``objects`` per image its ground truth; ``grid`` ``(h, w)`` encoder cells over ``size`` pixels.
    Pairs come from :func:`~robustlab.labs.captioning.scenes.groundings`, image by image, in order.
    Raises ``ValueError`` when the lengths disagree or a word lies past ``ids``' ``T`` columns."""
    n, t_max = ids.shape
    if len(tokens) != n or len(objects) != n:
        raise ValueError(f"{len(tokens)} token lists and {len(objects)} object lists for {n} rows of ids")
    image, step, boxes = [], [], []
    for i, (words, objs) in enumerate(zip(tokens, objects, strict=True)):
        for position, j in groundings(words, objs, language):
            if position >= t_max:
                raise ValueError(f"word {position} of image {i} lies past the {t_max} token columns")
            image.append(i)
            step.append(position)
            boxes.append(objs[j].box)
    device = ids.device
    image_t = torch.tensor(image, dtype=torch.long, device=device)
    step_t = torch.tensor(step, dtype=torch.long, device=device)
    box_t = torch.tensor(boxes, dtype=torch.float32, device=device).reshape(-1, 4)
    return Grounded(image_t, step_t, ids[image_t, step_t].long(), cell_box_overlap(box_t, grid, size))


def _mean(x: Tensor) -> float:
    return float(x.float().mean())


def box_attention(alphas: Tensor, g: Grounded) -> dict[str, float | int | None]:
    """Attention on the named object, for the ``G`` words of ``g``; ``alphas`` ``(N, T, P)``.

    ``mass``: mean over the words of ``Σ_i α_i·overlap_i`` (0–1), the attention inside the box;
    ``uniform``: mean of ``mean_i overlap_i``, the mass a uniform map would put there; ``ratio``
    ``mass / uniform`` (1 = no better than uniform; ``None`` when ``uniform`` is 0); ``pointing``: share
    of words whose most attended cell has overlap ≥ 0.5; ``pointing_chance``: mean share of cells with
    overlap ≥ 0.5 (a uniformly random cell's hit rate); ``words`` ``G``. With ``G = 0`` every value but
    ``words`` is ``None``."""
    count = len(g)
    if count == 0:
        return {"mass": None, "uniform": None, "ratio": None, "pointing": None, "pointing_chance": None, "words": 0}
    device = alphas.device
    maps = alphas[g.image.to(device), g.step.to(device)]  # (G, P)
    overlap = g.overlap.to(device=device, dtype=maps.dtype)
    mass = _mean((maps * overlap).sum(1))
    uniform = _mean(overlap.mean(1))
    inside = overlap >= POINTING_THRESHOLD
    pointing = _mean(inside.gather(1, maps.argmax(1, keepdim=True)))
    return {
        "mass": mass,
        "uniform": uniform,
        "ratio": mass / uniform if uniform > 0 else None,
        "pointing": pointing,
        "pointing_chance": _mean(inside.float().mean(1)),
        "words": count,
    }


def _word_logprob(decoder: AttentionDecoder, a: Tensor, captions: Tensor, lengths: Tensor, step: Tensor,
                  word: Tensor) -> Tensor:
    """``(G,)`` log-probability of ``word`` at position ``step`` of the teacher-forced ``captions``."""
    logits, _ = decoder(a, captions, lengths)
    rows = torch.arange(len(step), device=step.device)
    return logits[rows, step].log_softmax(-1)[rows, word]


def deletion_test(decoder: AttentionDecoder, a: Tensor, ids: Tensor, alphas: Tensor, g: Grounded, k: int,
                  seed: int) -> dict[str, float | int | bool | None]:
    """Does zeroing the attended cells hurt the grounded words more than zeroing random cells?

    For every word of ``g``, ``[<sos>] + ids[image, :step+1]`` is teacher-forced through ``decoder`` (one
    batched call per condition, captions padded with ``<pad>``, ``lengths = step + 2``) with its image's
    annotations ``a`` ``(N, P, E)`` intact, with the ``k`` cells most attended at that step
    (``alphas[image, step]``, ``alphas`` ``(N, T, P)``) zeroed, and with ``k`` cells drawn uniformly
    without replacement (a ``torch.Generator`` seeded with ``seed``; they may include the top cells)
    zeroed; the score is the log-probability of ``word`` at position ``step``. ``ids`` ``(N, T)`` greedy
    tokens without ``<sos>``; ``k ≥ 1``, capped at ``P`` (``k ≥ P`` zeroes every cell in both conditions).

    Returns ``logp_clean`` (mean), ``drop_top`` / ``drop_random`` (mean clean − ablated; positive =
    the word got less likely), ``faithful`` (``drop_top > drop_random``), ``k`` (as used) and ``words``
    ``G``; with ``G = 0`` all but ``k`` and ``words`` are ``None``. The caller puts ``decoder`` in
    ``eval()``; no gradients are taken. Note that zeroed annotations also change the initial state (the
    mean annotation) and the keys, as a real occlusion would."""
    if k < 1:
        raise ValueError(f"k must be ≥ 1, got {k}")
    p = a.shape[1]
    k = min(k, p)
    count = len(g)
    if count == 0:
        return {"logp_clean": None, "drop_top": None, "drop_random": None, "faithful": None, "k": k, "words": 0}
    device = a.device
    image, step, word = g.image.to(device), g.step.to(device), g.word.to(device)
    with torch.no_grad():
        width = int(step.max()) + 2
        prefix = torch.cat([torch.full((ids.shape[0], 1), SOS, dtype=torch.long, device=device), ids.to(device)], 1)
        prefix = F.pad(prefix, (0, max(0, width - prefix.shape[1])), value=PAD)[:, :width]
        lengths = step + 2
        keep = torch.arange(width, device=device).unsqueeze(0) < lengths.unsqueeze(1)
        captions = torch.where(keep, prefix[image], torch.full_like(prefix[image], PAD))
        a_words = a[image]  # (G, P, E)
        top = alphas.to(device)[image, step].topk(k, dim=1).indices  # (G, k)
        gen = torch.Generator().manual_seed(seed)
        drawn = torch.rand(count, p, generator=gen).argsort(1)[:, :k].to(device)

        def ablated(cells: Tensor) -> Tensor:
            mask = torch.ones(count, p, dtype=a.dtype, device=device).scatter_(1, cells, 0.0)
            return a_words * mask.unsqueeze(-1)

        clean = _word_logprob(decoder, a_words, captions, lengths, step, word)
        drop_top = clean - _word_logprob(decoder, ablated(top), captions, lengths, step, word)
        drop_random = clean - _word_logprob(decoder, ablated(drawn), captions, lengths, step, word)
    top_mean, random_mean = _mean(drop_top), _mean(drop_random)
    return {
        "logp_clean": _mean(clean),
        "drop_top": top_mean,
        "drop_random": random_mean,
        "faithful": top_mean > random_mean,
        "k": k,
        "words": count,
    }


def _ranks(x: Tensor) -> Tensor:
    """Ranks ``0..P-1`` along the last axis (ties broken by position)."""
    return x.argsort(dim=-1, stable=True).argsort(dim=-1, stable=True).to(torch.float64)


def _spearman(x: Tensor, y: Tensor) -> Tensor:
    """Spearman rank correlation along the last axis of ``x``, ``y`` ``(M, P)`` → ``(M,)``."""
    p = x.shape[-1]
    d = _ranks(x) - _ranks(y)
    return 1.0 - 6.0 * (d * d).sum(-1) / (p * (p * p - 1))


def randomised_attention_check(decoder: AttentionDecoder, a: Tensor, captions: Tensor, lengths: Tensor,
                               seed: int) -> dict[str, float | int | bool]:
    """Model-randomisation sanity check (Adebayo et al. 2018) of the attention maps.

    A deep copy of ``decoder`` gets its ``attention`` submodule's ``nn.Linear`` layers re-initialised
    (``reset_parameters()`` under a forked RNG seeded with ``seed``; ``decoder`` itself is untouched);
    both teacher-force ``captions`` ``(N, L)`` (with ``<sos>``; ``lengths`` ``(N,)`` counting ``<sos>`` and
    ``<eos>``) over annotations ``a`` ``(N, P, E)``. Returns ``spearman``: the mean over the valid
    ``(image, step)`` pairs (``step < lengths − 1``) of the Spearman rank correlation (−1–1) of the two
    maps over the ``P`` cells; ``differs``: ``spearman < 0.5`` (the maps depend on the learnt attention,
    as they should); ``self_spearman``: the original against itself (1.0, a control); ``steps``: the
    number of pairs. The decoder's mode is left as is (put it in ``eval()``); no gradients are taken.
    Needs ``P ≥ 2``."""
    p = a.shape[1]
    if p < 2:
        raise ValueError(f"a rank correlation needs at least 2 cells, got P={p}")
    randomised = copy.deepcopy(decoder)
    devices = sorted({q.device.index or 0 for q in randomised.parameters() if q.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for module in randomised.attention.modules():
            if isinstance(module, nn.Linear):
                module.reset_parameters()
    with torch.no_grad():
        _, alpha = decoder(a, captions, lengths)
        _, alpha_random = randomised(a, captions, lengths)
    steps = lengths.to(alpha.device) - 1
    valid = torch.arange(alpha.shape[1], device=alpha.device).unsqueeze(0) < steps.unsqueeze(1)  # (N, T)
    original, other = alpha[valid], alpha_random[valid]  # (M, P)
    spearman = float(_spearman(original, other).mean())
    return {
        "spearman": spearman,
        "differs": spearman < 0.5,
        "self_spearman": float(_spearman(original, original).mean()),
        "steps": int(valid.sum()),
    }
