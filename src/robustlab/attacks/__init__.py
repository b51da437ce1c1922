"""Adversarial attacks on image classifiers that take pixels in [0, 1].

One-line API: an attack is a configuration, applied to a model and a batch::

    from robustlab.attacks import PGD
    x_adv = PGD(eps=8/255, alpha=2/255, steps=10)(model, x, y)

Every attack returns a tensor like ``x`` inside ``[0, 1]`` and inside its ``eps`` ball, leaves the
model untouched (modes, gradients, batch-norm statistics), never uses the global RNG, and accepts
any sub-batch (what early-exit evaluation needs). See :mod:`robustlab.attacks.base`.

Registry: :data:`ATTACKS`, :func:`build_attack` (``build_attack("pgd", eps=0.03)``),
:func:`attack_class` and :func:`list_attacks`. Each class declares its capabilities (``minimal``,
``needs_fit``, ``whitebox``, ``stepped``; see :class:`~robustlab.attacks.base.Attack`). Geometries
of the threat models live in :mod:`robustlab.attacks.norms`.
"""

from robustlab.attacks.apgd import APGD, APGDCE, APGDDLR
from robustlab.attacks.base import Attack, AttackContext
from robustlab.attacks.cw import CWL2
from robustlab.attacks.deepfool import DeepFool
from robustlab.attacks.fgsm import FGSM
from robustlab.attacks.noise import GaussianNoise
from robustlab.attacks.norms import GEOMETRIES, L2, Geometry, Linf, geometry
from robustlab.attacks.pgd import PGD
from robustlab.attacks.registry import ATTACKS, AttackInfo, attack_class, build_attack, list_attacks
from robustlab.attacks.square import Square
from robustlab.attacks.torchattacks_adapter import TorchattacksAttack
from robustlab.attacks.uap import UAP

__all__ = [
    "APGD",
    "APGDCE",
    "APGDDLR",
    "ATTACKS",
    "CWL2",
    "FGSM",
    "GEOMETRIES",
    "L2",
    "PGD",
    "UAP",
    "Attack",
    "AttackContext",
    "AttackInfo",
    "DeepFool",
    "GaussianNoise",
    "Geometry",
    "Linf",
    "Square",
    "TorchattacksAttack",
    "attack_class",
    "build_attack",
    "geometry",
    "list_attacks",
]
