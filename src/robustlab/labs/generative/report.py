"""The generative labs' report sections: headline cards; the ``generative`` and ``study`` sections of
results.json are shown by the report shell's generic tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from robustlab.report.format import num, pct
from robustlab.report.section import Section


def generative_sections(run_dir: Path, config: dict[str, Any], results: dict[str, Any]) -> list[Section]:
    """Headline cards of a VAE/CVAE/VQ-VAE run (ELBO, label following, reconstruction MSE, codebook use)."""
    gen = results.get("generative")
    if not isinstance(gen, dict):
        return []
    cards = []
    if isinstance(gen.get("elbo_nats"), float):
        cards.append({"label": "test ELBO", "value": f"{gen['elbo_nats']:.2f}", "sub": "nats per image"})
    follow = gen.get("label_following")
    if isinstance(follow, dict) and isinstance(follow.get("accuracy"), float):
        cards.append({"label": "label following", "value": pct(follow["accuracy"]),
                      "sub": f"chance {pct(follow.get('chance'))}"})
    if isinstance(gen.get("recon_mse"), float):
        cards.append({"label": "test reconstruction MSE", "value": num(gen["recon_mse"]), "sub": "per pixel, [0, 1]"})
    if isinstance(gen.get("perplexity"), float):
        cards.append({"label": "codebook perplexity", "value": num(gen["perplexity"]),
                      "sub": f"{gen.get('used_codes')}/{gen.get('K')} codes used"})
    return [Section(title="headline numbers", key="generative-cards", cards=cards)] if cards else []
