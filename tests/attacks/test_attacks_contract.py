"""The model-side contract: an attack never changes the model, its input or the global RNG; it is
deterministic given its seed; it works under autocast, in low precision, in float64, inside
no_grad/inference_mode, on empty batches, and on CUDA when there is one."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from attack_helpers import random_batch
from torch import nn

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
    build_attack,
    geometry,
)
from robustlab.models import build_model

EPS = 8 / 255

FACTORIES: dict[str, Callable[[], Attack]] = {
    "fgsm": lambda: FGSM(eps=EPS),
    "fgm-l2": lambda: FGSM(eps=0.5, norm="l2"),
    "pgd": lambda: PGD(eps=EPS, steps=3, restarts=2),
    "pgd-l2-stop": lambda: PGD(eps=0.5, norm="l2", steps=3, stop_on_success=True),
    "apgd-ce": lambda: APGDCE(eps=EPS, steps=4),
    "apgd-dlr": lambda: APGDDLR(eps=0.5, norm="l2", steps=4, restarts=2),
    "cw-l2": lambda: CWL2(steps=3, binary_search_steps=2, eps=1.0, lr=0.1),
    "deepfool": lambda: DeepFool(steps=3, eps=1.0),
    "deepfool-linf": lambda: DeepFool(steps=3, norm="linf", eps=0.1),
    "square": lambda: Square(eps=EPS, n_queries=10),
    "gaussian-noise": lambda: GaussianNoise(sigma=0.1, eps=EPS),
    "torchattacks-pgd": lambda: TorchattacksAttack("PGD", eps=EPS, alpha=2 / 255, steps=2),
    # an attack that calls backward() on the model, as torchattacks' CW does: grads must be restored
    "torchattacks-backward": lambda: TorchattacksAttack(backward_fgsm_class(), eps=EPS),
}


def backward_fgsm_class() -> type:
    """A torchattacks attack that populates parameter ``.grad`` through ``loss.backward()``."""
    import torchattacks  # a declared dev dependency: missing is a failure, not a skip

    class BackwardFGSM(torchattacks.attack.Attack):
        def __init__(self, model: nn.Module, eps: float = EPS) -> None:
            super().__init__("BackwardFGSM", model)
            self.eps = eps
            self.supported_mode = ["default", "targeted"]

        def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            images = images.clone().detach().requires_grad_(True)
            torch.nn.functional.cross_entropy(self.get_logits(images), labels).backward()
            return (images + self.eps * images.grad.sign()).clamp(0, 1).detach()

    return BackwardFGSM


RANDOMIZED = {"pgd", "pgd-l2-stop", "apgd-ce", "apgd-dlr", "square", "gaussian-noise"}


def make_model(seed: int = 0, classes: int = 10) -> nn.Module:
    """A random small_cnn with batch norm and dropout (8×8, one channel)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return build_model("small_cnn", classes, in_channels=1, image_size=8, width=8, dropout=0.5)


def batch(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return random_batch(n, 1, 8, 8, 10, seed)


def threat_ok(attack: Attack, x: torch.Tensor, x_adv: torch.Tensor) -> None:
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and x_adv.device == x.device
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    if attack.eps is not None:
        d = (x_adv.double() - x.double()).flatten(1)
        size = d.abs().amax(1) if attack.norm == "linf" else d.norm(dim=1)
        assert (size <= attack.eps + 1e-6).all()


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_model_input_and_rng_unchanged(name: str) -> None:
    model = make_model()
    model.train()
    model.backbone.features[1].eval()  # mixed modes must come back exactly
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = batch()
    x0 = x.clone()
    rng = torch.get_rng_state()
    attack = FACTORIES[name]()
    x_adv = attack(model, x, y)
    assert [m.training for m in model.modules()] == modes
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), f"{k} changed"
    assert torch.equal(x, x0)
    assert torch.equal(torch.get_rng_state(), rng)
    assert not x_adv.requires_grad
    threat_ok(attack, x, x_adv)


@pytest.mark.parametrize("name", ["pgd", "cw-l2", "torchattacks-backward"])
def test_existing_parameter_grads_untouched(name: str) -> None:
    model = make_model()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    before = [p.grad for p in model.parameters()]
    x, y = batch()
    FACTORIES[name]()(model, x, y)
    for p, g in zip(model.parameters(), before, strict=True):
        assert p.grad is g and torch.all(g == 0.5)


def test_uap_fit_leaves_model_unchanged() -> None:
    model = make_model()
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = batch(16)
    rng = torch.get_rng_state()
    uap = UAP(eps=EPS, random_start=True).fit(model, [(x, y)], epochs=2)
    uap.fooling_rate(model, [(x, y)])
    assert model.training and all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_same_seed_same_output(name: str) -> None:
    model = make_model().eval()
    x, y = batch()
    a = FACTORIES[name]()(model, x, y)
    b = FACTORIES[name]()(model, x, y)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", sorted(RANDOMIZED))
def test_seed_controls_randomness(name: str) -> None:
    model = make_model().eval()
    x, _ = batch()
    with torch.no_grad():
        y = model(x).argmax(1)  # all correct, so that every attack has work to do
    attack = FACTORIES[name]()
    outs = []
    for seed in (1, 2, None, None):
        attack.seed = seed
        outs.append(attack(model, x, y))
    assert not torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[2], outs[3])


