"""What the ``vae``, ``cvae`` and ``vqvae`` labs measure and draw on a trained run.

``evaluate_*`` return ``{"generative": {...}}`` (plus ``{"study": {...}}`` for a VQ-VAE run in a study
group), merged into results.json; ``explain_*`` write the figures into ``run/figures/`` and return
``{figure name: "figures/<file>"}``, recorded under results.json ``figures``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch

from robustlab import data as rdata
from robustlab.core.errors import RobustlabError
from robustlab.core.progress import log
from robustlab.core.runs import RunDir
from robustlab.data.spec import DatasetInfo
from robustlab.labs.generative import figures as F
from robustlab.labs.generative.config import VAEOptions, VQVAEOptions
from robustlab.labs.generative.judge import mlp_judge, nearest_class_mean
from robustlab.labs.generative.study import COLUMNS, collect_study, study_row
from robustlab.labs.generative.tasks import VAETask, VQVAETask
from robustlab.labs.generative.vae import MLPVAE, kl_divergence, reconstruction_loss
from robustlab.labs.generative.vqvae import VQVAE, code_counts, history_from_state, usage_stats

ELBO_SAMPLES = 5  # Monte-Carlo samples of z per test image for the ELBO
SCATTER_POINTS = 2000
PLANE_POINTS = 4000
JUDGE_IMAGES = 10_000  # training images the CVAE label-following judges are fitted on


# -- builders ------------------------------------------------------------------------------------------
def image_shape(opts: VAEOptions | VQVAEOptions, info: DatasetInfo) -> tuple[int, int, int]:
    """``(C, H, W)`` the model sees: 3 channels with ``colour`` (single-channel data only)."""
    if opts.colour and info.channels != 1:
        raise RobustlabError(f"model.options.colour needs a single-channel dataset; {info.name} has {info.channels}")
    return (3 if opts.colour else info.channels, *info.image_size)


# -- data helpers ---------------------------------------------------------------------------------------
def _batches(task: Any, dataset: Any, batch_size: int, device: torch.device,
             limit: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x, y)`` batches of ``dataset`` in order, unpacked (and coloured) by ``task``, at most ``limit`` images."""
    seen = 0
    for batch in rdata.make_loader(dataset, batch_size):
        x, y = task.unpack(batch, device)
        if limit is not None and seen + x.shape[0] > limit:
            x, y = x[: limit - seen], y[: limit - seen]
        if x.shape[0] == 0:
            return
        seen += x.shape[0]
        yield x, y
        if limit is not None and seen >= limit:
            return


def _first(task: Any, dataset: Any, n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*_batches(task, dataset, max(n, 1), device, limit=n), strict=True)
    return torch.cat(xs), torch.cat(ys)


def _training_seconds(run: RunDir) -> float | None:
    training = run.results().get("training")
    return training.get("seconds") if isinstance(training, dict) else None


# -- VAE / CVAE -----------------------------------------------------------------------------------------
def label_following(model: MLPVAE, task: VAETask, bundle: Any, per_class: int, device: torch.device,
                    seed: int = 0, batch_size: int = 512) -> dict[str, Any]:
    """How often CVAE samples drawn for label ``k`` are classified as ``k`` (chance ``1 / classes``).

    ``per_class`` samples ``z ~ N(0, I)`` per label are decoded (mean images) and classified by two
    judges fitted on up to :data:`JUDGE_IMAGES` training images (:mod:`robustlab.labs.generative.judge`): a
    small MLP trained on the fly (``accuracy``, ``per_class``) and a nearest-class-mean classifier in
    pixel space (``ncm_accuracy``). ``judge_test_accuracy`` / ``ncm_test_accuracy``: the judges'
    accuracy on (up to 5,000) real test images, for scale.
    """
    k = model.num_classes
    xs, ys = zip(*_batches(task, bundle.train, batch_size, device, limit=JUDGE_IMAGES), strict=True)
    x_train, y_train = torch.cat(xs), torch.cat(ys)
    judges = {"mlp": mlp_judge(x_train, y_train, k, seed=seed), "ncm": nearest_class_mean(x_train, y_train, k)}
    g = torch.Generator().manual_seed(seed)
    correct = {name: torch.zeros(k) for name in judges}
    with torch.no_grad():
        for label in range(k):
            y = torch.full((per_class,), label, dtype=torch.long, device=device)
            samples = model.sample(per_class, y, generator=g)
            for name, judge in judges.items():
                correct[name][label] = float((judge(samples) == label).float().mean())
        real = dict.fromkeys(judges, 0)
        total = 0
        for x, y in _batches(task, bundle.test, batch_size, device, limit=5_000):
            for name, judge in judges.items():
                real[name] += int((judge(x) == y).sum())
            total += y.numel()
    return {
        "accuracy": float(correct["mlp"].mean()), "chance": 1.0 / k, "per_class": correct["mlp"].tolist(),
        "ncm_accuracy": float(correct["ncm"].mean()), "samples_per_class": per_class,
        "judge": f"MLP (pixels-256-{k}) trained on {x_train.shape[0]} training images; ncm: nearest class mean",
        "judge_test_accuracy": real["mlp"] / max(total, 1), "ncm_test_accuracy": real["ncm"] / max(total, 1),
    }


