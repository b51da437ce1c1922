"""Explanations of trained classifiers: Grad-CAM maps, feature embeddings (UMAP) and pictures of
adversarial examples. :func:`explain_run` writes all of them into a run folder's ``figures/``."""

from robustlab.explain.embeddings import embed_2d, features, umap_figure
from robustlab.explain.gradcam import gradcam, gradcam_figure
from robustlab.explain.grid import adversarial_grid, amplify_perturbation
from robustlab.explain.run import explain_run, pick_indices

__all__ = [
    "adversarial_grid",
    "amplify_perturbation",
    "embed_2d",
    "explain_run",
    "features",
    "gradcam",
    "gradcam_figure",
    "pick_indices",
    "umap_figure",
]
