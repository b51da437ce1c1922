"""Figures without pyplot: blank figures and PNG files, shared colours, images and metric curves.

Depends only on :mod:`robustlab.core`, matplotlib, numpy and torch, so every part of robustlab
(report, explain, labs) draws through it.
"""

from robustlab.viz.curves import is_number, loss_curves, metric_series, training_curves
from robustlab.viz.figure import DPI, PALETTE, RED, category_cmap, new_figure, save_figure, set_margins
from robustlab.viz.images import image_grid, image_rows, montage, show_image, to_image
from robustlab.viz.text import label_name, plain

__all__ = [
    "DPI",
    "PALETTE",
    "RED",
    "category_cmap",
    "image_grid",
    "image_rows",
    "is_number",
    "label_name",
    "loss_curves",
    "metric_series",
    "montage",
    "new_figure",
    "plain",
    "save_figure",
    "set_margins",
    "show_image",
    "to_image",
    "training_curves",
]
