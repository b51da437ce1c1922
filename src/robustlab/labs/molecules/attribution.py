"""Which tokens, and which atoms, a SMILES classifier's logit rests on: integrated gradients over the
token embeddings, mapped onto RDKit atoms and drawn as highlighted molecules."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.colors import to_rgb

from robustlab.core.errors import RobustlabError
from robustlab.core.modes import eval_mode
from robustlab.labs.molecules.chem import quiet_rdkit
from robustlab.labs.molecules.models import valid_mask
from robustlab.labs.molecules.tokens import tokenize
from robustlab.viz.figure import PALETTE, RED, new_figure, save_figure

ATOM_TOKENS = frozenset({"Br", "Cl", "B", "C", "N", "O", "S", "P", "F", "I", "b", "c", "n", "o", "s", "p", "*"})
"""Regex-tokenizer tokens that are one atom each (besides bracket atoms ``[...]``)."""

POSITIVE, NEGATIVE = to_rgb(RED), to_rgb(PALETTE[0])
"""Highlight colours of atoms that raise (red) and lower (blue) the logit."""


def integrated_gradients(model: Any, ids: torch.Tensor, lengths: torch.Tensor, steps: int = 32, *,
                         max_batch: int = 4096) -> torch.Tensor:
    """Integrated gradients of each molecule's logit w.r.t. the embedding output, per token: ``(B, L)``.

    ``ids (B, L)`` right-padded token ids and ``lengths (B,)`` as the lab's models take them; ``model``
    has ``embed(ids, lengths) -> emb (B, l, E)`` and ``forward_embedded(emb, lengths) -> logits (B,)``
    (``l <= L``: the :class:`OneHotMLP` sees only its first ``max_tokens`` tokens; positions it does
    not see get 0). The baseline is the zero embedding, and the path integral is the midpoint rule
    with ``steps`` points ``alpha = (k + 1/2) / steps``: the token's attribution is
    ``sum_E emb * mean_k grad(alpha_k * emb)``. All ``steps * B`` scaled inputs run as one batch
    (in chunks of at most ``max_batch`` rows), never one molecule at a time.

    Completeness: each row sums to ``logit(x) - logit(baseline)``, up to the quadrature error,
    which shrinks as ``steps`` grows (``O(1/steps**2)`` for smooth models).

    Padding positions (``>= length``) are exactly 0. The model runs in eval mode (every submodule's
    flag restored afterwards) and gradients are taken w.r.t. the input only: no parameter's ``.grad``
    is created or changed. The result is detached, on ``ids``'s device, in the embedding's dtype.
    """
    if steps < 1:
        raise RobustlabError(f"integrated gradients needs steps >= 1, got {steps}")
    if max_batch < 1:
        raise RobustlabError(f"max_batch must be >= 1, got {max_batch}")
    with eval_mode(model), torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
        # cuDNN's RNN backward refuses eval mode; the native kernels compute the same gradients.
        with torch.no_grad():
            emb = model.embed(ids, lengths).detach()
        b, l = emb.shape[:2]
        alphas = (torch.arange(steps, device=emb.device, dtype=emb.dtype) + 0.5) / steps
        per_chunk = max(1, max_batch // max(b, 1))  # alpha values per forward pass
        grad_sum = torch.zeros_like(emb)
        for start in range(0, steps, per_chunk):
            chunk = alphas[start : start + per_chunk]
            scaled = (chunk.view(-1, 1, 1, 1) * emb[None]).reshape(-1, *emb.shape[1:]).requires_grad_(True)
            logits = model.forward_embedded(scaled, lengths.repeat(len(chunk)))
            (grad,) = torch.autograd.grad(logits.sum(), scaled)
            grad_sum += grad.view(len(chunk), *emb.shape).sum(0)
    attr = (emb * grad_sum / steps).sum(-1)  # (B, l); baseline 0, so emb - baseline = emb
    out = torch.zeros(ids.shape, dtype=attr.dtype, device=attr.device)
    out[:, :l] = attr
    return out * valid_mask(ids, lengths.to(ids.device))


def _parse(smiles: str) -> Any:
    """RDKit molecule of ``smiles`` with explicit hydrogen atoms (``[H]``) kept, so every atom token
    has its atom; atoms numbered in the order they appear in the string."""
    from rdkit import Chem

    params = Chem.SmilesParserParams()
    params.removeHs = False
    with quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles, params)
    if mol is None:
        raise RobustlabError(f"rdkit does not parse SMILES {smiles!r}")
    return mol


def atom_weights(smiles: str, token_weights: Sequence[float] | torch.Tensor | np.ndarray,
                 tokenizer: str = "regex") -> list[float]:
    """Per-atom weights, in RDKit's atom order, from the per-token weights of ``smiles``.

    ``token_weights`` has one entry per token of ``tokenize(smiles, tokenizer)`` (a row of
    :func:`integrated_gradients` sliced to the molecule's length). RDKit numbers atoms in the order
    they appear in the string, so atom tokens (bracket atoms, ``Cl``, ``Br``, the organic-subset and
    aromatic symbols, ``*``) map to atoms one-to-one, in order; bond symbols, ring digits and
    parentheses are dropped. With the ``char`` tokenizer, the characters of one atom (``C`` + ``l``,
    ``B`` + ``r``, ``[`` … ``]``) add up onto it. Explicit ``[H]`` atoms count as atoms (the molecule
    parsed with hydrogens kept — the same atoms as ``Chem.MolFromSmiles`` when there are none).
    Raises :class:`RobustlabError` when the counts do not match or the SMILES does not parse.
    """
    weights = np.asarray(token_weights.detach().cpu() if isinstance(token_weights, torch.Tensor) else token_weights,
                         dtype=float).reshape(-1)
    tokens = tokenize(smiles, tokenizer)
    if len(weights) != len(tokens):
        raise RobustlabError(f"{len(weights)} token weights for the {len(tokens)} {tokenizer} tokens of {smiles!r}; "
                             "pass one weight per token (slice padding off)")
    # Weights per regex token: a regex token spans one or more characters, the char tokens.
    regex = tokenize(smiles, "regex")
    if tokenizer == "char":
        bounds = np.cumsum([0] + [len(t) for t in regex])
        per_token = [float(weights[a:b].sum()) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    else:
        per_token = [float(w) for w in weights]
    atoms = [w for t, w in zip(regex, per_token, strict=True) if t.startswith("[") or t in ATOM_TOKENS]
    n = _parse(smiles).GetNumAtoms()
    if len(atoms) != n:
        raise RobustlabError(f"{len(atoms)} atom tokens but rdkit finds {n} atoms in SMILES {smiles!r}")
    return atoms


def _highlight(weights: Sequence[float]) -> dict[int, tuple[float, float, float]]:
    """Atom index → RGB: red for positive, blue for negative weights, blended with white in
    proportion to ``|w| / max|w|`` (atoms of weight 0 are not highlighted)."""
    w = np.asarray(weights, dtype=float)
    scale = float(np.abs(w).max()) if len(w) else 0.0
    colours = {}
    for i, v in enumerate(w):
        if v == 0 or scale == 0:
            continue
        t, base = abs(v) / scale, POSITIVE if v > 0 else NEGATIVE
        colours[i] = tuple(1.0 - t * (1.0 - c) for c in base)
    return colours


def _molecule_png(smiles: str, weights: Sequence[float], size: int) -> bytes:
    """One molecule drawn by RDKit's Cairo drawer, atoms highlighted by weight, as PNG bytes."""
    from rdkit.Chem.Draw import rdMolDraw2D

    mol = _parse(smiles)
    if len(weights) != mol.GetNumAtoms():
        raise RobustlabError(f"{len(weights)} atom weights for the {mol.GetNumAtoms()} atoms of {smiles!r}")
    colours = _highlight(weights)
    drawer = rdMolDraw2D.MolDraw2DCairo(size, size)
    drawer.DrawMolecule(mol, highlightAtoms=list(colours), highlightAtomColors=colours, highlightBonds=[])
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def draw_attributions(smiles_list: Sequence[str], weights_list: Sequence[Sequence[float]], titles: Sequence[str],
                      path: str | Path, *, max_molecules: int = 12, columns: int = 4, size: int = 300) -> Path:
    """A PNG grid of the first ``max_molecules`` molecules, ``columns`` per row, each with its atoms
    highlighted by its weights (from :func:`atom_weights`: red raises the logit, blue lowers it,
    intensity ``|w| / max|w|`` within the molecule) and its title above. Each panel is drawn by
    RDKit's ``MolDraw2DCairo`` at ``size`` × ``size`` pixels; the grid is written atomically by
    :func:`robustlab.viz.figure.save_figure`. Returns ``path``."""
    from PIL import Image

    if not (len(smiles_list) == len(weights_list) == len(titles)):
        raise RobustlabError(f"draw_attributions got {len(smiles_list)} SMILES, {len(weights_list)} weight lists "
                             f"and {len(titles)} titles; pass one of each per molecule")
    if not smiles_list:
        raise RobustlabError("draw_attributions needs at least one molecule")
    if max_molecules < 1 or columns < 1:
        raise RobustlabError(f"max_molecules and columns must be >= 1, got {max_molecules} and {columns}")
    n = min(len(smiles_list), max_molecules)
    cols = min(columns, n)
    rows = -(-n // cols)
    fig = new_figure(2.6 * cols, 2.8 * rows)
    for i in range(n):
        image = Image.open(io.BytesIO(_molecule_png(smiles_list[i], list(weights_list[i]), size)))
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(np.asarray(image.convert("RGB")))
        ax.set_axis_off()
        ax.set_title(str(titles[i]), fontsize=8)
    return save_figure(fig, path)
