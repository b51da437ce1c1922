"""The generative labs: ``vae`` and ``cvae`` (MLP VAEs) and ``vqvae`` (conv VQ-VAE) on the shared trainer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from torch import nn

from robustlab.core import distributed as D
from robustlab.data.bundle import DataBundle
from robustlab.data.prepare import info_from_meta, info_meta, prepare_data
from robustlab.labs.base import Lab, RunContext
from robustlab.labs.generative import measures
from robustlab.labs.generative.config import CVAEConfig, VAEConfig, VQVAEConfig
from robustlab.labs.generative.report import generative_sections
from robustlab.labs.generative.tasks import VAETask, VQVAETask
from robustlab.labs.generative.vae import MLPVAE
from robustlab.labs.generative.vqvae import VQVAE
from robustlab.report.section import Section
from robustlab.training.metrics import Metric


class _ImageGenerativeLab(Lab):
    """Shared by the generative labs: labelled image data (labels condition a CVAE, colour nothing
    else), the model rebuilt from the data's image info, evaluation and figures on rank 0."""

    def build_data(self, cfg: Any, smoke: bool = False) -> DataBundle:
        return prepare_data(cfg, smoke=smoke)

    def model_meta(self, cfg: Any, data: DataBundle) -> dict[str, Any]:
        return info_meta(data.info)

    def metrics(self, cfg: Any, meta: dict[str, Any]) -> list[Metric]:
        """None beyond the task's exact per-batch sums."""
        return []

    #: ``(run, model, task, cfg, bundle, device) -> results sections`` and ``-> {figure: path}``
    measure: ClassVar[Callable[..., dict[str, Any]]]
    draw: ClassVar[Callable[..., dict[str, str]]]

    def _parts(self, ctx: RunContext) -> tuple[nn.Module, Any, DataBundle]:
        bundle = self.build_data(ctx.cfg, smoke=ctx.smoke)
        meta = info_meta(bundle.info)
        return self.load_model(ctx), self.build_task(ctx.cfg, meta), bundle

    def evaluate(self, ctx: RunContext) -> dict[str, Any]:
        """The lab's measurements of the test split (rank 0 only under DDP)."""
        if not D.is_main():
            return {}
        model, task, bundle = self._parts(ctx)
        return type(self).measure(ctx.run, model, task, ctx.cfg, bundle, ctx.device)

    def explain(self, ctx: RunContext) -> dict[str, str]:
        """The lab's figures into ``run/figures``."""
        model, task, bundle = self._parts(ctx)
        return type(self).draw(ctx.run, model, task, ctx.cfg, bundle, ctx.device)

    def report_sections(self, run_dir: Path, config: dict[str, Any], results: dict[str, Any]) -> list[Section]:
        return generative_sections(run_dir, config, results)


class VAELab(_ImageGenerativeLab):
    """MLP VAE: ``loss = recon + beta * KL`` per image (nats); test ELBO, samples, latent figures."""

    name = "vae"
    description = "variational autoencoder (MLP, Gaussian latent); loss = recon + beta*KL; test ELBO in nats"
    config_model = VAEConfig
    conditional: ClassVar[bool] = False
    measure = staticmethod(measures.evaluate_vae)
    draw = staticmethod(measures.explain_vae)

    def build_model(self, cfg: VAEConfig, meta: dict[str, Any]) -> nn.Module:
        info = info_from_meta(meta)
        opts = cfg.model.options
        return MLPVAE(measures.image_shape(opts, info), opts.hidden, opts.latent_dim,
                      info.num_classes if self.conditional else 0)

    def build_task(self, cfg: VAEConfig, meta: dict[str, Any]) -> VAETask:
        opts = cfg.model.options
        return VAETask(self.conditional, int(meta["num_classes"]), opts.recon, opts.beta, opts.colour, opts.colour_seed)

    def summary(self, results: dict[str, Any]) -> str:
        gen = results.get("generative") or {}
        parts = [f"test loss {results['test_loss']:.4f}"] if isinstance(results.get("test_loss"), float) else []
        if isinstance(gen.get("elbo_nats"), float):
            parts.append(f"ELBO {gen['elbo_nats']:.2f} nats/image")
        follow = gen.get("label_following") or {}
        if isinstance(follow.get("accuracy"), float):
            parts.append(f"label following {follow['accuracy']:.3f} (chance {follow['chance']:.2f})")
        return ", ".join(parts) or "not evaluated yet"


class CVAELab(VAELab):
    """Conditional VAE: the one-hot label goes into encoder and decoder; samples per class."""

    name = "cvae"
    description = "conditional VAE (one-hot label into encoder and decoder); samples per class"
    config_model = CVAEConfig
    conditional = True


class VQVAELab(_ImageGenerativeLab):
    """Conv VQ-VAE: reconstruction MSE, codebook perplexity and use, the codebook during training."""

    name = "vqvae"
    description = "VQ-VAE (conv, codebook K x D, straight-through); recon MSE, perplexity, codebook GIF"
    config_model = VQVAEConfig
    measure = staticmethod(measures.evaluate_vqvae)
    draw = staticmethod(measures.explain_vqvae)

    def build_model(self, cfg: VQVAEConfig, meta: dict[str, Any]) -> nn.Module:
        info = info_from_meta(meta)
        o = cfg.model.options
        return VQVAE(measures.image_shape(o, info), o.channels, o.codebook_size, o.code_dim, o.beta, o.ema, o.decay,
                     o.restart_dead, o.restart_after, o.snapshot_points, max_snapshots=cfg.train.epochs + 2)

    def build_task(self, cfg: VQVAEConfig, meta: dict[str, Any]) -> VQVAETask:
        o = cfg.model.options
        return VQVAETask(o.codebook_size, o.beta, o.recon, o.colour, o.colour_seed)

    def summary(self, results: dict[str, Any]) -> str:
        gen = results.get("generative") or {}
        if not isinstance(gen.get("recon_mse"), float):
            return "not evaluated yet"
        return (f"recon MSE {gen['recon_mse']:.5f}, perplexity {gen['perplexity']:.2f}, "
                f"{gen['used_codes']}/{gen['K']} codes used")


VAE_LAB = VAELab()
CVAE_LAB = CVAELab()
VQVAE_LAB = VQVAELab()
