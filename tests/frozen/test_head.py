"""The attention head: explicit attention whose rows sum to 1 and match a by-hand recomputation,
registers attended or not, and the model's pixel path equal to its cached-token path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from frozen_helpers import REG4, TINY

from robustlab.data.frozen_features import extract_features
from robustlab.labs.frozen.backbones import Backbone, seeded_vit
from robustlab.labs.frozen.head import AttentionHead
from robustlab.labs.frozen.model import FrozenFeatureClassifier


def _head(attend_registers: bool) -> tuple[Backbone, AttentionHead]:
    backbone = Backbone(seeded_vit(REG4, 56, 0, **TINY))
    torch.manual_seed(1)
    head = AttentionHead(backbone.layout, backbone.dim, dim=32, heads=4, dropout=0.0,
                         attend_registers=attend_registers).eval()
    return backbone, head


def _by_hand(head: AttentionHead, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The layer written out with explicit weights: (attention (B, H, L), scores, logits (B, K))."""
    reg = tokens[:, 1:5] if head.attend_registers else tokens[:, :0]
    patches = tokens[:, 5:]
    x = torch.cat([head.cls.expand(len(tokens), -1, -1), reg @ head.proj.weight.T + head.proj.bias,
                   patches @ head.proj.weight.T + head.proj.bias + head.pos], 1)
    h = F.layer_norm(x, (32,), head.norm1.weight, head.norm1.bias)
    wk, wv = head.kv.weight[:32], head.kv.weight[32:]
    bk, bv = head.kv.bias[:32], head.kv.bias[32:]
    scores = torch.empty(len(tokens), 4, x.shape[1])
    ctx = torch.empty(len(tokens), 32)
    for b in range(len(tokens)):
        q = h[b, 0] @ head.q.weight.T + head.q.bias
        k = h[b] @ wk.T + bk
        v = h[b] @ wv.T + bv
        for i in range(4):
            s = slice(8 * i, 8 * i + 8)
            scores[b, i] = (k[:, s] @ q[s]) / 8**0.5
            ctx[b, s] = scores[b, i].softmax(0) @ v[:, s]
    cls = x[:, 0] + ctx @ head.out.weight.T + head.out.bias
    cls = cls + head.mlp(F.layer_norm(cls, (32,), head.norm2.weight, head.norm2.bias))
    logits = head.classifier(F.layer_norm(cls, (32,), head.norm.weight, head.norm.bias))
    return scores.softmax(-1), scores, logits


@pytest.mark.parametrize("attend_registers", [False, True])
def test_attention_rows_sum_to_one_and_match_a_recomputation(attend_registers):
    backbone, head = _head(attend_registers)
    tokens = backbone(torch.rand(3, 3, 56, 56))
    with torch.no_grad():
        out = head(tokens)
        attn, scores, logits = _by_hand(head, tokens)
    length = 1 + (4 if attend_registers else 0) + 16
    assert out.attn.shape == out.scores.shape == (3, 4, length)
    torch.testing.assert_close(out.attn.sum(-1), torch.ones(3, 4))
    torch.testing.assert_close(out.attn, attn, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.scores, scores, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.logits, logits, rtol=1e-5, atol=1e-5)
    patch = out.patch_attention()
    assert patch.shape == (3, 4, 16) and out.patch_start == length - 16
    torch.testing.assert_close(patch.sum(-1), torch.ones(3, 4))
    torch.testing.assert_close(out.patch_scores(), scores[..., length - 16:])


def test_the_pixel_path_equals_the_cached_token_path():
    backbone, head = _head(False)
    model = FrozenFeatureClassifier(backbone, head).eval()
    images = (torch.rand(5, 3, 56, 56) * 255).to(torch.uint8)
    tokens = extract_features(backbone, images, batch_size=2)
    assert tokens.dtype == torch.float16 and tokens.shape == (5, 21, 48)
    with torch.no_grad():
        direct = model(images.float() / 255)
        cached = head(tokens.float()).logits
    torch.testing.assert_close(direct, cached, rtol=2e-2, atol=2e-2)  # fp16 cache
