"""The trained part of a frozen-features classifier: a new CLS query and one pre-norm transformer
layer over the backbone's tokens, then a linear classifier — with its attention returned, never
hidden in a fused kernel."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from robustlab.labs.frozen.backbones import TokenLayout


@dataclass
class HeadOutput:
    """What one head pass gives for ``B`` tiles: ``logits`` ``(B, K)``; the CLS query's attention
    ``attn`` ``(B, H, L)`` over the ``L`` attended tokens (CLS first, then registers when attended,
    then the patches in row-major order; every row sums to 1) and its pre-softmax ``scores``
    ``(B, H, L)`` (scaled dot products); ``patch_start`` is where the patches begin in ``L``."""

    logits: Tensor
    attn: Tensor
    scores: Tensor
    patch_start: int

    def patch_attention(self) -> Tensor:
        """``(B, H, P)``: the attention on the patches alone, renormalised to sum to 1 per head."""
        a = self.attn[..., self.patch_start :]
        return a / a.sum(-1, keepdim=True).clamp_min(1e-12)

    def patch_scores(self) -> Tensor:
        """``(B, H, P)``: the pre-softmax scores of the patches."""
        return self.scores[..., self.patch_start :]


class AttentionHead(nn.Module):
    """Tokens ``(B, 1 + R + P, D_in)`` of a backbone with ``layout`` → :class:`HeadOutput`.

    The backbone's tokens are projected to ``dim``; a learned CLS query is prepended; one pre-norm
    transformer layer (multi-head self-attention, ``heads`` heads, then an MLP of ``mlp_ratio``·dim,
    both residual) updates the CLS token, whose final norm feeds a linear layer to ``classes``
    logits. Only the CLS row of the self-attention is computed: the other tokens' outputs feed
    nothing, so this is the layer's exact output at a fraction of the cost. The backbone's own CLS
    token is not attended; its registers are when ``attend_registers``."""

    def __init__(self, layout: TokenLayout, dim_in: int, dim: int = 96, heads: int = 4, mlp_ratio: float = 2.0,
                 dropout: float = 0.1, classes: int = 2, attend_registers: bool = False) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.layout, self.heads, self.attend_registers = layout, heads, attend_registers
        self.proj = nn.Linear(dim_in, dim)
        self.pos = nn.Parameter(torch.zeros(1, layout.patches, dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.norm1 = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = max(1, int(dim * mlp_ratio))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim))
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)
        self.classifier = nn.Linear(dim, classes)

    @property
    def patch_start(self) -> int:
        """Index of the first patch among the attended tokens (CLS, [registers], patches)."""
        return 1 + (self.layout.registers if self.attend_registers else 0)

    def attended(self, tokens: Tensor) -> Tensor:
        """``(B, L, dim)``: the head's CLS query, [the registers], the patches (with a learned
        position embedding), projected to the head's width."""
        _, registers, patches = self.layout.split(tokens)
        parts = [self.cls.expand(tokens.shape[0], -1, -1).to(tokens.dtype)]
        if self.attend_registers:
            parts.append(self.proj(registers))
        parts.append(self.proj(patches) + self.pos)
        return torch.cat(parts, 1)

    def forward(self, tokens: Tensor) -> HeadOutput:
        x = self.attended(tokens.float())
        b, length, dim = x.shape
        d = dim // self.heads
        h = self.norm1(x)
        q = self.q(h[:, :1]).reshape(b, 1, self.heads, d).transpose(1, 2)  # (B, H, 1, d)
        k, v = self.kv(h).reshape(b, length, 2, self.heads, d).permute(2, 0, 3, 1, 4)  # (B, H, L, d) each
        scores = (q @ k.transpose(-2, -1)).squeeze(2) * d**-0.5  # (B, H, L)
        attn = scores.softmax(-1)
        ctx = (self.drop(attn).unsqueeze(2) @ v).squeeze(2).reshape(b, dim)  # (B, dim)
        cls = x[:, 0] + self.drop(self.out(ctx))
        cls = cls + self.drop(self.mlp(self.norm2(cls)))
        return HeadOutput(self.classifier(self.norm(cls)), attn, scores, self.patch_start)
