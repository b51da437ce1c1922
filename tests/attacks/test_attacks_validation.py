"""Bad arguments raise ValueError (RobustlabError) with one line naming the value and what is allowed."""

from __future__ import annotations

import re

import pytest
import torch
from attack_helpers import random_batch, tiny_model
from torch import nn

from robustlab.attacks import (
    APGDCE,
    APGDDLR,
    CWL2,
    FGSM,
    PGD,
    UAP,
    DeepFool,
    GaussianNoise,
    Square,
    TorchattacksAttack,
    build_attack,
)
from robustlab.core.errors import RobustlabError


def raises(match: str):
    """``pytest.raises`` for a one-line RobustlabError (a ValueError) matching ``match``."""
    return pytest.raises(RobustlabError, match=match)


def one_line(exc: pytest.ExceptionInfo) -> None:
    assert isinstance(exc.value, ValueError)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: PGD(eps=-0.1), r"eps must be .*>= 0.*-0\.1"),
        (lambda: PGD(eps=float("nan")), r"eps must be a finite number"),
        (lambda: PGD(eps="big"), r"eps must be a finite number.*'big'"),
        (lambda: PGD(alpha=0.0), r"alpha must be .*> 0.*0\.0"),
        (lambda: PGD(alpha=-1), r"alpha must be"),
        (lambda: PGD(steps=0), r"steps must be an integer >= 1, got 0"),
        (lambda: PGD(steps=2.5), r"steps must be an integer >= 1, got 2\.5"),
        (lambda: PGD(restarts=0), r"restarts must be an integer >= 1"),
        (lambda: PGD(norm="l1"), r"unknown norm 'l1'; choose one of: l2, linf"),
        (lambda: PGD(norm=2), r"unknown norm 2"),
        (lambda: PGD(alpha_schedule="step"), r"unknown alpha_schedule 'step'; choose one of"),
        (lambda: PGD(loss="hinge"), r"unknown loss 'hinge'; choose one of: ce, dlr, margin"),
        (lambda: PGD(targeted="yes"), r"targeted must be true or false"),
        (lambda: PGD(seed=-1), r"seed must be an integer >= 0"),
        (lambda: FGSM(eps=-1), r"eps must be"),
        (lambda: APGDCE(steps=0), r"steps must be"),
        (lambda: APGDCE(rho=1.5), r"rho must be .*<= 1"),
        (lambda: CWL2(c=0), r"c must be .*> 0"),
        (lambda: CWL2(kappa=-1), r"kappa must be .*>= 0"),
        (lambda: CWL2(lr=0), r"lr must be"),
        (lambda: CWL2(binary_search_steps=0), r"binary_search_steps must be"),
        (lambda: DeepFool(num_classes=1), r"num_classes must be an integer >= 2"),
        (lambda: DeepFool(overshoot=-0.1), r"overshoot must be"),
        (lambda: DeepFool(norm="l0"), r"unknown norm 'l0'"),
        (lambda: Square(n_queries=0), r"n_queries must be"),
        (lambda: Square(p_init=0), r"p_init must be"),
        (lambda: GaussianNoise(sigma=-1), r"sigma must be"),
        (lambda: UAP(alpha=0), r"alpha must be"),
        (lambda: UAP(loss_clip=0), r"loss_clip must be"),
    ],
)
def test_bad_parameters(factory, match: str) -> None:
    with raises(match) as exc:
        factory()
    one_line(exc)


@pytest.fixture
def setup():
    model = tiny_model("cnn", 1, 6, 6, 5, seed=0)
    x, y = random_batch(4, 1, 6, 6, 5, seed=0)
    return model, x, y


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda x, y: (x * 2, y), r"x must hold pixels in \[0, 1\], got values in \[0, 2\]"),
        (lambda x, y: (x - 0.5, y), r"x must hold pixels in \[0, 1\], got values in \[-0\.5"),
        (lambda x, y: (x.masked_fill(x > 0.5, float("nan")), y), r"x contains NaN or inf"),
        (lambda x, y: (x.masked_fill(x > 0.5, float("inf")), y), r"x contains NaN or inf"),
        (lambda x, y: ((x * 255).to(torch.uint8), y), r"x must be a floating-point tensor.*uint8"),
        (lambda x, y: (x.numpy(), y), r"x must be a torch.Tensor.*ndarray"),
        (lambda x, y: (x[0, 0, 0], y), r"x must have shape \(N, C, H, W\).*\(6,\)"),
        (lambda x, y: (x, y[:2]), r"labels y must have shape \(4,\) to match x, got \(2,\)"),
        (lambda x, y: (x, y[:, None]), r"labels y must have shape \(4,\)"),
        (lambda x, y: (x, y.float()), r"labels y must be an integer tensor.*float32"),
        (lambda x, y: (x, y > 2), r"labels y must be an integer tensor.*bool"),
        (lambda x, y: (x, y - 10), r"labels y must be class indices >= 0, got -\d+"),
        (lambda x, y: (x, y + 5), r"label \d+ is out of range for a model with 5 classes \(allowed: 0\.\.4\)"),
        (lambda x, y: (x, None), r"attack pgd needs labels y"),
        (lambda x, y: (x, y.tolist()), r"labels y must be a torch.Tensor"),
    ],
)
def test_bad_inputs(setup, mutate, match: str) -> None:
    model, x, y = setup
    xb, yb = mutate(x, y)
    with raises(match) as exc:
        PGD(eps=0.1, steps=1)(model, xb, yb)
    one_line(exc)


