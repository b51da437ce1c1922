"""The registry: names, parameters with defaults, descriptions, references and docstrings."""

from __future__ import annotations

import pytest
import torch

from robustlab.attacks import (
    ATTACKS,
    PGD,
    Attack,
    TorchattacksAttack,
    build_attack,
    list_attacks,
)

EXPECTED = {
    "fgsm",
    "pgd",
    "apgd-ce",
    "apgd-dlr",
    "cw-l2",
    "deepfool",
    "square",
    "uap",
    "gaussian-noise",
    "torchattacks",
}


def test_every_attack_is_registered() -> None:
    assert set(ATTACKS) == EXPECTED


def test_list_attacks_describes_every_attack() -> None:
    infos = list_attacks()
    assert {i.name for i in infos} == EXPECTED
    for info in infos:
        assert issubclass(info.cls, Attack)
        assert info.description and "\n" not in info.description
        assert info.reference and any(ch.isdigit() for ch in info.reference)  # names the year
        doc = info.cls.__doc__ or ""
        assert "Reference" in doc and "Args" in doc, info.name
        if info.name != "torchattacks":
            assert "Shapes" in doc or "shape" in doc.lower(), info.name
    pgd = next(i for i in infos if i.name == "pgd")
    assert pgd.params["steps"] == 10 and pgd.params["norm"] == "linf" and pgd.params["random_start"] is True
    assert pgd.params["restarts"] == 1 and pgd.params["targeted"] is False and "seed" in pgd.params
    deepfool = next(i for i in infos if i.name == "deepfool")
    assert deepfool.params["overshoot"] == 0.02


@pytest.mark.parametrize("name", sorted(EXPECTED - {"torchattacks"}))
def test_build_with_defaults_and_repr(name: str) -> None:
    attack = build_attack(name)
    assert type(attack) is ATTACKS[name]
    assert type(attack).__name__ in repr(attack)
    params = attack.params()
    rebuilt = build_attack(name, **params)
    assert rebuilt.params() == params


def test_build_normalises_names_and_defaults_eps_by_norm() -> None:
    assert isinstance(build_attack("PGD"), PGD)
    assert build_attack("apgd_ce").name == "apgd-ce"
    assert build_attack("pgd").eps == pytest.approx(8 / 255)
    assert build_attack("pgd", norm="l2").eps == 0.5
    assert build_attack("pgd", eps=0.1, steps=4).step_sizes() == [pytest.approx(2.5 * 0.1 / 4)] * 4


def test_torchattacks_through_the_registry() -> None:
    import torchattacks  # noqa: F401 (a declared dev dependency: missing is a failure)
    a = build_attack("torchattacks:PGD", eps=0.1, steps=2)
    b = build_attack("torchattacks", attack="pgd", eps=0.1, steps=2)
    assert isinstance(a, TorchattacksAttack) and a.attack == b.attack == "PGD"
    assert a.eps == 0.1 and a.norm == "linf"
    assert build_attack("torchattacks:PGDL2", eps=0.5).norm == "l2"
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    x = torch.rand(2, 1, 4, 4)
    y = torch.tensor([0, 2])
    assert torch.equal(a(model, x, y), b(model, x, y))


def test_attack_objects_hold_no_model() -> None:
    attack = build_attack("pgd", steps=2)
    assert not any(isinstance(v, torch.nn.Module) for v in vars(attack).values())
