"""Integrated gradients over SMILES token embeddings, their mapping onto atoms, and the atom drawings."""

from __future__ import annotations

import pytest
import torch

from robustlab.core.errors import RobustlabError
from robustlab.labs.molecules import attribution
from robustlab.labs.molecules.attribution import atom_weights, draw_attributions, integrated_gradients
from robustlab.labs.molecules.models import OneHotMLP, SmilesLSTM

SMILES = "CC(Cl)c1ccccc1Br"


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Three right-padded rows of ids in 2..11 (vocab 12), lengths 10, 6 and 3; width 12 so the
    MLP's ``max_tokens=10`` cuts the longest row."""
    gen = torch.Generator().manual_seed(1)
    lengths = torch.tensor([10, 6, 3])
    ids = torch.randint(2, 12, (3, 12), generator=gen)
    ids[torch.arange(12)[None] >= lengths[:, None]] = 0
    return ids, lengths


def _models() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    lstm = SmilesLSTM(vocab=12, embed=8, hidden=8, fc=8, dropout=0.0, bidirectional=True)
    mlp = OneHotMLP(vocab=12, max_tokens=10, hidden=16, dropout=0.0)
    return [lstm, mlp]


@pytest.mark.parametrize("index", [0, 1], ids=["lstm", "onehot-mlp"])
def test_integrated_gradients_completeness_padding_and_hygiene(index):
    model = _models()[index]
    model.train()
    model.head.eval()  # a submodule's own flag must come back too
    ids, lengths = _batch()
    attr = integrated_gradients(model, ids, lengths, steps=256)
    assert attr.shape == ids.shape and not attr.requires_grad
    with torch.no_grad():
        emb = model.embed(ids, lengths)
        gap = model.forward_embedded(emb, lengths) - model.forward_embedded(torch.zeros_like(emb), lengths)
    scale = max(gap.abs().max().item(), 1e-3)
    assert gap.abs().max() > 1e-3  # a non-trivial check
    torch.testing.assert_close(attr.sum(1), gap, atol=1e-2 * scale, rtol=0)
    pad = torch.arange(ids.shape[1])[None] >= lengths[:, None]
    assert (attr[pad] == 0).all()
    assert attr[~pad].abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())
    assert model.training and not model.head.training
    assert all(m.training for name, m in model.named_modules() if not name.startswith("head"))


