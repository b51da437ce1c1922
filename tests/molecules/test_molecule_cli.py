"""Bad molecule input from the CLI: one line naming what is wrong (and the line where it applies),
exit code 2, no traceback, and no run folder written."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("rows, header, extra, message", [
    (["CCO,1", "CCN,0"], "smi,y", [], "has no SMILES column 'smiles' (columns: smi, y)"),
    (["CCO,1", "CCN,yes"], "smiles,label", [], "line 3: label 'yes' is not 1 or 0"),
    (["C1CC,1", "xyz,0"], "smiles,label", [], "none of the 2 SMILES parse (first at line 2)"),
    (["CCO,1", "CCCCCCCCCCCC,0"], "smiles,label", ["--set", "data.max_length=8"],
     "line 3: SMILES of 12 tokens is longer than data.max_length 8"),
])
def test_bad_molecule_files_are_one_line_exit_2(tmp_path, cli, rows, header, extra, message):
    path = tmp_path / "mols.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    out = tmp_path / "run"
    code, err = cli(["train", "--task", "molecules", "--set", "data.dataset=csv", "--set", f"data.path={path}",
                      *extra, "--out", str(out)])
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_unknown_molecule_option_names_the_key(cli, tmp_path):
    code, err = cli(["train", "--task", "molecules", "--set", "data.split=murcko", "--out", str(tmp_path / "r")])
    assert code == 2 and "data.split" in err and "random" in err


def test_image_only_data_options_are_refused_not_ignored(cli, tmp_path):
    code, err = cli(["train", "--task", "molecules", "--set", "data.train_subset=100", "--out", str(tmp_path / "r")])
    assert code == 2 and "data.train_subset is not used by the molecule lab" in err
