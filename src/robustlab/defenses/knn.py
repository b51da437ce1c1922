"""k-nearest-neighbour classification in a model's embedding space.

:class:`KNNClassifier` fits scikit-learn's ``KNeighborsClassifier`` on the L2-normalised
``model.embed(x)`` of the training images (Euclidean distance between unit vectors ranks neighbours
like cosine similarity) and classifies new images by a vote of their ``k`` nearest training
embeddings. It pairs with the ``circle`` defense, but works on any robustlab model.

:func:`knn_under_attack` measures the kNN's clean and adversarial accuracy. The kNN vote is not
differentiable, so the attack is computed **through the model's cross-entropy head** (the logits of
``model(x)``) and the resulting adversarial images are then classified by the kNN (e.g. FGSM
computed through the cross-entropy head). This is a transfer attack from the head
to the kNN; it is an upper bound on the kNN's robust accuracy, not a certificate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from robustlab.core.checks import check_int
from robustlab.core.errors import RobustlabError
from robustlab.defenses._common import unwrap


def _device_of(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _as_loader(data: Any, batch_size: int) -> Any:
    if isinstance(data, DataLoader):
        return data
    from robustlab.data import make_loader

    return make_loader(data, batch_size)


@torch.no_grad()
def embeddings(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """L2-normalised ``model.embed(x)`` ``(N, D)`` in float32, computed in eval mode (mode restored)."""
    from robustlab.core.modes import eval_mode

    net = unwrap(model)
    if not hasattr(net, "embed"):
        raise RobustlabError("kNN classification needs a model with .embed() (robustlab models have it)")
    with eval_mode(net):
        return F.normalize(net.embed(x.to(_device_of(net))).float(), dim=1)


class KNNClassifier:
    """k-NN vote over L2-normalised training embeddings (scikit-learn ``KNeighborsClassifier``).

    Args:
        k: number of neighbours.
        batch_size: batch size used to embed datasets.

    ``fit(model, data)`` embeds every training image (``data``: a dataset or a DataLoader yielding
    ``(x, y)``); ``predict(model, x)`` returns labels ``(N,)`` (int64, on ``x``'s device);
    ``accuracy(model, data)`` the fraction classified correctly. The model is used in eval mode and
    its mode is restored.
    """

    def __init__(self, k: int = 5, batch_size: int = 512) -> None:
        self.k = check_int("k", k)
        self.batch_size = check_int("batch_size", batch_size)
        self._knn: Any = None

    @property
    def fitted(self) -> bool:
        return self._knn is not None

    def fit(self, model: nn.Module, data: Any) -> KNNClassifier:
        """Embed the training data and fit the neighbour index; returns ``self``."""
        from sklearn.neighbors import KNeighborsClassifier

        feats, labels = [], []
        for x, y in _as_loader(data, self.batch_size):
            feats.append(embeddings(model, x).cpu())
            labels.append(torch.as_tensor(y).cpu())
        if not feats:
            raise RobustlabError("kNN fit needs at least one training image, got an empty dataset")
        f = torch.cat(feats).numpy()
        t = torch.cat(labels).numpy()
        if len(t) < self.k:
            raise RobustlabError(f"k={self.k} needs at least {self.k} training images, got {len(t)}")
        self._knn = KNeighborsClassifier(n_neighbors=self.k, n_jobs=1).fit(f, t)
        return self

    def predict(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Labels ``(N,)`` int64 for pixels ``x`` ``(N, C, H, W)`` in [0, 1]."""
        if self._knn is None:
            raise RobustlabError("the kNN classifier is not fitted yet; call fit(model, train_data) first")
        if x.shape[0] == 0:
            return torch.empty(0, dtype=torch.long, device=x.device)
        pred = self._knn.predict(embeddings(model, x).cpu().numpy())
        return torch.from_numpy(np.asarray(pred, dtype=np.int64)).to(x.device)

    def accuracy(self, model: nn.Module, data: Any) -> float:
        """Fraction of ``data`` (dataset or DataLoader) the kNN classifies correctly."""
        correct = total = 0
        for x, y in _as_loader(data, self.batch_size):
            y = torch.as_tensor(y)
            correct += int((self.predict(model, x).cpu() == y.cpu()).sum())
            total += y.numel()
        return correct / max(total, 1)


def knn_under_attack(model: nn.Module, knn: KNNClassifier, data: Any, attack: Any,
                     batch_size: int = 256) -> dict[str, float]:
    """Clean and adversarial kNN accuracy on ``data``: ``{"clean", "adversarial", "head_clean",
    "head_adversarial", "count"}``.

    ``attack`` (a registry attack, ``atk(model, x, y) -> x_adv``) is computed through the model's
    cross-entropy head (its logits); the adversarial images are then classified by ``knn``. The
    head's own accuracies are returned too, to show how much of the attack transfers to the kNN.
    """
    from robustlab.core.modes import eval_mode

    net = unwrap(model)
    device = _device_of(net)
    sums = {"clean": 0, "adversarial": 0, "head_clean": 0, "head_adversarial": 0}
    total = 0
    for x, y in _as_loader(data, batch_size):
        x, y = x.to(device), torch.as_tensor(y).to(device)
        x_adv = attack(net, x, y)
        with eval_mode(net), torch.no_grad():
            sums["head_clean"] += int((net(x).argmax(1) == y).sum())
            sums["head_adversarial"] += int((net(x_adv).argmax(1) == y).sum())
        sums["clean"] += int((knn.predict(net, x) == y).sum())
        sums["adversarial"] += int((knn.predict(net, x_adv) == y).sum())
        total += y.numel()
    out: dict[str, float] = {k: v / max(total, 1) for k, v in sums.items()}
    out["count"] = float(total)
    return out