class BadModel(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.lin = nn.Linear(36, 5)

    def forward(self, x):
        z = self.lin(x.flatten(1))
        if self.kind == "1d":
            return z.sum(1)
        if self.kind == "rows":
            return z[:-1]
        if self.kind == "tuple":
            return z, z
        return z[:, :, None]


@pytest.mark.parametrize("kind", ["1d", "rows", "tuple", "3d"])
@pytest.mark.parametrize(
    "attack",
    [
        FGSM(eps=0.1),
        PGD(eps=0.1, steps=1),
        Square(eps=0.1, n_queries=2),
        DeepFool(steps=1),
        CWL2(steps=1, binary_search_steps=1),
        APGDCE(eps=0.1, steps=1),
    ],
)
def test_model_must_return_2d_logits_with_n_rows(setup, kind: str, attack) -> None:
    _, x, y = setup
    with raises(r"the model must return logits of shape \(N, num_classes\) = \(\d+, K\)") as exc:
        attack(BadModel(kind), x, y)
    one_line(exc)


def test_dlr_needs_three_classes_and_four_when_targeted() -> None:
    x, y = random_batch(4, 1, 6, 6, 2, seed=0)
    with raises(r"DLR loss needs at least 3 classes, the model has 2"):
        APGDDLR(eps=0.1, steps=1)(tiny_model("mlp", 1, 6, 6, 2, seed=0), x, y)
    with raises(r"targeted DLR loss needs at least 4 classes, the model has 3"):
        APGDDLR(eps=0.1, steps=1, targeted=True)(tiny_model("mlp", 1, 6, 6, 3, seed=0), x, y)
    with raises(r"DLR loss needs at least 3 classes"):
        PGD(eps=0.1, steps=1, loss="dlr")(tiny_model("mlp", 1, 6, 6, 2, seed=0), x, y)


def test_other_misuse(setup) -> None:
    model, x, y = setup
    with raises(r"square needs images \(N, C, H, W\) with H, W >= 2"):
        Square(eps=0.1)(model, x[:, :, :1, :1].contiguous(), y)
    with raises(r"this UAP has no perturbation yet: call fit"):
        UAP()(model, x)
    with raises(r"the loader yielded no images"):
        UAP().fit(model, [])
    with raises(r"a loader batch must be"):
        UAP().fit(model, [123])
    with raises(r"the universal perturbation has shape \(1, 6, 6\), images have shape \(3, 6, 6\)"):
        u = UAP().fit(model, [x])
        u(model, x.repeat(1, 3, 1, 1))
    with raises(r"model must be a torch module or callable"):
        PGD()(42, x, y)
    with raises(r"active must be a bool tensor of shape \(4,\)"):
        PGD(steps=1)(model, x, y, active=torch.ones(3, dtype=torch.bool))
    with raises(r"active must be a bool tensor"):
        PGD(steps=1)(model, x, y, active=torch.ones(4))


def test_uap_load_refuses_bad_files(tmp_path) -> None:
    with raises(r"does not exist"):
        UAP.load(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with raises(r"is not a readable universal perturbation file") as exc:
        UAP.load(bad)
    one_line(exc)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"delta": torch.zeros(1, 1, 4, 4)}, str(other), metadata={"format": "something-else"})
    with raises(r"is not a robustlab universal perturbation"):
        UAP.load(other)
    big = tmp_path / "big.safetensors"
    meta = {"format": "robustlab-uap", "version": "1", "eps": "0.1", "norm": "linf"}
    save_file({"delta": torch.ones(1, 1, 4, 4)}, str(big), metadata=meta)
    with raises(r"larger than its eps=0\.1"):
        UAP.load(big)


def test_torchattacks_adapter_errors() -> None:
    pytest.importorskip("torchattacks")
    with raises(r"unknown torchattacks attack 'Nope'; choose one of: .*PGD"):
        TorchattacksAttack("Nope")
    with raises(r"unknown parameter 'epsilon' for torchattacks.PGD; allowed: eps, alpha, steps"):
        TorchattacksAttack("PGD", epsilon=0.1)
    with raises(r"attack must be a torchattacks class or its name"):
        TorchattacksAttack(3)


def test_torchattacks_missing_is_a_clear_error(monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torchattacks", None)  # import fails
    with raises(r"torchattacks is not installed; install it with") as exc:
        TorchattacksAttack("PGD", eps=0.1)
    one_line(exc)


def test_registry_errors() -> None:
    with raises(r"unknown attack 'pgdd'; choose one of: apgd-ce, apgd-dlr, .*pgd") as exc:
        build_attack("pgdd")
    one_line(exc)
    with raises(r"unknown parameter 'epsilon' for attack pgd; allowed: eps, alpha, steps, norm"):
        build_attack("pgd", epsilon=0.1)
    with raises(r"unknown parameter 'eps' for attack cw-l2|eps"):
        build_attack("cw-l2", epsilon=1)
    with raises(r"attack torchattacks needs attack="):
        build_attack("torchattacks", eps=0.1)
    with raises(r"steps must be an integer >= 1, got 0"):
        build_attack("apgd_ce", steps=0)


def test_messages_name_the_bad_value() -> None:
    for factory, value in [(lambda: PGD(eps=-3), "-3"), (lambda: PGD(steps=-7), "-7"), (lambda: PGD(norm="L7"), "L7")]:
        with pytest.raises(ValueError) as exc:
            factory()
        assert re.search(re.escape(value), str(exc.value))
