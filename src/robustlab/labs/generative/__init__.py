"""Generative labs on the shared trainer: ``vae``, ``cvae`` and ``vqvae``.

Their hyper-parameters are the typed ``model.options`` of :mod:`robustlab.labs.generative.config`; the
trainer, run folders, CLI, recipes and report serve them unchanged::

    robustlab run recipes/vae-cvae-fashion.yaml --out runs/vae-fashion
    robustlab run recipes/vqvae-fashion.yaml --out runs/vqvae-fashion

Library use: :class:`MLPVAE`, :class:`VQVAE`, :class:`VectorQuantizer`, :func:`kl_divergence`,
:func:`colourize`, :func:`usage_stats`, and :func:`study_recipe` for the K / D codebook study.
"""

from __future__ import annotations

from robustlab.labs.generative.colour import colour_factors, colourize
from robustlab.labs.generative.study import study_recipe, study_table
from robustlab.labs.generative.tasks import VAETask, VQVAETask
from robustlab.labs.generative.vae import MLPVAE, VAEOutput, kl_divergence, reconstruction_loss
from robustlab.labs.generative.vqvae import VQVAE, VectorQuantizer, VQOutput, code_counts, usage_stats

__all__ = [
    "MLPVAE",
    "VAEOutput",
    "VAETask",
    "VQOutput",
    "VQVAE",
    "VQVAETask",
    "VectorQuantizer",
    "code_counts",
    "colour_factors",
    "colourize",
    "kl_divergence",
    "reconstruction_loss",
    "study_recipe",
    "study_table",
    "usage_stats",
]