@pytest.mark.parametrize("name", sorted(set(FACTORIES) - {"torchattacks-backward", "torchattacks-pgd"}))
def test_autocast_bfloat16_keeps_float32_perturbation(name: str) -> None:
    model = make_model().eval()
    seen: list[torch.dtype] = []
    model.head.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    x, y = batch()
    attack = FACTORIES[name]()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_adv = attack(model, x, y)
    assert x_adv.dtype == torch.float32
    threat_ok(attack, x, x_adv)
    if name != "gaussian-noise":
        assert seen and all(d == torch.bfloat16 for d in seen)  # the forward ran under autocast


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("name", ["fgsm", "pgd", "apgd-ce", "deepfool", "gaussian-noise"])
def test_other_input_dtypes(name: str, dtype: torch.dtype) -> None:
    """Outputs come back in the input's dtype and still satisfy the threat model exactly (rounded
    toward x, never past eps)."""
    model = make_model().eval().to(dtype)
    x, y = batch()
    x = x.to(dtype)
    attack = FACTORIES[name]()
    try:
        x_adv = attack(model, x, y)
    except RuntimeError as e:  # pragma: no cover - CPU kernels missing for this dtype
        pytest.skip(f"{dtype} not supported on this CPU: {e}")
    threat_ok(attack, x, x_adv)


def test_round_toward_never_leaves_the_ball() -> None:
    from robustlab.attacks.base import round_toward

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2000, generator=g).to(torch.bfloat16)
    eps = 8 / 255
    v = (x.float() + eps * torch.sign(torch.randn(2000, generator=g))).clamp(0, 1)
    r = round_toward(v, x)
    assert r.dtype == torch.bfloat16
    assert ((r.double() - x.double()).abs() <= eps).all()
    assert ((r.double() - v.double()).abs() <= 2**-7).all()  # at most one bfloat16 ulp away


@pytest.mark.parametrize("name", ["fgsm", "pgd", "square", "deepfool"])
def test_works_under_no_grad_and_inference_mode_and_with_grad_inputs(name: str) -> None:
    model = make_model().eval()
    x, y = batch()
    attack = FACTORIES[name]()
    ref = attack(model, x, y)
    with torch.no_grad():
        assert torch.equal(attack(model, x, y), ref)
    with torch.inference_mode():
        xi, yi = x.clone(), y.clone()
        out = attack(model, xi, yi)
    assert torch.equal(out, ref)
    xg = x.clone().requires_grad_(True)
    out = attack(model, xg, y)
    assert not out.requires_grad and xg.grad is None
    assert torch.equal(out, ref)


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_empty_batch(name: str) -> None:
    model = make_model().eval()
    x, y = torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)
    out = FACTORIES[name]()(model, x, y)
    assert out.shape == x.shape


def test_labels_on_other_integer_dtypes_are_accepted() -> None:
    model = make_model().eval()
    x, y = batch()
    ref = PGD(eps=EPS, steps=2)(model, x, y)
    assert torch.equal(PGD(eps=EPS, steps=2)(model, x, y.to(torch.int32)), ref)


def test_a_plain_callable_model_works() -> None:
    model = make_model().eval()
    x, y = batch()
    ref = FGSM(eps=EPS)(model, x, y)
    assert torch.equal(FGSM(eps=EPS)(lambda t: model(t), x, y), ref)


def test_active_mask_gives_the_same_rows_as_the_full_batch() -> None:
    """Random draws are made for the full batch, so early exit does not change any result."""
    model = make_model().eval()
    x, y = batch(12)
    mask = torch.tensor([True, False] * 6)
    for attack in (
        PGD(eps=EPS, steps=3, restarts=2),
        APGDCE(eps=EPS, steps=3),
        Square(eps=EPS, n_queries=8),
        GaussianNoise(sigma=0.2),
        UAP(eps=EPS).fit(model, [x]),
    ):
        full = attack(model, x, y)
        part = attack(model, x, y, active=mask)
        assert torch.allclose(part[mask], full[mask], atol=1e-6), type(attack).__name__
        assert torch.equal(part[~mask], x[~mask])


def test_registry_attacks_accept_active() -> None:
    import inspect

    for name in ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "cw-l2", "deepfool", "square", "gaussian-noise", "uap"):
        assert "active" in inspect.signature(build_attack(name)).parameters


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_cuda(name: str) -> None:  # pragma: no cover - needs a GPU
    model = make_model().cuda().train()
    x, y = batch()
    x, y = x.cuda(), y.cuda()
    attack = FACTORIES[name]()
    rng = torch.cuda.get_rng_state()
    out = attack(model, x, y)
    assert out.is_cuda and model.training
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.cuda.get_rng_state(), rng)
    threat_ok(attack, x, out)
    assert torch.equal(attack(model, x, y), out) or name.startswith("torchattacks")
    with torch.autocast("cuda", dtype=torch.float16):
        threat_ok(attack, x, attack(model, x, y))


def test_norm_geometry_names() -> None:
    assert geometry("linf").name == "linf" and geometry("l2").name == "l2"
