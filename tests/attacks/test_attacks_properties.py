"""Property tests: every attack's output lies in [0, 1] and in its eps ball, for random tiny models
(CNNs and MLPs), shapes, budgets, norms and settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from attack_helpers import random_batch, tiny_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from robustlab.attacks import (
    APGDCE,
    APGDDLR,
    CWL2,
    FGSM,
    PGD,
    UAP,
    Attack,
    DeepFool,
    GaussianNoise,
    Square,
    TorchattacksAttack,
    geometry,
)

SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Case:
    model: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor
    eps: float
    norm: str
    targeted: bool
    seed: int
    k: int


@st.composite
def cases(draw: Any, norms: tuple[str, ...] = ("linf", "l2"), min_hw: int = 1) -> Case:
    n = draw(st.integers(1, 4))
    c = draw(st.integers(1, 3))
    h = draw(st.integers(max(2, min_hw), 7))
    w = draw(st.integers(max(2, min_hw), 7))
    k = draw(st.integers(4, 6))
    kind = draw(st.sampled_from(["cnn", "mlp"]))
    seed = draw(st.integers(0, 2**16))
    norm = draw(st.sampled_from(norms))
    top = 0.5 if norm == "linf" else 3.0
    eps = draw(st.one_of(st.just(0.0), st.floats(1e-4, top), st.just(top)))
    x, y = random_batch(n, c, h, w, k, seed)
    model = tiny_model(kind, c, h, w, k, seed)
    return Case(model, x, y, eps, norm, draw(st.booleans()), seed, k)


def check_threat_model(case: Case, x_adv: torch.Tensor, eps: float | None = None, norm: str | None = None) -> None:
    eps = case.eps if eps is None else eps
    norm = case.norm if norm is None else norm
    x = case.x
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    assert not x_adv.requires_grad
    assert torch.isfinite(x_adv).all()
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    d = (x_adv.double() - x.double()).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert (size <= eps + 1e-6).all(), f"{norm} sizes {size.tolist()} exceed eps={eps}"


def run_and_check(case: Case, attack: Attack, eps: float | None = None, norm: str | None = None) -> None:
    x_before = case.x.clone()
    x_adv = attack(case.model, case.x, case.y)
    assert torch.equal(case.x, x_before)
    check_threat_model(case, x_adv, eps, norm)


@given(case=cases())
@SETTINGS
def test_fgsm_in_threat_model(case: Case) -> None:
    run_and_check(case, FGSM(eps=case.eps, norm=case.norm, targeted=case.targeted))


@given(
    case=cases(),
    steps=st.integers(1, 4),
    restarts=st.integers(1, 2),
    random_start=st.booleans(),
    schedule=st.sampled_from(["constant", "cosine"]),
    loss=st.sampled_from(["ce", "margin", "dlr"]),
    stop=st.booleans(),
    alpha=st.one_of(st.none(), st.floats(1e-3, 1.0)),
)
@SETTINGS
def test_pgd_in_threat_model(case: Case, steps, restarts, random_start, schedule, loss, stop, alpha) -> None:
    atk = PGD(
        eps=case.eps,
        alpha=alpha,
        steps=steps,
        norm=case.norm,
        random_start=random_start,
        restarts=restarts,
        targeted=case.targeted,
        alpha_schedule=schedule,
        loss=loss,
        stop_on_success=stop,
        seed=case.seed,
    )
    run_and_check(case, atk)


@given(
    case=cases(),
    cls=st.sampled_from([APGDCE, APGDDLR]),
    steps=st.integers(1, 8),
    restarts=st.integers(1, 2),
    stop=st.booleans(),
)
@SETTINGS
def test_apgd_in_threat_model(case: Case, cls: type, steps: int, restarts: int, stop: bool) -> None:
    atk = cls(
        eps=case.eps,
        steps=steps,
        norm=case.norm,
        restarts=restarts,
        targeted=case.targeted,
        stop_on_success=stop,
        seed=case.seed,
    )
    run_and_check(case, atk)


@given(
    case=cases(norms=("l2",)),
    steps=st.integers(1, 5),
    bss=st.integers(1, 2),
    lr=st.floats(0.01, 0.5),
    kappa=st.sampled_from([0.0, 0.5]),
)
@SETTINGS
def test_cw_in_threat_model(case: Case, steps: int, bss: int, lr: float, kappa: float) -> None:
    atk = CWL2(eps=case.eps, steps=steps, binary_search_steps=bss, lr=lr, kappa=kappa, targeted=case.targeted)
    run_and_check(case, atk)


@given(case=cases(), steps=st.integers(1, 5), num_classes=st.integers(2, 6), overshoot=st.floats(0.0, 0.5))
@SETTINGS
def test_deepfool_in_threat_model(case: Case, steps: int, num_classes: int, overshoot: float) -> None:
    atk = DeepFool(eps=case.eps, norm=case.norm, steps=steps, num_classes=num_classes, overshoot=overshoot)
    run_and_check(case, atk)


@given(case=cases(norms=("linf",)), n_queries=st.integers(1, 25), p_init=st.floats(0.05, 1.0))
@SETTINGS
def test_square_in_threat_model(case: Case, n_queries: int, p_init: float) -> None:
    atk = Square(eps=case.eps, n_queries=n_queries, p_init=p_init, targeted=case.targeted, seed=case.seed)
    run_and_check(case, atk)


@given(case=cases(), random_start=st.booleans(), epochs=st.integers(1, 2))
@SETTINGS
def test_uap_in_threat_model(case: Case, random_start: bool, epochs: int) -> None:
    uap = UAP(eps=case.eps, norm=case.norm, random_start=random_start, seed=case.seed)
    uap.fit(case.model, [(case.x, case.y), case.x], epochs=epochs)
    assert uap.delta is not None and uap.delta.shape == (1, *case.x.shape[1:])
    run_and_check(case, uap)


@given(case=cases(), sigma=st.floats(0.0, 2.0), bounded=st.booleans())
@SETTINGS
def test_noise_in_threat_model(case: Case, sigma: float, bounded: bool) -> None:
    atk = GaussianNoise(sigma=sigma, eps=case.eps if bounded else None, norm=case.norm, seed=case.seed)
    x_adv = atk(case.model, case.x)
    if bounded:
        check_threat_model(case, x_adv)
    else:
        check_threat_model(case, x_adv, eps=1.0, norm="linf")


@given(case=cases(), which=st.sampled_from(["FGSM", "PGD", "PGDL2"]))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_torchattacks_adapter_in_threat_model(case: Case, which: str) -> None:
    pytest.importorskip("torchattacks")
    if which == "FGSM":
        atk, norm = TorchattacksAttack("FGSM", eps=case.eps), "linf"
    elif which == "PGD":
        atk, norm = TorchattacksAttack("PGD", eps=case.eps, alpha=max(case.eps / 4, 1e-3), steps=3), "linf"
    else:
        atk, norm = TorchattacksAttack("PGDL2", eps=case.eps, alpha=max(case.eps / 4, 1e-3), steps=3), "l2"
    run_and_check(case, atk, norm=norm)


@given(case=cases(), data=st.data())
@SETTINGS
def test_active_rows_only(case: Case, data: st.DataObject) -> None:
    """Rows outside ``active`` come back unchanged; the others stay in the threat model."""
    mask = torch.tensor(data.draw(st.lists(st.booleans(), min_size=len(case.x), max_size=len(case.x))))
    atk = PGD(eps=case.eps, norm=case.norm, steps=2, seed=case.seed)
    x_adv = atk(case.model, case.x, case.y, active=mask)
    assert torch.equal(x_adv[~mask], case.x[~mask])
    check_threat_model(case, x_adv)


# -- the geometries --------------------------------------------------------------------------------------


@given(
    norm=st.sampled_from(["linf", "l2"]),
    shape=st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(1, 6), st.integers(1, 6)),
    eps=st.floats(0.0, 4.0),
    scale=st.floats(1e-3, 10.0),
    seed=st.integers(0, 2**16),
)
@settings(max_examples=30, deadline=None)
def test_geometry_projection_and_start(norm: str, shape: tuple[int, ...], eps: float, scale: float, seed: int) -> None:
    geom = geometry(norm)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g)
    delta = torch.randn(shape, generator=g) * scale
    p = geom.project(delta, eps)
    assert (geom.norms(p) <= eps * (1 + 1e-6) + 1e-7).all()
    assert torch.allclose(geom.project(p, eps), p, atol=1e-6)  # idempotent
    start = geom.random_start(x, eps, g)
    assert (geom.norms(start) <= eps * (1 + 1e-6) + 1e-7).all()
    lo, hi = geom.bounds(x, eps)
    f = geom.feasible(delta.clone(), eps, lo, hi)
    assert ((x + f) >= -1e-6).all() and ((x + f) <= 1 + 1e-6).all()
    assert (geom.norms(f) <= eps * (1 + 1e-6) + 1e-7).all()
    d = geom.direction(torch.randn(shape, generator=g))
    assert torch.allclose(geom.norms(d), torch.ones(shape[0]), atol=1e-5)  # unit steepest-ascent step


def test_l2_random_start_is_uniform_in_the_ball() -> None:
    """Radius of a uniform point in a d-ball: P(r <= t·eps) = t^d, so (r/eps)^d is uniform on [0, 1]."""
    geom = geometry("l2")
    x = torch.zeros(4000, 1, 2, 2)  # d = 4
    delta = geom.random_start(x, 2.0, torch.Generator().manual_seed(0))
    u = (geom.norms(delta) / 2.0) ** 4
    assert abs(u.mean().item() - 0.5) < 0.02
    assert abs((u < 0.25).float().mean().item() - 0.25) < 0.03
    directions = delta.flatten(1) / geom.norms(delta)[:, None]
    assert directions.mean(0).abs().max() < 0.05  # no preferred direction


def test_linf_random_start_is_uniform_in_the_cube() -> None:
    delta = geometry("linf").random_start(torch.zeros(2000, 3, 4, 4), 0.5, torch.Generator().manual_seed(0))
    assert delta.abs().max() <= 0.5
    assert abs(delta.mean().item()) < 0.01
    assert abs((delta.abs() < 0.25).float().mean().item() - 0.5) < 0.01
