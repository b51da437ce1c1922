"""What the robustness audit of an image classifier measures (``evaluate:`` in a run's config)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from robustlab.core.config import Strict


class EvalConfig(Strict):
    """What ``evaluate`` measures."""

    attacks: list[str] = Field(default_factory=lambda: ["fgsm", "pgd"])
    eps: list[float] = Field(default_factory=lambda: [0.1])
    norm: Literal["linf", "l2"] = "linf"
    steps: int = Field(20, ge=1)
    alpha_ratio: float = Field(0.25, gt=0.0, description="PGD step size as a fraction of eps")
    restarts: int = Field(1, ge=1)
    noise_sigma: list[float] = Field(default_factory=list)
    n_samples: int | None = Field(None, ge=1, description="evaluate on the first n test images")
    per_attack: Literal["standalone", "cumulative"] = Field(
        "standalone", description="each attack's row alone, or against it and every attack listed before it"
    )
    sanity_samples: int = Field(100, ge=1, description="images used by the sanity measurements")
    n_examples: int = Field(16, ge=0, description="images whose adversarial examples are kept for figures")
    cross_domain: list[str] = Field(
        default_factory=list, description="also test on these datasets, adapted to the model's input shape"
    )
    early_exit: bool = True
    sanity: bool = True
    attack_params: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("eps")
    @classmethod
    def _eps_non_negative(cls, v: list[float]) -> list[float]:
        bad = [e for e in v if e < 0]
        if bad:
            raise ValueError(f"eps must be >= 0, got {bad[0]}")
        return v

    @field_validator("noise_sigma")
    @classmethod
    def _sigma_non_negative(cls, v: list[float]) -> list[float]:
        if any(s < 0 for s in v):
            raise ValueError("noise_sigma values must be >= 0")
        return v
