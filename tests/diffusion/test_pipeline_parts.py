"""The Stable-Diffusion-shaped model folder: tiny build, tokenizer, save/load round trip, refusals."""

from __future__ import annotations

import shutil

import pytest
import torch
from diffusion_helpers import LATENT_SHAPE, PROMPT, WORDS, embeddings, noise

from robustlab.core.errors import RobustlabError
from robustlab.labs.diffusion.guidance import sample
from robustlab.labs.diffusion.pipeline_parts import (
    check_single_token,
    encode_prompts,
    load_components,
    save_components,
    tiny_stable_diffusion,
    write_clip_tokenizer,
)


@pytest.fixture(scope="module")
def saved(tiny_sd, tmp_path_factory):
    """The session's tiny Stable Diffusion saved once in diffusers' layout."""
    return save_components(tiny_sd, tmp_path_factory.mktemp("tiny-sd"))


def _copy(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "sd")


def test_tokenizer_files_and_rare_token_is_one_token(tmp_path):
    tok = write_clip_tokenizer(tmp_path, WORDS)
    assert (tmp_path / "merges.txt").read_text().startswith("#version: 0.2\n")
    assert (tmp_path / "vocab.json").is_file()
    sks = check_single_token(tok, "sks")
    assert isinstance(sks, int) and sks == tok.convert_tokens_to_ids("sks</w>")
    assert tok.tokenize(PROMPT) == ["a</w>", "photo</w>", "of</w>", "sks</w>", "dog</w>"]
    ids = tok(PROMPT, padding="max_length", max_length=tok.model_max_length).input_ids
    assert len(ids) == 16 and ids[0] == tok.bos_token_id and ids[6:] == [tok.eos_token_id] * 10
    assert tok.tokenize("zebra!") == ["z", "e", "b", "r", "a</w>", "!</w>"]  # any printable ASCII still encodes


def test_word_of_several_tokens_is_refused(tmp_path):
    tok = write_clip_tokenizer(tmp_path, ("sks",))
    with pytest.raises(RobustlabError, match=r"'xyz' is 3 tokens \(x, y, z\).*e\.g\. 'sks'") as err:
        check_single_token(tok, "xyz")
    assert "\n" not in str(err.value)
    with pytest.raises(RobustlabError, match=r"4 tokens \(sks, d, o, g\)"):
        check_single_token(tok, "sks dog")


def test_tiny_build_is_seeded_and_leaves_global_rng(tiny_sd):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)  # a state that building with seed 0 would not leave behind
        state = torch.random.get_rng_state()
        again = tiny_stable_diffusion(seed=0, words=WORDS)
        assert torch.equal(torch.random.get_rng_state(), state)
    for name in ("unet", "vae", "text_encoder"):
        mine, theirs = tiny_sd[name].state_dict(), again[name].state_dict()
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine), name
    other = tiny_stable_diffusion(seed=1, words=WORDS)
    assert not torch.equal(other["unet"].conv_in.weight, tiny_sd["unet"].conv_in.weight)
    assert tiny_sd["text_encoder"].config.vocab_size == len(tiny_sd["tokenizer"])


def test_encode_prompts_shape_and_no_grad(tiny_sd):
    emb = encode_prompts(tiny_sd["tokenizer"], tiny_sd["text_encoder"], [PROMPT, "a dog", ""])
    assert emb.shape == (3, 16, 32) and not emb.requires_grad
    assert not torch.allclose(emb[0], emb[1]) and not torch.allclose(emb[1], emb[2])


def test_save_then_load_gives_the_same_sample_bit_for_bit(tiny_sd, saved):
    assert (saved / "model_index.json").is_file()
    for name in ("unet", "vae", "text_encoder"):
        assert list((saved / name).glob("*.safetensors")) and not list((saved / name).glob("*.bin")), name
    loaded = load_components(saved)
    assert loaded["tokenizer"].tokenize(PROMPT) == tiny_sd["tokenizer"].tokenize(PROMPT)
    public = lambda config: {k: v for k, v in config.items() if not k.startswith("_")}  # noqa: E731
    assert public(loaded["scheduler"].config) == public(tiny_sd["scheduler"].config)

    def guided(parts: dict) -> torch.Tensor:
        cond, uncond = embeddings(parts, [PROMPT])
        return sample(parts["unet"], parts["scheduler"], cond, uncond, LATENT_SHAPE, steps=2, scale=6.0,
                      latents=noise(seed=5))

    assert torch.equal(guided(tiny_sd), guided(loaded))


def test_missing_components_are_named(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    shutil.rmtree(folder / "vae")
    shutil.rmtree(folder / "tokenizer")
    with pytest.raises(RobustlabError, match=r"lacks vae/, tokenizer/; it must hold the subfolders unet/") as err:
        load_components(folder)
    assert "\n" not in str(err.value)


def test_pickle_only_component_is_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(RobustlabError, match=r"unet.*only pickled weights.*convert them to safetensors") as err:
        load_components(folder)
    assert "\n" not in str(err.value)


def test_not_a_folder_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"")
    with pytest.raises(RobustlabError, match="is not a folder"):
        load_components(path)
    with pytest.raises(RobustlabError, match="is not a folder"):
        load_components(tmp_path / "nowhere")
