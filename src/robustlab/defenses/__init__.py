"""Defenses: how a training batch is made harder (noise, adversarial training, ...).

Registered (``robustlab defenses`` lists them with their parameters):

- ``none``: plain training;
- ``noise``: Gaussian-noise training;
- ``pgd-at``: PGD adversarial training (Madry 2018), any registry attack as inner maximiser;
  adversarial fine-tuning is ``pgd-at`` + ``train.init_from``;
- ``fgsm-rs``: FGSM with random start (Wong 2020) with a catastrophic-overfitting guard;
- ``free``: free adversarial training (Shafahi 2019) — divide the epochs by ``replays``;
- ``trades``: TRADES (Zhang 2019);
- ``mixed``: a share of the batches (or of each batch) made adversarial;
- ``circle``: circle-loss metric learning + CE head, with :class:`KNNClassifier`
  and :func:`knn_under_attack` for kNN classification in the embedding space.

:func:`robustlab.labs.classification.transfer.fine_tune_config` builds transfer-learning configs.
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
    "knn_under_attack",
    "register_defense",
]
