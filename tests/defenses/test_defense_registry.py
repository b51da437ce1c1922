"""Every defense is registered, lists its parameters, checks its arguments and describes itself."""

from __future__ import annotations

import pytest

from robustlab.core.errors import RobustlabError
from robustlab.defenses import DEFENSES, build_defense, defense_params

ADVERSARIAL = ["pgd-at", "fgsm-rs", "free", "trades", "mixed"]


def test_all_strategies_registered():
    assert {"none", "noise", "pgd-at", "fgsm-rs", "free", "trades", "mixed", "circle"} <= set(DEFENSES)


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_adversarial_defenses_accept_eps_and_norm(name):
    params = defense_params(name)
    assert "eps" in params and "norm" in params
    d = build_defense(name, eps=0.1)
    desc = d.describe()
    assert desc["name"] == name and desc["eps"] == pytest.approx(0.1)
    assert build_defense(name).describe()["eps"] == pytest.approx(8 / 255)  # conventional default
    assert build_defense(name, norm="l2").describe()["eps"] == pytest.approx(0.5)


@pytest.mark.parametrize("name", sorted(DEFENSES))
def test_docstring_first_line_describes(name):
    doc = (DEFENSES[name].__doc__ or "").strip().splitlines()
    assert doc and len(doc[0]) > 10


@pytest.mark.parametrize(
    ("name", "params", "needle"),
    [
        ("pgd-at", {"eps": -0.1}, "eps must be a finite number >= 0"),
        ("pgd-at", {"steps": 0}, "steps must be an integer >= 1"),
        ("pgd-at", {"norm": "l3"}, "unknown norm 'l3'"),
        ("pgd-at", {"attack": "nope"}, "unknown attack 'nope'"),
        ("pgd-at", {"attack_params": {"bogus": 1}}, "unknown parameter 'bogus' for attack pgd"),
        ("fgsm-rs", {"collapse_ratio": 2}, "collapse_ratio must be a finite number >= 0 and <= 1"),
        ("free", {"replays": 0}, "replays must be an integer >= 1"),
        ("trades", {"beta": float("nan")}, "beta must be a finite number"),
        ("mixed", {"p": 1.5}, "p must be a finite number >= 0 and <= 1"),
        ("mixed", {"mode": "half"}, "unknown mode 'half'"),
        ("noise", {"std": 0.1, "variance": 0.01}, "give std or variance, not both"),
        ("noise", {"eps": 0.1}, "unknown parameter 'eps' for defense noise"),
        ("circle", {"gamma": 0}, "gamma must be a finite number > 0"),
    ],
)
def test_bad_arguments_are_one_line_errors(name, params, needle):
    with pytest.raises(RobustlabError, match=None) as info:
        build_defense(name, **params)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_attack_names_follow_the_attack_registry():
    d = build_defense("pgd-at", eps=0.1, attack="APGD_CE", steps=5)
    assert type(d.attack).__name__ == "APGDCE"
    d = build_defense("mixed", eps=0.1)  # FGSM takes no steps/alpha: they are not passed
    assert type(d.attack).__name__ == "FGSM" and d.attack.eps == pytest.approx(0.1)


def test_library_inner_maximiser_gets_the_defense_budget():
    """``attack: torchattacks:PGD`` runs at the defense's eps, alpha and steps, not torchattacks' defaults."""
    from robustlab.defenses import build_defense

    d = build_defense("pgd-at", eps=0.1, steps=7, attack="torchattacks:PGD")
    assert d.attack.params()["eps"] == 0.1 and d.attack.params()["steps"] == 7
    assert d.attack.params()["alpha"] == pytest.approx(2.5 * 0.1 / 7)
    ours = build_defense("pgd-at", eps=0.1, steps=7)
    assert ours.attack.eps == 0.1 and ours.attack.steps == 7
