"""Sanity flags: signs that a robustness evaluation cannot be trusted (AutoAttack-style checks).

Each check is a small pure function of the evaluation's JSON (see
:meth:`robustlab.evaluation.EvaluationResult.to_json`) and returns a list of at most one
:class:`Flag` (the worst case of its kind, with a count of the others); the
measurements the checks need beyond the main table (a small sample attacked by every attack
stand-alone, a very-large-eps PGD, input gradients, two forward passes, a Square attack) are made by
:mod:`robustlab.evaluation.sanity` and stored under the JSON's ``sanity`` key.

:data:`FLAG_DOCS` documents every code: what it means and what to do about it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from robustlab.evaluation.runner import capability

Severity = Literal["warning", "error"]

LARGE_EPS_MAX_ACCURACY = 0.05
"""Highest PGD accuracy accepted at the very large sanity eps (linf 0.5, l2 0.5·sqrt(d))."""

ZERO_GRADIENT_MAX_FRACTION = 0.2
"""Highest fraction of sampled points allowed to have an all-zero input gradient."""

RANDOMNESS_MAX_REL_DIFF = 1e-3
"""Largest relative logit difference between two eval-mode passes still called deterministic."""

BLACKBOX_MIN_POINTS = 3
BLACKBOX_MAX_FRACTION = 0.1
"""Square may fool fewer than ``BLACKBOX_MIN_POINTS`` or at most this fraction of white-box-robust points."""


@dataclass(frozen=True)
class Flag:
    """One sanity problem: a stable ``code``, its ``severity``, a plain-words ``message`` with the
    numbers, and a ``remedy``."""

    code: str
    severity: Severity
    message: str
    remedy: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


FLAG_DOCS: dict[str, dict[str, str]] = {
    "robust_above_clean": {
        "severity": "error",
        "meaning": "Adversarial images are classified correctly more often than clean images. Attacking a "
        "model should never help it: either the perturbation leaks the label (single-step attacks on "
        "an adversarially trained model, 'label leaking') or the evaluation compares the wrong numbers.",
        "remedy": "Evaluate with a multi-step attack (PGD, APGD) and count a point robust only if it is "
        "classified correctly both clean and attacked; if you trained with FGSM, train with PGD "
        "or random-start FGSM instead.",
    },
    "pgd_weaker_than_fgsm": {
        "severity": "warning",
        "meaning": "An iterative attack (PGD/APGD) leaves more points correct than one FGSM step of the same "
        "eps. A working multi-step attack is at least as strong: its step size, step count or loss "
        "is wrong, or the model masks gradients.",
        "remedy": "Check the step size (alpha ≈ eps/4 with 10-20 steps), use random starts and restarts, "
        "try APGD (no step size to tune) and a margin/DLR loss.",
    },
    "not_monotonic_in_eps": {
        "severity": "warning",
        "meaning": "An attack's accuracy rises when eps grows. A larger budget contains every smaller one, "
        "so a sound attack never does worse: the attack is failing to optimise.",
        "remedy": "Scale the step size with eps (robustlab uses alpha = alpha_ratio · eps), add steps and "
        "restarts, or use APGD.",
    },
    "not_zero_at_large_eps": {
        "severity": "error",
        "meaning": "At a huge budget (L∞ 0.5 can turn any image mid-gray) PGD should fool every point. "
        "Accuracy well above zero means the attack cannot find the gradient: gradient masking "
        "or a broken attack.",
        "remedy": "Look for non-differentiable steps in the model (rounding, quantisation, JPEG, "
        "argmax), use BPDA/EOT-adapted attacks or the Square black-box attack.",
    },
    "vanishing_gradients": {
        "severity": "error",
        "meaning": "The input gradient of the logit margin is exactly zero for many points, so every "
        "gradient-based attack is blind there (gradient masking): the robust accuracy is an "
        "overestimate.",
        "remedy": "Remove or approximate the non-differentiable operation in the forward pass (BPDA: "
        "identity on the backward pass), and confirm with a black-box attack such as Square.",
    },
    "randomized_model": {
        "severity": "warning",
        "meaning": "Two forward passes in eval mode give different outputs: the model (or defense) is "
        "stochastic. A single attack run then underestimates the attacker, and accuracy varies from "
        "run to run.",
        "remedy": "Make eval mode deterministic if the randomness is a bug (dropout left on); otherwise "
        "attack with Expectation over Transformation (average gradients over many draws) and report "
        "the spread over several runs.",
    },
    "blackbox_beats_whitebox": {
        "severity": "error",
        "meaning": "The Square attack, which only looks at outputs, fools points that every white-box "
        "attack failed on. White-box attacks have strictly more information, so their gradients "
        "are misleading: gradient masking or obfuscation.",
        "remedy": "Include Square (and APGD-DLR) in the evaluation and report the worst case; find the "
        "source of masked gradients (see vanishing_gradients).",
    },
}


def _flag(code: str, message: str) -> Flag:
    doc = FLAG_DOCS[code]
    return Flag(code, doc["severity"], message, doc["remedy"])  # type: ignore[arg-type]


def _worst(code: str, issues: list[tuple[float, str]]) -> list[Flag]:
    """At most one flag per code: the issue with the largest gap, plus how many others there are."""
    if not issues:
        return []
    issues = sorted(issues, key=lambda t: -t[0])
    more = len(issues) - 1
    tail = f" ({more} more case{'s' if more > 1 else ''} like this.)" if more else ""
    return [_flag(code, issues[0][1] + tail)]


def sample_tolerance(n: int) -> float:
    """Slack for accuracies measured on ``n`` sampled points: two points, and at least 1%."""
    return max(0.01, 2.0 / max(n, 1))


def pct(v: float) -> str:
    """A fraction as a percentage with one decimal: ``0.4457 → '44.6%'``."""
    return f"{100.0 * v:.1f}%"


def eps_text(eps: float, norm: str) -> str:
    """``'0.0314 (8/255)'`` for L∞, ``'0.5'`` for L2."""
    if norm == "linf":
        return f"{eps:.4g} ({eps * 255:.4g}/255)"
    return f"{eps:.4g}"


# -- checks ---------------------------------------------------------------------------------------


def check_robust_above_clean(result: Mapping[str, Any]) -> list[Flag]:
    """Robust accuracy above clean accuracy: in the main table (an evaluation bug) or, on the sanity
    sample, the raw accuracy on adversarial images above the clean accuracy (label leaking)."""
    issues: list[tuple[float, str]] = []
    clean = result.get("clean_accuracy")
    if clean is not None:
        rows = [r for r in result.get("robust", []) if r.get("accuracy") is not None]
        worst = result.get("worst_case", [])
        rows += [{"attack": "worst case", **r} for r in worst if r.get("accuracy") is not None]
        for r in rows:
            if r["accuracy"] > clean + 1e-9:
                where = eps_text(r["eps"], r.get("norm", result.get("norm", "linf")))
                issues.append((r["accuracy"] - clean, (
                    f"{r['attack']} at eps {where}: robust "
                    f"accuracy {pct(r['accuracy'])} is above the clean accuracy {pct(clean)}."
                )))
    sanity = result.get("sanity") or {}
    s_clean, n = sanity.get("clean_accuracy"), sanity.get("samples", 0)
    if s_clean is not None:
        tol = sample_tolerance(n)
        for r in sanity.get("standalone", []):
            raw = r.get("raw_accuracy")
            if raw is not None and raw > s_clean + tol:
                issues.append((raw - s_clean, (
                    f"{r['attack']} at eps {eps_text(r['eps'], r.get('norm', 'linf'))}: "
                    f"{pct(raw)} of the attacked images are classified correctly but only {pct(s_clean)} "
                    f"of the clean ones (sample of {n} images): the attack makes the model more accurate."
                )))
    return _worst("robust_above_clean", issues)


def check_pgd_weaker_than_fgsm(result: Mapping[str, Any]) -> list[Flag]:
    """An iterative attack's stand-alone accuracy above FGSM's at the same eps (sanity sample)."""
    sanity = result.get("sanity") or {}
    rows, n = sanity.get("standalone", []), sanity.get("samples", 0)
    fgsm = {r["eps"]: r["accuracy"] for r in rows if r["attack"] == "fgsm"}
    tol = sample_tolerance(n)
    issues = []
    for r in rows:
        ref = fgsm.get(r["eps"])
        if capability(r["attack"], "iterative") and ref is not None and r["accuracy"] > ref + tol:
            issues.append((r["accuracy"] - ref, (
                f"At eps {eps_text(r['eps'], r.get('norm', 'linf'))}, {r['attack']} leaves "
                f"{pct(r['accuracy'])} of {n} sampled images correct but FGSM only {pct(ref)}."
            )))
    return _worst("pgd_weaker_than_fgsm", issues)


def _rising(rows: list[dict[str, Any]], tol: float) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    by_eps = sorted(rows, key=lambda r: r["eps"])
    return [(a, b) for a, b in zip(by_eps, by_eps[1:], strict=False) if b["accuracy"] > a["accuracy"] + tol]


def check_not_monotonic_in_eps(result: Mapping[str, Any]) -> list[Flag]:
    """Accuracy rising with eps for one attack: stand-alone on the sanity sample, and in the main
    table (cumulative numbers, monotone by construction, so any rise there is a bug)."""
    issues = []
    sanity = result.get("sanity") or {}
    groups: list[tuple[str, list[dict[str, Any]], float, str]] = []
    n = sanity.get("samples", 0)
    for name in dict.fromkeys(r["attack"] for r in sanity.get("standalone", [])):
        rows = [r for r in sanity["standalone"] if r["attack"] == name]
        groups.append((name, rows, sample_tolerance(n), f" (sample of {n} images, attack run alone)"))
    for name in dict.fromkeys(r["attack"] for r in result.get("robust", [])):
        rows = [r for r in result["robust"] if r["attack"] == name and r.get("accuracy") is not None]
        groups.append((name, rows, 1e-9, ""))
    wc = [r for r in result.get("worst_case", []) if r.get("accuracy") is not None]
    groups.append(("worst case", wc, 1e-9, ""))
    for name, rows, tol, where in groups:
        for a, b in _rising(rows, tol):
            norm = a.get("norm", result.get("norm", "linf"))
            issues.append((b["accuracy"] - a["accuracy"], (
                f"{name}: accuracy rises from {pct(a['accuracy'])} at eps {eps_text(a['eps'], norm)} to "
                f"{pct(b['accuracy'])} at eps {eps_text(b['eps'], norm)}{where}."
            )))
    return _worst("not_monotonic_in_eps", issues)


def check_not_zero_at_large_eps(result: Mapping[str, Any]) -> list[Flag]:
    """PGD accuracy at the very large sanity eps above :data:`LARGE_EPS_MAX_ACCURACY`."""
    big = (result.get("sanity") or {}).get("large_eps")
    if not big or big.get("accuracy") is None or big["accuracy"] <= LARGE_EPS_MAX_ACCURACY:
        return []
    return [_flag("not_zero_at_large_eps", (
        f"PGD at the huge budget {big['norm']} eps {big['eps']:.4g} still leaves {pct(big['accuracy'])} of "
        f"{big['n']} sampled images correct (expected about 0%)."
    ))]


def check_vanishing_gradients(result: Mapping[str, Any]) -> list[Flag]:
    """More than :data:`ZERO_GRADIENT_MAX_FRACTION` of sampled points with an all-zero input gradient."""
    g = (result.get("sanity") or {}).get("gradients")
    if not g or g.get("zero_fraction") is None or g["zero_fraction"] <= ZERO_GRADIENT_MAX_FRACTION:
        return []
    return [_flag("vanishing_gradients", (
        f"The input gradient of the logit margin is zero (or not finite) for {pct(g['zero_fraction'])} of "
        f"{g['n']} sampled images."
    ))]


def check_randomized_model(result: Mapping[str, Any]) -> list[Flag]:
    """Two eval-mode forward passes differing by more than :data:`RANDOMNESS_MAX_REL_DIFF`."""
    r = (result.get("sanity") or {}).get("randomness")
    if not r or r.get("max_rel_diff") is None or r["max_rel_diff"] <= RANDOMNESS_MAX_REL_DIFF:
        return []
    return [_flag("randomized_model", (
        f"Two forward passes in eval mode on the same {r['n']} images give logits that differ by up to "
        f"{pct(r['max_rel_diff'])} of their scale, and {pct(r['disagreement'])} of the predictions change."
    ))]


def check_blackbox_beats_whitebox(result: Mapping[str, Any]) -> list[Flag]:
    """Square fools more white-box-robust sampled points than chance allows."""
    bb = (result.get("sanity") or {}).get("blackbox")
    if not bb or not bb.get("whitebox_robust"):
        return []
    fooled, robust = bb["fooled"], bb["whitebox_robust"]
    if fooled < BLACKBOX_MIN_POINTS or fooled <= BLACKBOX_MAX_FRACTION * robust:
        return []
    return [_flag("blackbox_beats_whitebox", (
        f"At eps {eps_text(bb['eps'], bb.get('norm', 'linf'))}, {bb['attack']} fools {fooled} of the "
        f"{robust} sampled images that every white-box attack ({', '.join(bb['whitebox'])}) failed on."
    ))]


CHECKS: tuple[Callable[[Mapping[str, Any]], list[Flag]], ...] = (
    check_robust_above_clean,
    check_pgd_weaker_than_fgsm,
    check_not_monotonic_in_eps,
    check_not_zero_at_large_eps,
    check_vanishing_gradients,
    check_randomized_model,
    check_blackbox_beats_whitebox,
)


def run_checks(result: Mapping[str, Any]) -> list[Flag]:
    """Every check of :data:`CHECKS` on an evaluation's JSON, in that order."""
    return [f for check in CHECKS for f in check(result)]
