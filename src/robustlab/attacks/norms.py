"""Threat-model geometries: the L∞ and L2 balls, kept apart from any attack's iteration loop.

A geometry answers four questions about a per-sample perturbation ``delta`` of shape ``(N, ...)``:

- ``random_start(x, eps, gen)``: a point drawn uniformly from the ball of radius ``eps``;
- ``direction(grad)``: the steepest-ascent unit direction for a first-order step
  (``sign(grad)`` for L∞, ``grad / ‖grad‖₂`` for L2);
- ``project(delta, eps)``: the closest point of the ball (clamp for L∞, renormalisation for L2);
- ``norms(delta)``: the per-sample norms ``(N,)``.

``feasible(delta, eps, lo, hi)`` projects onto the ball and then into the pixel box
``x + delta ∈ [0, 1]`` (``lo = -x``, ``hi = 1 - x``, see :meth:`Geometry.box`). For L∞ this is the
exact projection onto the intersection (the constraints separate per pixel); for L2 the box clamp
after renormalisation only shrinks components, so the result stays inside the ball.

All maths here is elementwise in the dtype of ``delta`` (float32 in practice), whatever autocast
state surrounds the call.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import Tensor

from robustlab.core.errors import choice_error

_TINY = 1e-12


def per_sample(v: Tensor, like: Tensor) -> Tensor:
    """Reshape a per-sample vector ``(N,)`` to broadcast against ``like`` ``(N, ...)``."""
    return v.view(-1, *([1] * (like.dim() - 1)))


class Geometry(ABC):
    """The geometry of one ``norm`` (see the module docstring)."""

    name: str

    @abstractmethod
    def random_start(self, x: Tensor, eps: float, gen: torch.Generator) -> Tensor:
        """A perturbation drawn uniformly from the ball of radius ``eps`` (same shape/dtype as ``x``)."""

    @abstractmethod
    def direction(self, grad: Tensor) -> Tensor:
        """The steepest-ascent direction of unit norm (zero where the gradient is zero)."""

    @abstractmethod
    def project(self, delta: Tensor, eps: float | Tensor) -> Tensor:
        """The perturbation projected onto the ball of radius ``eps`` (a new tensor)."""

    @abstractmethod
    def norms(self, delta: Tensor) -> Tensor:
        """Per-sample norms ``(N,)``."""

    @staticmethod
    def box(x: Tensor) -> tuple[Tensor, Tensor]:
        """Bounds ``(lo, hi) = (-x, 1 - x)`` that keep ``x + delta`` in [0, 1]."""
        return -x, 1.0 - x

    @abstractmethod
    def bounds(self, x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
        """Elementwise bounds for ``delta`` used by :meth:`feasible` (box, intersected with the
        L∞ ball where that is exact)."""

    @abstractmethod
    def feasible(self, delta: Tensor, eps: float, lo: Tensor, hi: Tensor) -> Tensor:
        """Project ``delta`` in place onto the ball, then into the box ``[lo, hi]``; return it."""


class Linf(Geometry):
    """The L∞ ball ``max_i |delta_i| <= eps``."""

    name = "linf"

    def random_start(self, x: Tensor, eps: float, gen: torch.Generator) -> Tensor:
        u = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        return u.mul_(2.0).sub_(1.0).mul_(eps)

    def direction(self, grad: Tensor) -> Tensor:
        return grad.sign()

    def project(self, delta: Tensor, eps: float | Tensor) -> Tensor:
        if isinstance(eps, Tensor):
            eps = per_sample(eps, delta)
            return torch.maximum(torch.minimum(delta, eps), -eps)
        return delta.clamp(-eps, eps)

    def norms(self, delta: Tensor) -> Tensor:
        return delta.flatten(1).abs().amax(dim=1) if delta.numel() else delta.new_zeros(delta.shape[0])

    def bounds(self, x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
        return (-x).clamp_(min=-eps), (1.0 - x).clamp_(max=eps)

    def feasible(self, delta: Tensor, eps: float, lo: Tensor, hi: Tensor) -> Tensor:
        return delta.clamp_(lo, hi)


class L2(Geometry):
    """The L2 ball ``sqrt(sum_i delta_i^2) <= eps`` (over all of a sample's pixels and channels)."""

    name = "l2"

    def random_start(self, x: Tensor, eps: float, gen: torch.Generator) -> Tensor:
        n = x.shape[0]
        d = max(1, x[0].numel()) if n else 1
        g = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
        u = torch.rand(n, generator=gen, device=x.device, dtype=x.dtype)
        radius = eps * u.pow(1.0 / d)  # uniform in the ball: P(r <= t) = (t / eps)^d
        return g.mul_(per_sample(radius / (self.norms(g) + _TINY), g))

    def direction(self, grad: Tensor) -> Tensor:
        return grad / per_sample(self.norms(grad) + _TINY, grad)

    def project(self, delta: Tensor, eps: float | Tensor) -> Tensor:
        return delta * per_sample(self._factor(delta, eps), delta)

    def _factor(self, delta: Tensor, eps: float | Tensor) -> Tensor:
        n = self.norms(delta)
        return torch.where(n > eps, eps / (n + _TINY), torch.ones_like(n))

    def norms(self, delta: Tensor) -> Tensor:
        if delta.numel() == 0:
            return delta.new_zeros(delta.shape[0])
        return torch.linalg.vector_norm(delta.flatten(1), ord=2, dim=1)

    def bounds(self, x: Tensor, eps: float) -> tuple[Tensor, Tensor]:
        return self.box(x)

    def feasible(self, delta: Tensor, eps: float, lo: Tensor, hi: Tensor) -> Tensor:
        return delta.mul_(per_sample(self._factor(delta, eps), delta)).clamp_(lo, hi)


GEOMETRIES: dict[str, Geometry] = {"linf": Linf(), "l2": L2()}


def geometry(norm: str) -> Geometry:
    """The geometry for ``norm`` ∈ {"linf", "l2"}; anything else raises a one-line RobustlabError."""
    if not isinstance(norm, str) or norm.lower() not in GEOMETRIES:
        raise choice_error("norm", norm, GEOMETRIES)
    return GEOMETRIES[norm.lower()]


def default_eps(norm: str) -> float:
    """The conventional CIFAR budget: 8/255 for L∞, 0.5 for L2."""
    return 8 / 255 if norm == "linf" else 0.5
