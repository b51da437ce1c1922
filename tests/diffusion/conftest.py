"""Shared setup of the diffusion tests: no network for diffusers or transformers, and one tiny
Stable Diffusion for the whole session (read it, do not train it)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
from diffusion_helpers import WORDS  # noqa: E402

from robustlab.labs.diffusion.pipeline_parts import tiny_stable_diffusion  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> dict:
    """A seed-0 tiny Stable Diffusion whose tokenizer knows :data:`diffusion_helpers.WORDS` as whole
    tokens. Shared by every test: do not change its weights."""
    return tiny_stable_diffusion(tmp_path_factory.mktemp("tiny-sd-tokenizer"), seed=0, words=WORDS)
