"""The VQ-VAE codebook study: codebook size K = 3 → 50, then dimension D = 2 → 50.

A study row summarises one trained VQ-VAE run: ``{run, K, D, ema, colour, recon_mse, perplexity,
used_codes, seconds}`` (test reconstruction MSE per pixel in [0, 1] units, perplexity and used codes of
the test set's code assignments, training seconds). The study is several runs sharing ``model.options.study``
(:func:`study_recipe` writes that recipe for a grid); each run's evaluation tabulates the runs of its
group found so far beside it, so the last run's results hold the whole table.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from robustlab.core.errors import RobustlabError

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


def study_recipe(base: Mapping[str, Any], ks: Sequence[int], ds: Sequence[int], k_for_d: int | None = None,
                 name: str = "vq-study", group: str = "codebook") -> dict[str, Any]:
    """A recipe (as a mapping, for :func:`robustlab.recipe.load_recipe`'s schema) training one VQ-VAE per
    grid point: every K in ``ks`` at the base D, then every D in ``ds`` at ``k_for_d`` (default: the base
    K), duplicates dropped, runs named ``k{K}-d{D}`` in study group ``group``; the base grid point comes
    last so that its results hold the whole table. ``base`` is a raw VQ-VAE config."""
    raw = copy.deepcopy(dict(base))
    raw.pop("smoke", None)
    raw["task"] = "vqvae"
    opts = raw.setdefault("model", {}).setdefault("options", {})
    opts["study"] = group
    k0, d0 = int(opts.get("codebook_size", 3)), int(opts.get("code_dim", 2))
    k_for_d = k0 if k_for_d is None else int(k_for_d)
    grid = [(int(k), d0) for k in ks] + [(k_for_d, int(d)) for d in ds]
    points: list[tuple[int, int]] = []
    for p in grid:
        if p not in points:
            points.append(p)
    if not points:
        raise RobustlabError("a VQ-VAE study needs at least one K or D")
    if (k0, d0) in points:  # the base point last: its evaluation sees every other row
        points.remove((k0, d0))
        points.append((k0, d0))
    runs = [{"name": f"k{k}-d{d}", "config": {"model": {"options": {"codebook_size": k, "code_dim": d}}},
             "explain": False} for k, d in points]
    runs[-1]["explain"] = True
    return {"name": name, "base": raw, "runs": runs}
