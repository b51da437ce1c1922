import pickle

import pytest
import torch

from robustlab.core.checkpoint import load_checkpoint, read_state_dict, save_checkpoint
from robustlab.core.errors import RobustlabError
from robustlab.models import build_model


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create a file if unpickled


def test_round_trip(tmp_path):
    state = {"model": {"w": torch.randn(3, 3)}, "epoch": 4, "rng": torch.get_rng_state(), "cfg": {"a": [1, 2]}}
    save_checkpoint(tmp_path / "c.pt", state)
    back = load_checkpoint(tmp_path / "c.pt")
    assert back["epoch"] == 4 and torch.equal(back["model"]["w"], state["model"]["w"])
    assert torch.equal(back["rng"], state["rng"])


def test_truncated_and_corrupt(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"w": torch.randn(100)})
    raw = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(RobustlabError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(RobustlabError):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(RobustlabError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checksum_detects_modified_payload(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"w": torch.zeros(10)})
    outer = torch.load(tmp_path / "c.pt", weights_only=True)
    outer["payload"][-20] ^= 0xFF
    torch.save(outer, tmp_path / "c.pt")
    with pytest.raises(RobustlabError, match="checksum"):
        load_checkpoint(tmp_path / "c.pt")


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"model": _Evil(str(marker))}, f)
    torch.save({"model": _Evil(str(marker))}, tmp_path / "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        with pytest.raises(RobustlabError, match="refusing to load|truncated or corrupt"):
            load_checkpoint(tmp_path / name)
        with pytest.raises(RobustlabError):
            read_state_dict(tmp_path / name)
    assert not marker.exists()


def test_read_state_dict_formats(tmp_path):
    from safetensors.torch import save_file

    m = build_model("small_cnn", 10, in_channels=1, image_size=8)
    sd = {k: v.contiguous() for k, v in m.state_dict().items()}
    torch.save(sd, tmp_path / "plain.pt")
    torch.save({"state_dict": sd}, tmp_path / "wrapped.pt")
    save_file(sd, str(tmp_path / "w.safetensors"))
    save_checkpoint(tmp_path / "ours.pt", {"model": sd})
    for name in ("plain.pt", "wrapped.pt", "w.safetensors", "ours.pt"):
        back = read_state_dict(tmp_path / name)
        assert set(back) == set(sd)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(RobustlabError, match="state dict"):
        read_state_dict(tmp_path / "list.pt")
