"""Local DINOv2 weights in both formats, the frozen backbone's mode and gradients, token layout."""

from __future__ import annotations

import re

import pytest
import torch
from frozen_helpers import PLAIN, REG4, TINY

from robustlab.core.errors import RobustlabError
from robustlab.core.modes import eval_mode
from robustlab.labs.frozen.backbones import Backbone, load_dinov2_file, seeded_vit
from robustlab.labs.frozen.head import AttentionHead
from robustlab.labs.frozen.model import FrozenFeatureClassifier
from robustlab.labs.frozen.task import HeadTask


@pytest.mark.parametrize("arch", [REG4, PLAIN])
@pytest.mark.parametrize("fmt", ["safetensors", "original"])
def test_local_weights_load_in_both_formats(tiny_weights, arch, fmt):
    path, saved = tiny_weights(arch, fmt)
    fresh = seeded_vit(arch, 56, seed=99, **TINY).eval()
    x = torch.rand(2, 3, 56, 56)
    assert not torch.allclose(fresh.forward_features(x), saved.forward_features(x))
    load_dinov2_file(fresh, path)
    torch.testing.assert_close(fresh.forward_features(x), saved.forward_features(x), rtol=1e-5, atol=1e-5)


def test_timm_checkpoint_path_cannot_read_the_original_layout(tiny_weights):
    """Why the lab runs timm's DINOv2 filter itself: timm's plain ``checkpoint_path`` loader skips the
    conversion and fails on a facebookresearch file."""
    import timm

    path, _ = tiny_weights(REG4, "original")
    with pytest.raises(RuntimeError, match="reg_token"):
        timm.create_model(REG4, pretrained=False, img_size=56, num_classes=0, embed_dim=48, depth=2, num_heads=3,
                          checkpoint_path=str(path))


def test_original_weights_are_resampled_to_another_tile_size(tiny_weights):
    path, saved = tiny_weights(REG4, "original", size=56)
    bigger = seeded_vit(REG4, 84, seed=3, **TINY)
    load_dinov2_file(bigger, path)
    assert bigger.pos_embed.shape[1] == 36  # 6×6 patches, resampled from 4×4
    torch.testing.assert_close(bigger.blocks[0].attn.qkv.weight, saved.blocks[0].attn.qkv.weight)


def test_weights_of_another_architecture_name_the_first_mismatched_tensor(tiny_weights):
    path, _ = tiny_weights(REG4, "safetensors", embed_dim=64, heads=4)
    with pytest.raises(RobustlabError) as e:
        load_dinov2_file(seeded_vit(REG4, 56, 0, **TINY), path)
    message = str(e.value)
    assert "\n" not in message and "does not fit model" in message
    assert re.search(r"[\w.]+ has shape \((1, )*64\S*\), the model expects \((1, )*48", message), message


def test_a_pickle_with_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"cls_token": torch.zeros(1), "payload": torch.nn.Linear(2, 2)}, path)
    with pytest.raises(RobustlabError):
        load_dinov2_file(seeded_vit(REG4, 56, 0, **TINY), path)


def test_seeded_backbones_repeat_and_leave_the_global_rng_alone():
    torch.manual_seed(0)
    before = torch.rand(1)
    torch.manual_seed(0)
    a = seeded_vit(REG4, 56, 7, **TINY)
    after = torch.rand(1)
    b = seeded_vit(REG4, 56, 7, **TINY)
    assert torch.equal(before, after)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def _classifier() -> FrozenFeatureClassifier:
    backbone = Backbone(seeded_vit(REG4, 56, 0, **TINY))
    return FrozenFeatureClassifier(backbone, AttentionHead(backbone.layout, backbone.dim, 32, 2, dropout=0.5))


def test_the_backbone_stays_frozen_and_in_eval_mode_while_the_head_trains():
    model = _classifier()
    model.train()
    assert model.head.training and not model.backbone.training
    assert not any(m.training for m in model.backbone.modules())
    with eval_mode(model):
        assert not model.head.training
    assert model.head.training and not model.backbone.training  # the helper restores each module's own flag
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    task = HeadTask()
    x = torch.rand(4, 3, 56, 56)
    tokens, labels = task.unpack((model.backbone(x).half(), torch.tensor([0, 1, 0, 1])), torch.device("cpu"))
    out = task.forward(model, tokens, labels)
    out.loss.backward()
    optimizer.step()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.head.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.backbone.state_dict().items())


def test_gradients_reach_the_pixels_through_the_frozen_backbone():
    model = _classifier().eval()
    x = torch.rand(2, 3, 56, 56, requires_grad=True)
    model(x)[:, 1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_token_layout_keeps_cls_registers_and_patches_apart():
    backbone = Backbone(seeded_vit(REG4, 56, 0, **TINY))
    tokens = backbone(torch.rand(2, 3, 56, 56))
    cls, registers, patches = backbone.layout.split(tokens)
    assert cls.shape == (2, 48) and registers.shape == (2, 4, 48) and patches.shape == (2, 16, 48)
    assert torch.equal(patches, tokens[:, backbone.vit.num_prefix_tokens:])
    plain = Backbone(seeded_vit(PLAIN, 56, 0, **TINY))
    assert plain.layout.registers == 0 and plain.layout.prefix == plain.vit.num_prefix_tokens == 1
