"""Loading pretrained weights from local files (no download ever happens here)."""

from __future__ import annotations

from pathlib import Path

import torch

from robustlab.core.checkpoint import read_state_dict
from robustlab.core.errors import RobustlabError
from robustlab.models.classifier import ImageClassifier

_HEAD_KEYS = ("fc.", "head.", "classifier.")


def load_pretrained(model: ImageClassifier, path: str | Path) -> list[str]:
    """Load a backbone's weights from ``path`` into ``model``; return the keys left at their init.

    Accepts a robustlab checkpoint (whole model, head included when its shape fits), or an
    upstream state dict — torchvision ResNet-18 (``conv1.weight``, ..., ``fc.*``) or timm ViT
    (``patch_embed.*``, ``blocks.*``, ``head.*``) — whose classification head is dropped because
    the number of classes differs. Every backbone weight must be present with the right shape;
    otherwise one line names the first mismatch.
    """
    state = read_state_dict(path)
    own = model.state_dict()
    if any(k.startswith("backbone.") for k in state):
        mapped = dict(state)
    else:
        mapped = {f"backbone.{k}": v for k, v in state.items() if not k.startswith(_HEAD_KEYS)}
    # the model keeps its own input normalization (that of the data it is trained on now)
    mapped = {k: v for k, v in mapped.items() if not k.startswith("normalize.")}
    for key, value in list(mapped.items()):
        if key not in own:
            if key.startswith("head."):
                mapped.pop(key)
                continue
            raise RobustlabError(f"pretrained weights {path}: unexpected key {key!r} for model {model.arch}")
        if own[key].shape != value.shape:
            if key.startswith("head."):
                mapped.pop(key)  # a different number of classes: keep the fresh head
                continue
            raise RobustlabError(
                f"pretrained weights {path}: {key} has shape {tuple(value.shape)}, "
                f"model {model.arch} expects {tuple(own[key].shape)}"
            )
    missing = [k for k in own if k.startswith("backbone.") and k not in mapped and "num_batches_tracked" not in k]
    if missing:
        raise RobustlabError(
            f"pretrained weights {path} lack {len(missing)} backbone tensors of model {model.arch} "
            f"(first: {missing[0]})"
        )
    with torch.no_grad():
        model.load_state_dict(mapped, strict=False)
    return [k for k in own if k not in mapped]
