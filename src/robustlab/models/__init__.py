"""Model registry. Every model takes pixels in [0, 1] and normalizes inside."""

from robustlab.models.classifier import ImageClassifier
from robustlab.models.normalize import Normalize
from robustlab.models.pretrained import load_pretrained
from robustlab.models.registry import MODELS, ModelInfo, ModelSpec, build_model, list_models, register_model

__all__ = [
    "MODELS", "ImageClassifier", "ModelInfo", "ModelSpec", "Normalize", "build_model", "list_models", "load_pretrained",
    "register_model",
]