@torch.no_grad()
def evaluate_vae(run: RunDir, model: MLPVAE, task: VAETask, cfg: Any, bundle: Any, device: torch.device) -> dict:
    """Test-set ELBO of a (C)VAE, in nats per image, and the CVAE's label following.

    ``elbo_nats`` = mean over test images of ``E_q[log p(x|z)] - KL(q(z|x) || p(z))``, the expectation
    estimated with :data:`ELBO_SAMPLES` samples of ``z`` (a Bernoulli decoder: only with ``recon: bce``;
    with ``mse`` the reconstruction and KL terms are reported without an ELBO).
    """
    opts: VAEOptions = cfg.model.options
    model.eval()
    g = torch.Generator().manual_seed(cfg.seed)
    rec_sum = kl_sum = 0.0
    n = 0
    for x, y in _batches(task, bundle.test, cfg.data.eval_batch_size, device):
        yy = y if model.conditional else None
        mu, logvar = model.encode(x, yy)
        kl_sum += float(kl_divergence(mu, logvar).sum())
        for _ in range(ELBO_SAMPLES):
            z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g).to(device)
            rec_sum += float(reconstruction_loss(model.decode(z, yy), x, opts.recon).sum()) / ELBO_SAMPLES
        n += x.shape[0]
    res: dict[str, Any] = {
        "kind": cfg.task, "latent_dim": opts.latent_dim, "beta": opts.beta, "recon_kind": opts.recon,
        "colour": opts.colour, "test_images": n, "recon_per_image": rec_sum / max(n, 1),
        "kl_per_image": kl_sum / max(n, 1), "elbo_samples": ELBO_SAMPLES, "seconds": _training_seconds(run),
    }
    if opts.recon == "bce":
        res["elbo_nats"] = -(rec_sum + kl_sum) / max(n, 1)
    if model.conditional:
        res["label_following"] = label_following(model, task, bundle, opts.samples_per_class, device,
                                                 seed=cfg.seed, batch_size=cfg.data.eval_batch_size)
    log.info("%s: test ELBO %s nats/image", cfg.name, f"{res['elbo_nats']:.2f}" if "elbo_nats" in res else "n/a")
    return {"generative": res}


