"""Defenses: how a training batch is made harder (noise, adversarial training, ...).

Registered (``robustlab defenses`` lists them with their parameters):

- ``none``: plain training;
- ``noise``: Gaussian-noise training (report 001);
- ``pgd-at``: PGD adversarial training (Madry 2018), any registry attack as inner maximiser;
  adversarial fine-tuning is ``pgd-at`` + ``train.init_from``;
- ``fgsm-rs``: FGSM with random start (Wong 2020) with a catastrophic-overfitting guard;
- ``free``: free adversarial training (Shafahi 2019) — divide the epochs by ``replays``;
- ``trades``: TRADES (Zhang 2019);
- ``mixed``: a share of the batches (or of each batch) made adversarial (report 003);
- ``circle``: circle-loss metric learning + CE head (report 003), with :class:`KNNClassifier`
  and :func:`knn_under_attack` for kNN classification in the embedding space.

:func:`fine_tune_config` (in :mod:`robustlab.defenses.transfer`) builds transfer-learning configs.
"""

from robustlab.defenses import circle, fgsm_rs, free, mixed, noise, pgd_at, trades  # noqa: F401 (registration)
from robustlab.defenses.base import Defense
from robustlab.defenses.circle import CircleLossTraining
from robustlab.defenses.fgsm_rs import FGSMRandomStart, detect_collapse
from robustlab.defenses.free import FreeAdversarialTraining
from robustlab.defenses.knn import KNNClassifier, knn_under_attack
from robustlab.defenses.mixed import MixedAdversarialTraining
from robustlab.defenses.noise import NoiseTraining
from robustlab.defenses.pgd_at import PGDAdversarialTraining
from robustlab.defenses.registry import DEFENSES, build_defense, defense_params, register_defense
from robustlab.defenses.trades import TRADES
from robustlab.defenses.transfer import fine_tune_config

__all__ = [
    "DEFENSES",
    "TRADES",
    "CircleLossTraining",
    "Defense",
    "FGSMRandomStart",
    "FreeAdversarialTraining",
    "KNNClassifier",
    "MixedAdversarialTraining",
    "NoiseTraining",
    "PGDAdversarialTraining",
    "build_defense",
    "defense_params",
    "detect_collapse",
    "fine_tune_config",
    "knn_under_attack",
    "register_defense",
]
