"""Generative models on the shared trainer (report 004 Q2 and Q4): VAE, CVAE and VQ-VAE.

Importing this package registers the task families ``vae``, ``cvae`` and ``vqvae`` (``config.task``);
their hyper-parameters live in ``model.options`` (see :mod:`robustlab.labs.generative.options`). The
trainer, run folders, CLI, recipes and report serve them unchanged::

    robustlab run recipes/vae-cvae-fashion.yaml --out runs/vae-fashion
    robustlab run recipes/vqvae-fashion.yaml --out runs/vqvae-fashion

Library use: :class:`MLPVAE`, :class:`VQVAE`, :class:`VectorQuantizer`, :func:`kl_divergence`,
:func:`colourize`, :func:`usage_stats`, and :func:`vq_study` for the K / D codebook study.
"""

from __future__ import annotations

from functools import partial

from robustlab.labs.generative import family as _family
from robustlab.labs.generative.colour import colour_factors, colourize
from robustlab.labs.generative.study import study_table, vq_study
from robustlab.labs.generative.tasks import VAETask, VQVAETask
from robustlab.labs.generative.vae import MLPVAE, VAEOutput, kl_divergence, reconstruction_loss
from robustlab.labs.generative.vqvae import VQVAE, VectorQuantizer, VQOutput, code_counts, usage_stats
from robustlab.tasks.registry import TaskFamily, register_task_family

_DESCRIPTIONS = {
    "vae": "variational autoencoder (MLP, Gaussian latent); loss = recon + beta*KL; test ELBO in nats",
    "cvae": "conditional VAE (one-hot label into encoder and decoder); samples per class",
    "vqvae": "VQ-VAE (conv, codebook K x D, straight-through); recon MSE, perplexity, codebook GIF",
}

for _name, _desc in _DESCRIPTIONS.items():
    _is_vq = _name == "vqvae"
    register_task_family(TaskFamily(
        _name,
        build_model=partial(_family.build_model, _name),
        build_task=partial(_family.build_task, _name),
        evaluate=_family.evaluate_vqvae if _is_vq else _family.evaluate_vae,
        explain=_family.explain_vqvae if _is_vq else _family.explain_vae,
        description=_desc,
    ))

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
    "study_table",
    "usage_stats",
    "vq_study",
]