@torch.no_grad()
def explain_vae(run: RunDir, model: MLPVAE, task: VAETask, cfg: Any, bundle: Any, device: torch.device) -> dict:
    """Loss curves, inputs vs reconstructions, prior samples (VAE) or samples per class (CVAE), the
    latent means of test images by class, and the decoded latent-grid manifold."""
    opts: VAEOptions = cfg.model.options
    model.eval()
    out_dir = run.figures
    names = list(bundle.info.class_names) if bundle.info.class_names else None
    figs: dict[str, str] = {}

    unit = " (nats/image)" if opts.recon == "bce" else ""
    panels = [("loss and reconstruction" + unit, ["loss", "recon"], False), ("KL" + unit, ["kl"], False)]
    record(figs, "loss_curves", F.loss_curves(run.metrics(), panels, out_dir / "loss_curves.png", title=cfg.name))
    x, y = _first(task, bundle.test, 10, device)
    yy = y if model.conditional else None
    recon = torch.sigmoid(model.decode(model.encode(x, yy)[0], yy))
    rows = [("input", x), ("reconstruction", recon)]
    record(figs, "reconstructions", F.image_rows(rows, out_dir / "reconstructions.png"))
    g = torch.Generator().manual_seed(cfg.seed)
    k = model.num_classes
    if model.conditional:
        labels = torch.arange(k, device=device).repeat_interleave(10)
        samples = model.sample(labels.numel(), labels, generator=g)
        record(figs, "class_samples", F.image_grid(samples, 10, out_dir / "class_samples.png",
                                             title="samples per requested class (rows)",
                                             row_labels=[_class_name(names, i) for i in range(k)]))
    else:
        record(figs, "prior_samples", F.image_grid(model.sample(64, generator=g), 8, out_dir / "prior_samples.png",
                                             title="samples from the prior z ~ N(0, I)"))
    mus, ys = [], []
    for xb, yb in _batches(task, bundle.test, cfg.data.eval_batch_size, device, limit=SCATTER_POINTS):
        mus.append(model.encode(xb, yb if model.conditional else None)[0].cpu())
        ys.append(yb.cpu())
    (mu2,), axes = F.project_2d(torch.cat(mus))
    if opts.latent_dim == 2:
        axes = ("z1", "z2")
    record(figs, "latent_scatter", F.latent_scatter(mu2, torch.cat(ys), out_dir / "latent_scatter.png", names,
                                              title="latent means of test images", axis_names=axes))
    n = 15 if not model.conditional else 8
    q = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, n))
    zz = torch.zeros(n * n, model.latent_dim)
    zz[:, 0] = q.repeat(n)
    if model.latent_dim > 1:
        zz[:, 1] = q.flip(0).repeat_interleave(n)
    zz = zz.to(device)
    if model.conditional:
        panels = [(_class_name(names, c), torch.sigmoid(model.decode(zz, torch.full((n * n,), c, device=device))))
                  for c in range(k)]
    else:
        panels = [("", torch.sigmoid(model.decode(zz)))]
    record(figs, "latent_manifold", F.manifold_panels(panels, n, out_dir / "latent_manifold.png",
                                                title="decoded latent grid (normal quantiles 5%–95%)"))
    return figs


def record(figs: dict[str, str], name: str, path: Any) -> None:
    """Add figure ``name`` at ``path`` (a file under the run's ``figures/``) to ``figs``, unless it was not drawn."""
    if path is not None:
        figs[name] = f"figures/{path.name}"


def _class_name(names: list[str] | None, i: int) -> str:
    """Class ``i``'s name when known, else its index."""
    return names[i] if names is not None and i < len(names) else str(i)


# -- VQ-VAE ---------------------------------------------------------------------------------------------
@torch.no_grad()
def _vq_pass(model: VQVAE, task: VQVAETask, dataset: Any, batch_size: int, device: torch.device,
             keep_points: int = 0) -> dict[str, Any]:
    k = model.quantizer.num_codes
    counts = torch.zeros(k)
    mse_sum, n = 0.0, 0
    points, assign = [], []
    kept = 0
    for x, _ in _batches(task, dataset, batch_size, device):
        out = model(x)
        mse_sum += float((torch.sigmoid(out.logits.float()) - x.float()).pow(2).mean(dim=(1, 2, 3)).sum())
        counts += code_counts(out.indices, k).cpu()
        n += x.shape[0]
        if kept < keep_points:
            flat = out.z_e.float().permute(0, 2, 3, 1).reshape(-1, out.z_e.shape[1])
            take = min(keep_points - kept, flat.shape[0])
            points.append(flat[:take].cpu())
            assign.append(out.indices.reshape(-1)[:take].cpu())
            kept += take
    return {"counts": counts, "recon_mse": mse_sum / max(n, 1), "n": n,
            "points": torch.cat(points) if points else None, "assign": torch.cat(assign) if assign else None}


