"""Universal adversarial perturbations: one image-sized ``delta`` that fools a model on most inputs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from robustlab.attacks.base import Attack, AttackContext, Model, make_generator, work_dtype
from robustlab.attacks.norms import geometry
from robustlab.core.checks import check_bool, check_int, check_number
from robustlab.core.errors import RobustlabError
from robustlab.core.io import atomic_write_bytes
from robustlab.core.modes import eval_mode
from robustlab.core.progress import log, progress

FORMAT = "robustlab-uap"
VERSION = "1"


def _batch_x(batch: Any) -> Tensor:
    """The images of a loader batch: a tensor, the first item of a tuple/list, or ``batch["x"]``."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, list | tuple) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    if isinstance(batch, dict):
        for key in ("x", "image", "images", "input", "inputs"):
            if isinstance(batch.get(key), Tensor):
                return batch[key]
    raise RobustlabError(
        "a loader batch must be a tensor of images, an (images, labels) pair or a dict with 'x'; "
        f"got {type(batch).__name__}"
    )


class UAP(Attack):
    """A universal adversarial perturbation: ``x_adv = clip(x + delta, 0, 1)`` with one ``delta``.

    The goal (Moosavi-Dezfooli et al. 2017) is the ``delta`` with ``‖delta‖_p ≤ eps`` that changes
    the model's prediction on as many inputs of a data distribution as possible. :meth:`fit` uses
    the stochastic-gradient formulation (SGD-UAP, Shafahi et al. 2020) rather than the original
    loop of per-image DeepFool steps: for every batch of the loader, one signed (L∞) or
    normalised (L2) gradient-ascent step of size ``alpha`` on the batch's cross-entropy w.r.t. the
    clean predictions, then projection onto the ball. It is faster (one forward/backward per
    batch) and usually reaches a higher fooling rate. Per-sample losses are clipped at
    ``loss_clip`` so samples already fooled stop dominating the gradient.

    ``attack(model, x, y)`` applies the fitted ``delta`` (broadcast over the batch; resized
    bilinearly and re-projected when the image size differs); ``y`` is optional and unused.

    Args:
        eps: budget (None: 8/255 for linf, 0.5 for l2), >= 0.
        norm: "linf" or "l2".
        alpha: step size per batch > 0 (None: ``eps / 10``).
        loss_clip: clip per-sample cross-entropy at this value (> 0), or None for no clipping.
        random_start: start from a random point of the ball instead of zero.
        seed: seed of the generator used by ``random_start``.

    Shapes: ``delta`` ``(1, C, H, W)``; ``x`` ``(N, C, H', W')`` float in [0, 1]; output like ``x``.

    Reference: Moosavi-Dezfooli, Fawzi, Fawzi & Frossard, "Universal adversarial perturbations",
    CVPR 2017; Shafahi, Najibi, Xu, Dickerson, Davis & Goldstein, "Universal Adversarial
    Training", AAAI 2020 (the SGD formulation).
    """

    name = "uap"
    description = "Universal adversarial perturbation (one delta for all inputs), fitted by SGD on a loader"
    reference = (
        "Moosavi-Dezfooli et al., Universal adversarial perturbations, CVPR 2017; "
        "Shafahi et al., Universal Adversarial Training, AAAI 2020"
    )
    needs_labels = False
    needs_fit = True

    def __init__(
        self,
        *,
        eps: float | None = None,
        norm: str = "linf",
        alpha: float | None = None,
        loss_clip: float | None = 5.0,
        random_start: bool = False,
        seed: int | None = 0,
    ) -> None:
        self._init_common(eps=eps, norm=norm, targeted=False, seed=seed)
        self.alpha = None if alpha is None else check_number("alpha", alpha, min=0.0, min_open=True)
        self.loss_clip = None if loss_clip is None else check_number("loss_clip", loss_clip, min=0.0, min_open=True)
        self.random_start = check_bool("random_start", random_start)
        self.delta: Tensor | None = None

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, model: Model, loader: Iterable[Any], epochs: int = 1) -> UAP:
        """Fit ``delta`` (shape ``(1, C, H, W)``) on the images of ``loader``; return ``self``.

        ``loader`` yields image batches ``(N, C, H, W)`` in [0, 1] (or ``(images, labels, ...)``
        tuples, labels ignored: the targets are the model's clean predictions). Fitting continues
        from the current ``delta`` when there is one. The model is left unchanged (eval mode during
        fitting, modes restored, no parameter gradients).
        """
        epochs = check_int("epochs", epochs)
        self._check_model(model)
        assert self.eps is not None
        geom, eps = geometry(self.norm), self.eps
        alpha = self.alpha if self.alpha is not None else eps / 10
        delta = self.delta
        seen = 0
        with torch.inference_mode(False), eval_mode(model):
            for epoch in range(epochs):
                for batch in progress(loader, desc=f"uap epoch {epoch + 1}/{epochs}"):
                    x = _batch_x(batch)
                    self._check_inputs(x, None)
                    if x.shape[0] == 0:
                        continue
                    xw = x.detach().to(work_dtype(x.dtype))
                    if delta is None:
                        delta = torch.zeros((1, *xw.shape[1:]), device=xw.device, dtype=xw.dtype)
                        if self.random_start:
                            gen = make_generator(self.seed, xw.device)
                            delta = geom.project(geom.random_start(delta, eps, gen), eps)
                    delta = self._fit_delta(delta, xw)
                    ctx = AttackContext(self, model, xw, None, make_generator(0, xw.device), x.dtype)
                    with torch.no_grad():
                        labels = ctx.logits(xw).argmax(1)
                    d = delta.detach().requires_grad_(True)
                    with torch.enable_grad():
                        z = ctx.logits((xw + d).clamp(0.0, 1.0))
                        loss = F.cross_entropy(z.float(), labels, reduction="none")
                        if self.loss_clip is not None:
                            loss = loss.clamp(max=self.loss_clip)
                    (g,) = torch.autograd.grad(loss.sum(), d)
                    with torch.no_grad():
                        delta = geom.project(delta + alpha * geom.direction(g), eps)
                    seen += x.shape[0]
        if delta is None:
            raise RobustlabError("the loader yielded no images: cannot fit a universal perturbation")
        self.delta = delta.detach()
        log.debug("uap: fitted on %d images over %d epochs", seen, epochs)
        return self

    def _fit_delta(self, delta: Tensor, x: Tensor) -> Tensor:
        """``delta`` on ``x``'s device/dtype and image size (bilinear resize + re-projection)."""
        assert self.eps is not None
        delta = delta.to(device=x.device, dtype=x.dtype)
        if delta.shape[1] != x.shape[1] or x.dim() != delta.dim():
            raise RobustlabError(
                f"the universal perturbation has shape {tuple(delta.shape[1:])}, "
                f"images have shape {tuple(x.shape[1:])} (the channel counts must match)"
            )
        if delta.shape[2:] != x.shape[2:]:
            if delta.dim() != 4:
                raise RobustlabError(f"cannot resize a perturbation of shape {tuple(delta.shape)} to {tuple(x.shape)}")
            delta = F.interpolate(delta, size=tuple(x.shape[2:]), mode="bilinear", align_corners=False)
            delta = geometry(self.norm).project(delta, self.eps)
        return delta

    def fooling_rate(self, model: Model, loader: Iterable[Any]) -> float:
        """The fraction of the loader's images whose predicted class changes under ``delta``."""
        changed = total = 0
        self._check_model(model)
        with torch.inference_mode(False), torch.no_grad(), eval_mode(model):
            for batch in loader:
                x = _batch_x(batch)
                if x.shape[0] == 0:
                    continue
                x_adv = self(model, x)
                changed += int((model(x).argmax(1) != model(x_adv).argmax(1)).sum())
                total += x.shape[0]
        if total == 0:
            raise RobustlabError("the loader yielded no images: the fooling rate is undefined")
        return changed / total

    # -- applying --------------------------------------------------------------------------------

    def _run(self, ctx: AttackContext) -> Tensor:
        if self.delta is None:
            raise RobustlabError("this UAP has no perturbation yet: call fit(model, loader) or UAP.load(path) first")
        return (ctx.x + self._fit_delta(self.delta, ctx.x)).clamp_(0.0, 1.0)

    # -- persistence -----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write ``delta`` and its threat model to ``path`` (safetensors, written atomically)."""
        from safetensors.torch import save

        if self.delta is None:
            raise RobustlabError("this UAP has no perturbation to save: call fit(model, loader) first")
        meta = {
            "format": FORMAT,
            "version": VERSION,
            "eps": repr(self.eps),
            "norm": self.norm,
            "alpha": repr(self.alpha),
            "loss_clip": repr(self.loss_clip),
        }
        data = save({"delta": self.delta.detach().to("cpu", torch.float32).contiguous()}, metadata=meta)
        return atomic_write_bytes(path, data)

    @classmethod
    def load(cls, path: str | Path) -> UAP:
        """A :class:`UAP` with the ``delta``, ``eps`` and ``norm`` stored in ``path`` by :meth:`save`."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise RobustlabError(f"universal perturbation file {path} does not exist")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                delta = f.get_tensor("delta")
        except Exception as e:  # safetensors raises several error types for damaged files
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RobustlabError(f"{path} is not a readable universal perturbation file ({msg[:160]})") from None
        if meta.get("format") != FORMAT:
            raise RobustlabError(f"{path} is not a robustlab universal perturbation (format {meta.get('format')!r})")
        try:
            eps = float(meta["eps"])
            norm = meta["norm"]
            alpha = None if meta.get("alpha", "None") == "None" else float(meta["alpha"])
            loss_clip = None if meta.get("loss_clip", "None") == "None" else float(meta["loss_clip"])
        except (KeyError, ValueError):
            raise RobustlabError(f"{path}: damaged metadata {meta}") from None
        uap = cls(eps=eps, norm=norm, alpha=alpha, loss_clip=loss_clip)
        if delta.dim() < 2 or delta.shape[0] != 1 or not bool(torch.isfinite(delta).all()):
            raise RobustlabError(f"{path}: the perturbation must be a finite tensor of shape (1, C, H, W)")
        if float(geometry(norm).norms(delta).max()) > eps * (1 + 1e-5) + 1e-6:
            raise RobustlabError(f"{path}: the stored perturbation is larger than its eps={eps:g} ({norm})")
        uap.delta = delta
        return uap
