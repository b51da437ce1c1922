"""Parity with torchattacks and strength sanity checks on a small CNN trained on sklearn digits."""

from __future__ import annotations

import pytest
import torch
from attack_helpers import accuracy
from torch import nn

from robustlab.attacks import APGDCE, APGDDLR, CWL2, FGSM, PGD, UAP, DeepFool, GaussianNoise, Square

pytestmark = pytest.mark.slow


def subset(digits, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return digits.x_test[:n], digits.y_test[:n]


class Counting(nn.Module):
    """Counts the rows the wrapped model is evaluated on."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += x.shape[0]
        return self.model(x)


# -- parity with torchattacks --------------------------------------------------------------------


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.2])
def test_fgsm_matches_torchattacks_exactly(digits, digits_model, eps: float) -> None:
    import torchattacks  # a declared dev dependency: missing is a failure, not a skip
    x, y = digits.x_test, digits.y_test
    ours = FGSM(eps=eps)(digits_model, x, y)
    theirs = torchattacks.FGSM(digits_model, eps=eps)(x, y)
    assert accuracy(digits_model, ours, y) == accuracy(digits_model, theirs, y)
    assert (ours != theirs).float().mean().item() < 1e-4  # sum vs mean reduction: same signs


def test_targeted_fgsm_matches_torchattacks(digits, digits_model) -> None:
    import torchattacks  # a declared dev dependency: missing is a failure, not a skip
    x, y = subset(digits, 200)
    target = (y + 1) % 10
    ours = FGSM(eps=0.1, targeted=True)(digits_model, x, target)
    atk = torchattacks.FGSM(digits_model, eps=0.1)
    atk.set_mode_targeted_by_label(quiet=True)
    theirs = atk(x, target)
    assert (ours != theirs).float().mean().item() < 1e-4


def test_pgd_matches_torchattacks(digits, digits_model) -> None:
    """Same parameters, same random start (torchattacks draws from the global RNG seeded alike):
    within 0.5 percentage points (ours may only be stronger: it keeps a fooled iterate)."""
    import torchattacks  # a declared dev dependency: missing is a failure, not a skip
    x, y = digits.x_test, digits.y_test
    ours = accuracy(digits_model, PGD(eps=0.1, alpha=0.025, steps=10, seed=0)(digits_model, x, y), y)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        adv = torchattacks.PGD(digits_model, eps=0.1, alpha=0.025, steps=10, random_start=True)(x, y)
    theirs = accuracy(digits_model, adv, y)
    assert abs(ours - theirs) <= 0.5, (ours, theirs)


def test_apgd_ce_no_weaker_than_pgd10(digits, digits_model) -> None:
    x, y = digits.x_test, digits.y_test
    pgd = accuracy(digits_model, PGD(eps=0.1, alpha=0.025, steps=10)(digits_model, x, y), y)
    apgd = accuracy(digits_model, APGDCE(eps=0.1, steps=10)(digits_model, x, y), y)
    assert apgd <= pgd + 0.5, (apgd, pgd)


def test_apgd_l2_and_dlr_are_strong(digits, digits_model) -> None:
    x, y = subset(digits, 200)
    pgd = accuracy(digits_model, PGD(eps=0.5, norm="l2", steps=10)(digits_model, x, y), y)
    apgd = accuracy(digits_model, APGDCE(eps=0.5, norm="l2", steps=10)(digits_model, x, y), y)
    dlr = accuracy(digits_model, APGDDLR(eps=0.1, steps=10)(digits_model, x, y), y)
    fgsm = accuracy(digits_model, FGSM(eps=0.1)(digits_model, x, y), y)
    assert apgd <= pgd + 0.5
    assert dlr <= fgsm


def test_apgd_matches_torchattacks_apgd(digits, digits_model) -> None:
    """Same algorithm as AutoAttack's APGD (torchattacks ports it): within 2 points on 300 images
    (both draw their own random starts; 25 steps so the step-size checkpoints matter)."""
    import torchattacks  # a declared dev dependency: missing is a failure, not a skip
    x, y = subset(digits, 300)
    ours = accuracy(digits_model, APGDCE(eps=0.1, steps=25)(digits_model, x, y), y)
    with torch.random.fork_rng():
        theirs = accuracy(digits_model, torchattacks.APGD(digits_model, eps=0.1, steps=25)(x, y), y)
    assert abs(ours - theirs) <= 2.0 + 1e-4, (ours, theirs)  # 6 images of 300; float32 percentages carry ~1e-6


# -- strength sanity -------------------------------------------------------------------------------


def test_pgd_at_least_as_strong_as_fgsm(digits, digits_model) -> None:
    x, y = subset(digits, 300)
    fgsm = accuracy(digits_model, FGSM(eps=0.1)(digits_model, x, y), y)
    pgd = accuracy(digits_model, PGD(eps=0.1, steps=20)(digits_model, x, y), y)
    assert pgd <= fgsm


def test_accuracy_falls_with_eps_and_reaches_zero(digits, digits_model) -> None:
    x, y = subset(digits, 300)
    accs = [
        accuracy(digits_model, PGD(eps=e, steps=10, stop_on_success=True)(digits_model, x, y), y)
        for e in (0.0, 0.05, 0.1, 0.2, 0.3)
    ]
    assert accs[0] == accuracy(digits_model, x, y)
    assert all(a >= b for a, b in zip(accs, accs[1:], strict=False)), accs
    assert accs[-1] < accs[0] / 4
    assert accuracy(digits_model, PGD(eps=1.0, steps=10)(digits_model, x, y), y) == 0.0


def test_targeted_pgd_reaches_targets(digits, digits_model) -> None:
    x, y = subset(digits, 100)
    target = (y + 3) % 10
    adv = PGD(eps=0.3, steps=20, targeted=True)(digits_model, x, target)
    with torch.no_grad():
        hit = (digits_model(adv).argmax(1) == target).float().mean().item()
    assert hit > 0.9


def test_restarts_and_schedules_do_not_weaken_pgd(digits, digits_model) -> None:
    x, y = subset(digits, 200)
    one = accuracy(digits_model, PGD(eps=0.1, steps=5)(digits_model, x, y), y)
    three = accuracy(digits_model, PGD(eps=0.1, steps=5, restarts=3)(digits_model, x, y), y)
    assert three <= one
    cosine = accuracy(digits_model, PGD(eps=0.1, steps=10, alpha=0.05, alpha_schedule="cosine")(digits_model, x, y), y)
    assert cosine <= accuracy(digits_model, FGSM(eps=0.1)(digits_model, x, y), y)


def test_stop_on_success_saves_work_without_losing_strength(digits, digits_model) -> None:
    x, y = subset(digits, 200)
    full, early = Counting(digits_model), Counting(digits_model)
    a = accuracy(digits_model, PGD(eps=0.15, steps=10)(full, x, y), y)
    b = accuracy(digits_model, PGD(eps=0.15, steps=10, stop_on_success=True)(early, x, y), y)
    assert b <= a
    assert early.rows < 0.7 * full.rows
    c = accuracy(digits_model, APGDCE(eps=0.15, steps=10, stop_on_success=True)(digits_model, x, y), y)
    assert c <= a + 0.5


def test_one_forward_backward_per_pgd_step(digits, digits_model) -> None:
    x, y = subset(digits, 50)
    counting = Counting(digits_model)
    PGD(eps=0.1, steps=7)(counting, x, y)
    assert counting.rows == 7 * 50
    counting.rows = 0
    APGDCE(eps=0.1, steps=7)(counting, x, y)
    assert counting.rows <= (1 + 1 + 7) * 50  # clean check + start + steps


def test_minimal_attacks_succeed_with_small_perturbations(digits, digits_model) -> None:
    x, y = subset(digits, 100)
    with torch.no_grad():
        correct = digits_model(x).argmax(1) == y
    x, y = x[correct], y[correct]
    results = {
        "deepfool": DeepFool(steps=50)(digits_model, x, y),
        "cw-l2": CWL2(steps=40, binary_search_steps=3, lr=0.05)(digits_model, x, y),
    }
    for name, adv in results.items():
        with torch.no_grad():
            fooled = digits_model(adv).argmax(1) != y
        rate = fooled.float().mean().item()
        assert rate >= 0.9, (name, rate)
        med = (adv - x)[fooled].flatten(1).norm(dim=1).median().item()
        # PGD-L2 needs a budget at least this large to reach the same success rate
        needed = None
        for eps in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0):
            pgd = PGD(eps=eps, norm="l2", steps=10, stop_on_success=True)(digits_model, x, y)
            with torch.no_grad():
                if (digits_model(pgd).argmax(1) != y).float().mean().item() >= rate:
                    needed = eps
                    break
        assert needed is not None and med < needed, (name, med, needed)
        assert torch.equal(adv[~fooled], x[~fooled])  # failures come back unchanged


def test_minimal_attacks_respect_an_eps_cap(digits, digits_model) -> None:
    x, y = subset(digits, 60)
    for attack in (DeepFool(eps=0.4), CWL2(steps=20, binary_search_steps=2, lr=0.05, eps=0.4)):
        adv = attack(digits_model, x, y)
        norms = (adv - x).flatten(1).norm(dim=1)
        assert (norms <= 0.4 + 1e-6).all()
        with torch.no_grad():
            fooled = digits_model(adv).argmax(1) != y
            clean_wrong = digits_model(x).argmax(1) != y
        moved = norms > 0
        assert (fooled[moved]).all()  # a moved sample is adversarial; the rest were rejected
        assert fooled.sum() > clean_wrong.sum()


def test_square_reduces_accuracy(digits, digits_model) -> None:
    x, y = subset(digits, 100)
    clean = accuracy(digits_model, x, y)
    sq = accuracy(digits_model, Square(eps=0.2, n_queries=200)(digits_model, x, y), y)
    noise = accuracy(digits_model, GaussianNoise(sigma=0.2, eps=0.2)(digits_model, x, y), y)
    assert sq < clean / 2
    assert noise > sq


def test_deepfool_linf_finds_small_perturbations(digits, digits_model) -> None:
    x, y = subset(digits, 100)
    adv = DeepFool(norm="linf", steps=30)(digits_model, x, y)
    with torch.no_grad():
        fooled = digits_model(adv).argmax(1) != y
    assert fooled.float().mean() > 0.9
    assert (adv - x)[fooled].flatten(1).abs().amax(1).median() < 0.3


def test_uap_fools_more_than_noise_and_round_trips(digits, digits_model, tmp_path) -> None:
    loader = [(digits.x_train[i : i + 100], digits.y_train[i : i + 100]) for i in range(0, 1200, 100)]
    test = [(digits.x_test[:300], digits.y_test[:300])]
    uap = UAP(eps=0.3).fit(digits_model, loader, epochs=2)
    rate = uap.fooling_rate(digits_model, test)
    noise_rate = UAP(eps=0.3)
    noise_rate.delta = torch.empty(1, 1, 8, 8).uniform_(-0.3, 0.3, generator=torch.Generator().manual_seed(0))
    assert rate > 0.3
    assert rate > noise_rate.fooling_rate(digits_model, test) + 0.1
    path = uap.save(tmp_path / "uap.safetensors")
    back = UAP.load(path)
    assert back.eps == uap.eps and back.norm == uap.norm
    assert torch.equal(back.delta, uap.delta)
    assert back.fooling_rate(digits_model, test) == rate
    # a different image size: the perturbation is resized and stays in the ball
    big = torch.rand(3, 1, 16, 16)
    out = back(digits_model, big)
    assert (out - big).abs().max() <= 0.3 + 1e-6