def evaluate_vqvae(run: RunDir, model: VQVAE, task: VQVAETask, cfg: Any, bundle: Any, device: torch.device) -> dict:
    """Test reconstruction MSE (per pixel, [0, 1] units), perplexity and used codes of the test set's
    code assignments; with ``model.options.study`` also the study table of the group so far."""
    opts: VQVAEOptions = cfg.model.options
    model.eval()
    p = _vq_pass(model, task, bundle.test, cfg.data.eval_batch_size, device)
    used, perplexity = usage_stats(p["counts"])
    res = {
        "kind": "vqvae", "K": opts.codebook_size, "D": opts.code_dim, "ema": opts.ema,
        "restart_dead": opts.restart_dead, "colour": opts.colour, "beta": opts.beta,
        "recon_mse": p["recon_mse"], "perplexity": perplexity, "used_codes": used, "test_images": p["n"],
        "code_counts": [int(c) for c in p["counts"].tolist()], "seconds": _training_seconds(run),
        "study": opts.study,
    }
    log.info("%s: test recon MSE %.5f, perplexity %.2f, %d/%d codes used", cfg.name, res["recon_mse"],
             perplexity, used, opts.codebook_size)
    doc: dict[str, Any] = {"generative": res}
    if opts.study:
        own = study_row(cfg.name, res)
        rows = collect_study(run.path.parent, opts.study, run.path, own, dataset=bundle.info.name)
        doc["study"] = {"group": opts.study, "columns": list(COLUMNS), "rows": rows}
    return doc


def explain_vqvae(run: RunDir, model: VQVAE, task: VQVAETask, cfg: Any, bundle: Any, device: torch.device) -> dict:
    """Loss curves, inputs / code maps / quantised reconstructions, the codebook over the encoder
    outputs, code usage, the GIF of the codebook during training, and the study plot (when the run's
    results hold a study of at least two runs)."""
    from robustlab.core.checkpoint import load_checkpoint

    model.eval()
    out_dir = run.figures
    figs: dict[str, str] = {}

    k = model.quantizer.num_codes
    d = model.quantizer.code_dim
    commit_title = "codebook term = commitment in value" if not model.quantizer.ema else "EMA codebook"
    panels = [(f"loss, recon, commit ({commit_title})", ["loss", "recon", "commit"], True),
              ("codebook use", ["perplexity", "used_codes"], False)]
    record(figs, "loss_curves", F.loss_curves(run.metrics(), panels, out_dir / "loss_curves.png", title=cfg.name))
    with torch.no_grad():
        x, _ = _first(task, bundle.test, 10, device)
        out = model(x)
        codes = F.code_colours(out.indices, k, tuple(x.shape[-2:]))
        rows = [("input", x), ("codes", codes), ("quantised\nreconstruction", torch.sigmoid(out.logits))]
        record(figs, "reconstructions", F.image_rows(rows, out_dir / "reconstructions.png"))
        p = _vq_pass(model, task, bundle.test, cfg.data.eval_batch_size, device, keep_points=PLANE_POINTS)
    record(figs, "codebook_plane", F.codebook_plane(p["points"], p["assign"], model.quantizer.embedding.detach().cpu(),
                                              out_dir / "codebook_plane.png"))
    record(figs, "code_usage", F.usage_bars(p["counts"], out_dir / "code_usage.png",
                                      title=f"code usage on the test set (K={k}, D={d})"))
    history = model.history
    last = run.checkpoint("last")
    if last.exists():  # best.pt holds the history up to the best epoch only
        state = load_checkpoint(last)["model"]
        if "hist_len" in state:
            history = history_from_state(state)
    steps = math.ceil(len(bundle.train) / cfg.data.batch_size)
    record(figs, "codebook_gif", F.codebook_gif(history, out_dir / "codebook.gif", steps_per_epoch=steps))
    study = run.results().get("study")
    if isinstance(study, dict) and isinstance(study.get("rows"), list):
        record(figs, "study", F.study_plot(study["rows"], out_dir / "study.png"))
    return figs
