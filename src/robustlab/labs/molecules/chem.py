"""RDKit at the lab's edge: parsing, canonical and randomised SMILES, structure keys, scaffolds and
Morgan fingerprints. Every other module of the lab sees strings and arrays only."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from robustlab.core.errors import RobustlabError


def _rdkit():
    try:
        from rdkit import Chem, RDLogger
    except ImportError as e:  # pragma: no cover - rdkit is a declared dependency
        raise RobustlabError("the molecule lab needs rdkit; install robustlab with `pip install -e .`") from e
    return Chem, RDLogger


@contextmanager
def quiet_rdkit() -> Iterator[None]:
    """Silence RDKit's own stderr messages (parse errors are reported by the lab, with row numbers)."""
    _, RDLogger = _rdkit()
    RDLogger.DisableLog("rdApp.*")
    try:
        yield
    finally:
        RDLogger.EnableLog("rdApp.*")


def parse(smiles: Sequence[str]) -> list:
    """RDKit molecules for ``smiles`` (``None`` where a string does not parse)."""
    Chem, _ = _rdkit()
    with quiet_rdkit():
        return [Chem.MolFromSmiles(s) if s else None for s in smiles]


def canonical(mols: Sequence, stereo: bool = True) -> list[str]:
    """Canonical SMILES of each molecule (``stereo=False``: stereochemistry dropped — the key that
    groups stereoisomers, which would otherwise leak across a split)."""
    Chem, _ = _rdkit()
    return [Chem.MolToSmiles(m, isomericSmiles=stereo) for m in mols]


def scaffolds(mols: Sequence) -> list[str]:
    """Bemis–Murcko scaffold SMILES of each molecule, without chirality (``""`` for acyclic ones)."""
    from rdkit.Chem.Scaffolds import MurckoScaffold

    with quiet_rdkit():
        return [MurckoScaffold.MurckoScaffoldSmiles(mol=m, includeChirality=False) for m in mols]


def randomised(mols: Sequence, n: int, seed: int) -> list[list[str]]:
    """``n`` randomised (non-canonical, valid) SMILES per molecule, reproducible from ``seed``: the
    i-th molecule's strings depend on ``(seed, i)`` only."""
    Chem, _ = _rdkit()
    if n < 1:
        raise RobustlabError(f"the number of randomised SMILES must be >= 1, got {n}")
    # RDKit reads randomSeed 0 as "not seeded" (the stream then depends on earlier calls): never pass 0
    return [list(Chem.MolToRandomSmilesVect(m, n, randomSeed=(int(seed) * 1_000_003 + i) % (2**31 - 1) + 1))
            for i, m in enumerate(mols)]


def morgan(smiles: Sequence[str], radius: int = 2, bits: int = 2048) -> np.ndarray:
    """Morgan (ECFP-like) bit vectors ``(N, bits)`` uint8 of SMILES strings — identical for every
    SMILES of one molecule."""
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=bits)
    out = np.zeros((len(smiles), bits), dtype=np.uint8)
    for i, m in enumerate(parse(smiles)):
        if m is None:
            raise RobustlabError(f"cannot fingerprint SMILES {smiles[i]!r}: rdkit does not parse it")
        out[i] = gen.GetFingerprintAsNumPy(m)
    return out