class Cubic(torch.nn.Module):
    """``logit = w * sum(emb**3)`` over every position (padding included, so only the function's
    mask can zero it), recording the training flag it runs under. Its exact midpoint-rule integrated
    gradient with ``s`` steps is ``w * sum_E emb**3 * (1 - 1 / (4 s**2))``, since the mean of
    ``alpha**2`` over the midpoints is ``1/3 - 1/(12 s**2)``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.nn.Embedding(12, 3)
        self.w = torch.nn.Parameter(torch.tensor(1.5))
        self.drop = torch.nn.Dropout(0.5)
        self.seen: list[bool] = []

    def embed(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.table(ids) + 0.5

    def forward_embedded(self, emb: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.training)
        return self.w * self.drop(emb**3).sum((1, 2))


@pytest.mark.parametrize("steps", [1, 4])
def test_integrated_gradients_is_the_midpoint_rule_in_eval_mode(steps):
    model = Cubic().train()
    ids, lengths = _batch()
    attr = integrated_gradients(model, ids, lengths, steps=steps, max_batch=4)  # 1 alpha per pass
    with torch.no_grad():
        exact = model.w * (model.embed(ids, lengths) ** 3).sum(-1) * (1 - 1 / (4 * steps**2))
    valid = torch.arange(ids.shape[1])[None] < lengths[:, None]
    torch.testing.assert_close(attr, torch.where(valid, exact, torch.zeros_like(exact)))
    assert model.seen == [False] * steps and model.training and model.drop.training
    assert model.w.grad is None and model.table.weight.grad is None


def test_integrated_gradients_error_shrinks_with_steps_and_chunking_agrees():
    model = _models()[0]
    ids, lengths = _batch()
    with torch.no_grad():
        emb = model.embed(ids, lengths)
        gap = model.forward_embedded(emb, lengths) - model.forward_embedded(torch.zeros_like(emb), lengths)
    coarse = (integrated_gradients(model, ids, lengths, steps=2).sum(1) - gap).abs().max()
    fine = integrated_gradients(model, ids, lengths, steps=64)
    assert (fine.sum(1) - gap).abs().max() < coarse
    chunked = integrated_gradients(model, ids, lengths, steps=64, max_batch=7)  # 2 alphas per pass
    torch.testing.assert_close(chunked, fine, atol=1e-6, rtol=1e-5)
    with pytest.raises(RobustlabError, match="steps"):
        integrated_gradients(model, ids, lengths, steps=0)


def test_atom_weights_regex_tokens_map_in_order():
    from rdkit import Chem

    tokens = ["C", "C", "(", "Cl", ")", "c", "1", "c", "c", "c", "c", "c", "1", "Br"]
    weights = [float(i) for i in range(len(tokens))]
    atoms = atom_weights(SMILES, weights, "regex")
    mol = Chem.MolFromSmiles(SMILES)
    assert len(atoms) == mol.GetNumAtoms() == 10
    assert mol.GetAtomWithIdx(2).GetSymbol() == "Cl" and atoms[2] == 3.0
    assert mol.GetAtomWithIdx(9).GetSymbol() == "Br" and atoms[9] == 13.0
    assert atoms == [0.0, 1.0, 3.0, 5.0, 7.0, 8.0, 9.0, 10.0, 11.0, 13.0]
    assert atom_weights(SMILES, torch.tensor(weights), "regex") == atoms


def test_atom_weights_char_tokens_fold_two_letter_atoms_and_brackets():
    weights = [float(i) for i in range(len(SMILES))]  # C C ( C l ) c 1 c c c c c 1 B r
    atoms = atom_weights(SMILES, weights, "char")
    assert len(atoms) == 10
    assert atoms[2] == 3.0 + 4.0  # "C" + "l" of Cl on the Cl atom
    assert atoms[9] == 14.0 + 15.0  # "B" + "r"
    assert atoms[:2] == [0.0, 1.0]
    bracket = atom_weights("C[NH3+]", [1.0] * 7, "char")
    assert bracket == [1.0, 6.0]


def test_atom_weights_mismatches_raise():
    with pytest.raises(RobustlabError, match="token weights"):
        atom_weights(SMILES, [1.0] * 14, "char")  # regex-length weights with the char tokenizer
    with pytest.raises(RobustlabError, match="token weights"):
        atom_weights(SMILES, [1.0] * 15, "regex")
    with pytest.raises(RobustlabError, match="parse"):
        atom_weights("C1CC", [1.0] * 4, "regex")


def test_atom_weights_checks_rdkit_atom_count(monkeypatch):
    from rdkit import Chem

    monkeypatch.setattr(attribution, "_parse", lambda s: Chem.MolFromSmiles("CC"))
    with pytest.raises(RobustlabError, match="rdkit finds 2 atoms"):
        atom_weights(SMILES, [0.0] * 14, "regex")


def test_draw_attributions_writes_a_png(tmp_path):
    weights = [atom_weights(SMILES, [float(i) - 6 for i in range(14)], "regex"), [0.5, -1.0, 0.0]]
    path = draw_attributions([SMILES, "CCO"], weights, ["chloro", "ethanol"], tmp_path / "sub" / "attr.png")
    assert path == tmp_path / "sub" / "attr.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    assert not list(path.parent.glob("*.tmp*"))
    with pytest.raises(RobustlabError, match="atom weights"):
        draw_attributions(["CCO"], [[1.0]], ["x"], tmp_path / "bad.png")
    with pytest.raises(RobustlabError, match="one of each"):
        draw_attributions(["CCO"], [], ["x"], tmp_path / "bad.png")


def _colour_pixels(path, rgb: tuple[int, int, int]) -> int:
    """How many pixels of the PNG at ``path`` lie within 30 of ``rgb`` in every channel."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=int)
    return int((np.abs(pixels - np.asarray(rgb)).max(-1) <= 30).sum())


def test_draw_attributions_highlights_red_positive_blue_negative(tmp_path):
    red, blue = (0xC6, 0x28, 0x28), (0x00, 0x72, 0xB2)  # robustlab's RED and PALETTE[0] at full intensity
    signed = draw_attributions(["CCC"], [[2.0, -2.0, 0.0]], ["signed"], tmp_path / "signed.png")
    assert _colour_pixels(signed, red) > 100 and _colour_pixels(signed, blue) > 100
    positive = draw_attributions(["CCC"], [[0.0, 3.0, 0.0]], ["positive"], tmp_path / "positive.png")
    assert _colour_pixels(positive, red) > 100 and _colour_pixels(positive, blue) == 0
    faint = draw_attributions(["CCC"], [[4.0, 1.0, 0.0]], ["faint"], tmp_path / "faint.png")
    strong = draw_attributions(["CCC"], [[4.0, 4.0, 0.0]], ["strong"], tmp_path / "strong.png")
    assert _colour_pixels(faint, red) < 0.75 * _colour_pixels(strong, red)  # intensity ∝ |w| / max|w|
    assert _colour_pixels(faint, (0xF1, 0xC9, 0xC9)) > 50  # 1/4 of the way from white to red
    blank = draw_attributions(["CCC"], [[0.0, 0.0, 0.0]], ["none"], tmp_path / "blank.png")
    assert _colour_pixels(blank, red) == 0 and _colour_pixels(blank, blue) == 0
