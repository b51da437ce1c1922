"""Cross-validation folds of a molecule table: stratified on random splits, or stratified and grouped
so that every group (a Bemis–Murcko scaffold, or one structure across its stereoisomers) lies on one
side only — random folds put near-identical molecules on both sides and overstate accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from robustlab.core.errors import RobustlabError
from robustlab.labs.molecules import chem

SplitKind = Literal["random", "scaffold", "structure"]


def split_groups(smiles: Sequence[str], kind: SplitKind) -> np.ndarray | None:
    """Group id per molecule for ``kind`` (``None`` for random folds)."""
    if kind == "random":
        return None
    mols = chem.parse(smiles)
    keys = chem.scaffolds(mols) if kind == "scaffold" else chem.canonical(mols, stereo=False)
    if kind == "scaffold":  # acyclic molecules have the empty scaffold: each is its own group
        keys = [k or f"acyclic:{s}" for k, s in zip(keys, smiles, strict=True)]
    _, ids = np.unique(np.asarray(keys, dtype=object).astype(str), return_inverse=True)
    return ids


def fold_indices(
    labels: np.ndarray, groups: np.ndarray | None, folds: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` pairs ``(train indices, test indices)``, every molecule in exactly one test fold,
    class balance kept per fold, groups never split; a function of ``(labels, groups, folds, seed)``."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if folds < 2:
        raise RobustlabError(f"cross-validation needs at least 2 folds, got {folds}")
    minority = int(min(labels.sum(), len(labels) - labels.sum()))
    if minority < folds:
        raise RobustlabError(f"{folds} folds need at least {folds} molecules of each class; "
                             f"the smaller class has {minority}")
    x = np.zeros((len(labels), 1))
    if groups is None:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
        return [(tr, te) for tr, te in splitter.split(x, labels)]
    if len(np.unique(groups)) < folds:
        raise RobustlabError(f"{folds} folds need at least {folds} groups, found {len(np.unique(groups))}")
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    return [(tr, te) for tr, te in splitter.split(x, labels, groups)]


def split_fold(labels: np.ndarray, groups: np.ndarray | None, folds: int, fold: int, val_fraction: float,
               seed: int) -> dict[str, np.ndarray]:
    """Indices of ``train``/``val``/``test`` for fold ``fold``: the test fold of the k-fold split and a
    validation part of about ``val_fraction`` held out of the rest with the same grouping (none when 0)."""
    if not 0 <= fold < folds:
        raise RobustlabError(f"fold must be in [0, {folds - 1}], got {fold}")
    train, test = fold_indices(labels, groups, folds, seed)[fold]
    out = {"train": train, "test": test}
    if val_fraction > 0:
        inner = max(2, round(1 / val_fraction))
        sub_groups = None if groups is None else groups[train]
        tr, va = fold_indices(labels[train], sub_groups, inner, seed + 1)[0]
        out["train"], out["val"] = train[tr], train[va]
    return out
