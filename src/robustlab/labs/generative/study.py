"""The VQ-VAE codebook study of report 004 Q4: codebook size K = 3 → 50, then dimension D = 2 → 50.

A study row summarises one trained VQ-VAE run: ``{run, K, D, ema, colour, recon_mse, perplexity,
used_codes, seconds}`` (test reconstruction MSE per pixel in [0, 1] units, perplexity and used codes of
the test set's code assignments, training seconds). :func:`vq_study` trains the whole grid into one
folder and writes the table into that folder's ``results.json`` (``study`` section); recipes express the
same study as several runs sharing ``model.options.study``, and each run's evaluation tabulates the
runs of its group found so far beside it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from robustlab.config import ExperimentConfig, parse_config
from robustlab.core.errors import RobustlabError
from robustlab.core.progress import log

COLUMNS = ("run", "K", "D", "ema", "colour", "recon_mse", "perplexity", "used_codes", "seconds")


def study_row(name: str, generative: Mapping[str, Any]) -> dict[str, Any] | None:
    """The study row of a run from its results' ``generative`` section (``None`` if not a VQ-VAE)."""
    if generative.get("kind") != "vqvae":
        return None
    row = {"run": name}
    row.update({k: generative.get(k) for k in COLUMNS[1:]})
    return row


def _sort(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r.get("K") or 0, r.get("D") or 0, str(r.get("run"))))


def study_table(run_dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Study rows of the evaluated VQ-VAE runs among ``run_dirs``, sorted by (K, D)."""
    rows = []
    for d in run_dirs:
        path = Path(d) / "results.json"
        if not path.is_file():
            continue
        try:
            res = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        gen = res.get("generative") if isinstance(res, dict) else None
        row = study_row(str(res.get("name") or Path(d).name), gen) if isinstance(gen, dict) else None
        if row is not None:
            rows.append(row)
    return _sort(rows)


def collect_study(parent: Path, group: str, own_dir: Path, own_row: dict[str, Any],
                  dataset: str | None = None) -> list[dict[str, Any]]:
    """The rows of every evaluated run in ``parent`` whose ``generative.study`` is ``group`` (and whose
    dataset is ``dataset``, when given), with ``own_row`` standing for ``own_dir`` (whose results are
    not written yet). Runs left in ``parent`` by an earlier version of a recipe count too."""
    others = []
    for d in sorted(p for p in parent.iterdir() if p.is_dir() and p.resolve() != own_dir.resolve()):
        try:
            res = json.loads((d / "results.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            continue
        gen = res.get("generative") if isinstance(res, dict) else None
        if isinstance(gen, dict) and gen.get("study") == group and dataset in (None, res.get("dataset")):
            others.append(d)
    return _sort([*study_table(others), own_row])


def study_configs(base: ExperimentConfig | Mapping[str, Any], ks: Sequence[int], ds: Sequence[int],
                  k_for_d: int | None = None) -> list[ExperimentConfig]:
    """One config per grid point: every K in ``ks`` at the base D, then every D in ``ds`` at
    ``k_for_d`` (default: the base K); duplicates of (K, D) are dropped; names are ``k{K}-d{D}``."""
    raw = base.resolved() if isinstance(base, ExperimentConfig) else copy.deepcopy(dict(base))
    raw.pop("smoke", None)
    raw["task"] = "vqvae"
    opts = raw.setdefault("model", {}).setdefault("options", {})
    k0, d0 = int(opts.get("codebook_size", 3)), int(opts.get("code_dim", 2))
    k_for_d = k0 if k_for_d is None else int(k_for_d)
    grid = [(int(k), d0) for k in ks] + [(k_for_d, int(d)) for d in ds]
    out, seen = [], set()
    for k, d in grid:
        if (k, d) in seen:
            continue
        seen.add((k, d))
        cfg = copy.deepcopy(raw)
        cfg["name"] = f"k{k}-d{d}"
        cfg["model"]["options"].update(codebook_size=k, code_dim=d)
        out.append(parse_config(cfg, where=f"vq_study point K={k}, D={d}"))
    return out


def vq_study(base_cfg: ExperimentConfig | Mapping[str, Any], Ks: Sequence[int], Ds: Sequence[int],  # noqa: N803
             out: str | Path, k_for_d: int | None = None, smoke: bool = False, overwrite: bool = False,
             device: str | None = None, figures: bool = True) -> dict[str, Any]:
    """Train, evaluate (and with ``figures`` explain and report) one VQ-VAE per grid point of
    :func:`study_configs` into ``out/k{K}-d{D}/``; write ``out/results.json`` with the ``study`` section
    ``{"columns", "rows"}`` (and ``out/figures/study.png``) and return that document."""
    from robustlab.core.io import write_json
    from robustlab.experiment import train_experiment
    from robustlab.labs.generative.figures import study_plot
    from robustlab.pipeline import evaluate_run, explain_run_dir, report_run

    out = Path(out)
    configs = study_configs(base_cfg, Ks, Ds, k_for_d)
    if not configs:
        raise RobustlabError("vq_study needs at least one K or D")
    dirs = []
    for cfg in configs:
        if device:
            cfg = cfg.model_copy(update={"device": device})
        log.info("vq study: %s", cfg.name)
        run_dir = out / cfg.name
        train_experiment(cfg, run_dir, overwrite=overwrite, smoke=smoke)
        evaluate_run(run_dir, device=cfg.device)
        if figures:
            explain_run_dir(run_dir, device=cfg.device)
            report_run(run_dir)
        dirs.append(run_dir)
    rows = study_table(dirs)
    doc: dict[str, Any] = {"name": out.name, "task": "vqvae-study", "smoke": smoke,
                           "study": {"columns": list(COLUMNS), "rows": rows}}
    fig = study_plot(rows, out / "figures" / "study.png")
    if fig is not None:
        doc["figures"] = {"study": "figures/study.png"}
    write_json(out / "results.json", doc)
    if figures:
        report_run(out)
    return doc
