"""The couplet models: a small GPT-2 built from a config (offline), or a pretrained causal LM read from
a local directory (HooshvareLab/gpt2-fa), never from the network.

A model directory needs ``config.json``, weights (``model.safetensors``, or the pickle
``pytorch_model.bin`` — refused unless ``trust_pickle``) and tokenizer files (``tokenizer.json``, or
``vocab.json`` + ``merges.txt``). Even when trusted, a pickle is read through torch's weights-only
unpickler: a file that holds anything but tensors is refused.
"""

from __future__ import annotations

import os

# read once, when huggingface_hub is first imported: set before the transformers import below
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pickle  # noqa: E402  (only its error type: nothing here unpickles)
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging  # noqa: E402

from robustlab.core.errors import RobustlabError  # noqa: E402

hf_logging.disable_progress_bar()  # loading/saving shards: robustlab's own log says what happens

SAFE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
PICKLE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
EXPECTED = ("config.json; weights as model.safetensors (or pytorch_model.bin with trust_pickle); "
            "tokenizer.json or vocab.json + merges.txt")


def tiny_gpt2(vocab_size: int, n_positions: int = 64, n_layer: int = 2, n_embd: int = 32, n_head: int = 2,
              dropout: float = 0.1, *, bos_id: int, eos_id: int, pad_id: int) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 (``GPT2Config``; the same ``dropout`` on embeddings, attention and
    residuals; input and output embeddings tied) for ``vocab_size`` tokens and contexts of at most
    ``n_positions``. ``n_embd`` must be a multiple of ``n_head``. Initialisation draws from torch's
    global RNG: seed it first for a reproducible model."""
    if n_embd % n_head:
        raise RobustlabError(f"n_embd {n_embd} is not a multiple of n_head {n_head}")
    config = GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_layer=n_layer, n_embd=n_embd,
                        n_head=n_head, resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                        bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=pad_id)
    return GPT2LMHeadModel(config)


def snapshot_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights and buffers as detached copies (same devices and dtypes): later training
    steps do not change them, unlike ``model.state_dict()`` whose tensors share the live storage.
    ``model.load_state_dict(snapshot)`` restores the model as it was."""
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def _weights(folder: Path, trust_pickle: bool) -> bool:
    """Whether the model should be read from safetensors (True) or the trusted pickle (False)."""
    if any((folder / name).is_file() for name in SAFE_WEIGHTS):
        return True
    if not any((folder / name).is_file() for name in PICKLE_WEIGHTS):
        raise RobustlabError(f"{folder} has no weights; expected {EXPECTED}")
    if not trust_pickle:
        raise RobustlabError(f"{folder} has weights only as a pickle (pytorch_model.bin), and unpickling can run "
                             "arbitrary code: pass trust_pickle=True (--trust-pickle) if you trust its source, "
                             "or convert it to model.safetensors")
    return False


def check_model_dir(folder: str | os.PathLike, trust_pickle: bool = False) -> bool:
    """Check that ``folder`` holds a loadable model (see the module docs) and return whether its
    weights are safetensors (False: the trusted pickle)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RobustlabError(f"model directory {folder} does not exist; expected a folder with {EXPECTED}")
    if not (folder / "config.json").is_file():
        raise RobustlabError(f"{folder} has no config.json; expected {EXPECTED}")
    safe = _weights(folder, trust_pickle)
    has_bpe = (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    if not (folder / "tokenizer.json").is_file() and not has_bpe:
        raise RobustlabError(f"{folder} has no tokenizer files; expected {EXPECTED}")
    return safe


def _one_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _read_model(folder: Path, safe: bool) -> PreTrainedModel:
    try:
        return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, use_safetensors=safe)
    except pickle.UnpicklingError as err:
        raise RobustlabError(f"{folder / 'pytorch_model.bin'} holds objects other than tensors, refused even with "
                             f"trust_pickle ({_one_line(err)})") from err
    except (OSError, ValueError) as err:
        raise RobustlabError(f"cannot load the model from {folder}: {_one_line(err)}") from err


def read_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved in ``folder``, read without network access (one-line error otherwise)."""
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError) as err:
        raise RobustlabError(f"cannot load the tokenizer from {folder}: {_one_line(err)}") from err


def embedding_rows(model: PreTrainedModel) -> int:
    """How many token ids the model can embed."""
    return model.get_input_embeddings().num_embeddings


def load_local_model(directory: str | os.PathLike,
                     trust_pickle: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The causal LM and tokenizer saved in ``directory`` (``save_pretrained``), read without network
    access, the model in eval mode. Errors (one line) name what is missing or wrong: no config, no
    weights, no tokenizer, pickle-only weights without ``trust_pickle``, or a tokenizer with more
    tokens than the model has embedding rows (fewer is fine)."""
    folder = Path(directory)
    safe = check_model_dir(folder, trust_pickle)
    tokenizer = read_tokenizer(folder)
    model = _read_model(folder, safe)
    if len(tokenizer) > embedding_rows(model):
        raise RobustlabError(f"the tokenizer in {folder} has {len(tokenizer)} tokens but the model embeds only "
                             f"{embedding_rows(model)}; they do not belong together")
    return model.eval(), tokenizer


def fit_to_tokenizer(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """Make ``model`` (in place) able to embed every token of ``tokenizer`` — after
    :func:`~robustlab.labs.lm.tokenizer.ensure_special_tokens` added some — and record the
    tokenizer's bos/eos/pad ids in its config and generation config. New embedding rows start at the
    mean of the old ones (transformers' ``mean_resizing``; random draws use torch's global RNG).
    Returns the number of rows added."""
    before = embedding_rows(model)
    if len(tokenizer) > before:
        model.resize_token_embeddings(len(tokenizer))
    for role in ("bos", "eos", "pad"):
        token_id = getattr(tokenizer, f"{role}_token_id")
        setattr(model.config, f"{role}_token_id", token_id)
        setattr(model.generation_config, f"{role}_token_id", token_id)
    return embedding_rows(model) - before
