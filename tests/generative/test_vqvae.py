"""VQ-VAE: straight-through gradients, loss terms, codebook usage, EMA, dead-code restarts, history."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from robustlab.labs.generative import (
    VQVAE,
    VectorQuantizer,
    VQVAETask,
    code_counts,
    colour_factors,
    colourize,
    usage_stats,
)


def _recon(model: VQVAE, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(torch.sigmoid(model.decode(z)), x)


def test_straight_through_gives_the_encoder_the_decoders_gradient():
    torch.manual_seed(0)
    model = VQVAE((1, 8, 8), channels=[4], codebook_size=5, code_dim=3)
    x = torch.rand(2, 1, 8, 8)
    enc = list(model.encoder.parameters())
    out = model(x)
    g_st = torch.autograd.grad(_recon(model, out.z_q, x), enc)
    assert all(torch.isfinite(g).all() for g in g_st)
    assert sum(float(g.abs().sum()) for g in g_st) > 0
    # chain rule by hand: dL/dq at q = the chosen codes, pushed back through the encoder
    z_e = model.encoder(x)
    idx = model.quantizer.nearest(z_e.detach().permute(0, 2, 3, 1).reshape(-1, 3))
    q = model.quantizer.embedding.detach()[idx].view(2, 4, 4, 3).permute(0, 3, 1, 2).clone().requires_grad_(True)
    (g_q,) = torch.autograd.grad(_recon(model, q, x), q)
    g_manual = torch.autograd.grad(z_e, enc, grad_outputs=g_q)
    for a, b in zip(g_st, g_manual, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_straight_through_equals_the_unquantised_path_when_codes_hit_the_encoder_outputs():
    torch.manual_seed(1)
    model = VQVAE((1, 4, 4), channels=[2], codebook_size=8, code_dim=2)  # 1 image → 2×2 = 4 latent vectors
    x = torch.rand(1, 1, 4, 4)
    with torch.no_grad():
        flat = model.encoder(x).permute(0, 2, 3, 1).reshape(-1, 2)
        model.quantizer.embedding[:4] = flat  # every encoder output is exactly a code, so z_q == z_e in value
        model.quantizer.embedding[4:] = 100.0
    enc = list(model.encoder.parameters())
    out = model(x)
    assert torch.allclose(out.z_q, out.z_e, atol=1e-6)
    g_st = torch.autograd.grad(_recon(model, out.z_q, x), enc)
    g_direct = torch.autograd.grad(_recon(model, model.encoder(x), x), enc)
    for a, b in zip(g_st, g_direct, strict=True):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_codebook_loss_trains_only_the_codebook_and_commitment_only_the_encoder():
    torch.manual_seed(2)
    model = VQVAE((1, 8, 8), channels=[4], codebook_size=4, code_dim=2)
    x = torch.rand(3, 1, 8, 8)
    out = model(x)
    enc = list(model.encoder.parameters())
    emb = model.quantizer.embedding
    g_cb = torch.autograd.grad(out.codebook_loss, [*enc, emb], allow_unused=True)
    assert all(g is None or float(g.abs().sum()) == 0 for g in g_cb[:-1])
    assert float(g_cb[-1].abs().sum()) > 0
    out = model(x)
    g_cm = torch.autograd.grad(out.commit_loss, [*enc, emb], allow_unused=True)
    assert g_cm[-1] is None or float(g_cm[-1].abs().sum()) == 0
    assert sum(float(g.abs().sum()) for g in g_cm[:-1]) > 0
    # both terms are the same mean squared distance in value
    assert float(out.codebook_loss.detach()) == pytest.approx(float(out.commit_loss.detach()))
    d = (out.z_e - out.z_q).pow(2).mean()
    assert float(out.commit_loss.detach()) == pytest.approx(float(d.detach()), rel=1e-5)


def test_nearest_code_on_a_hand_made_codebook():
    q = VectorQuantizer(3, 2)
    with torch.no_grad():
        q.embedding.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]))
    pts = torch.tensor([[0.1, 0.1], [0.9, -0.2], [0.2, 1.5], [0.6, 0.0], [-3.0, 0.0]])
    assert q.nearest(pts).tolist() == [0, 1, 2, 1, 0]


def test_usage_and_perplexity_on_hand_made_assignments():
    assert usage_stats(code_counts(torch.tensor([0, 0, 1, 1]), 4)) == (2, pytest.approx(2.0))
    assert usage_stats(code_counts(torch.tensor([[3, 3], [3, 3]]), 4)) == (1, pytest.approx(1.0))
    assert usage_stats(code_counts(torch.arange(5).repeat(3), 5)) == (5, pytest.approx(5.0))
    p = torch.tensor([0.75, 0.25])
    assert usage_stats(code_counts(torch.tensor([0, 0, 0, 2]), 3)) == (2, pytest.approx(math.exp(-(p * p.log()).sum())))
    assert usage_stats(torch.zeros(3)) == (0, 0.0)


def test_task_perplexity_is_over_the_epoch_not_averaged_over_batches():
    task = VQVAETask(num_codes=4)
    model = VQVAE((1, 8, 8), channels=[4], codebook_size=4, code_dim=2)
    sums: dict[str, torch.Tensor] = {}
    for code in (0, 1):  # batch 1 uses only code 0, batch 2 only code 1
        with torch.no_grad():
            model.quantizer.embedding.copy_(torch.full((4, 2), 1e3))
            model.quantizer.embedding[code] = 0.0
        out = task.forward(model, torch.rand(2, 1, 8, 8), torch.zeros(2, dtype=torch.long))
        for k, v in task.batch_metrics(out).items():
            sums[k] = sums[k] + v if k in sums else v
    res = task.summarize({k: float(v) for k, v in sums.items()})
    assert res["used_codes"] == 2 and res["perplexity"] == pytest.approx(2.0)
    assert not any(k.startswith("code_") for k in res)
    assert res["loss"] == pytest.approx(res["recon"] + res["codebook"] + 0.25 * res["commit"], rel=1e-5)


def test_ema_update_moves_codes_to_the_mean_of_their_vectors():
    q = VectorQuantizer(2, 2, ema=True, decay=0.5, eps=0.0)
    with torch.no_grad():
        q.embedding.copy_(torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
        q.ema_weight.copy_(q.embedding)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]]).t().reshape(1, 2, 2, 2)  # 4 vectors
    q.train()
    _, idx, codebook_loss, _ = q(z)
    assert idx.flatten().tolist() == [0, 0, 0, 0] and float(codebook_loss) == 0.0
    # ema_count[0] = 0.5*1 + 0.5*4 = 2.5 and ema_weight[0] = 0.5*(0, 0) + 0.5*(4, 4) = (2, 2), so code 0
    # becomes (0.8, 0.8) (eps = 0: no Laplace smoothing)
    assert torch.allclose(q.embedding[0], torch.tensor([0.8, 0.8]))
    assert torch.allclose(q.embedding[1], torch.tensor([10.0, 10.0]))  # unused: 0.5*w / 0.5*1
    assert not q.embedding.requires_grad


def test_dead_codes_are_restarted_on_encoder_outputs():
    torch.manual_seed(3)
    q = VectorQuantizer(3, 2, restart_dead=True, restart_after=2)
    with torch.no_grad():
        q.embedding.copy_(torch.tensor([[0.0, 0.0], [50.0, 50.0], [-50.0, 50.0]]))
    z = torch.randn(1, 2, 4, 4) * 0.1
    q.train()
    q(z)
    assert q.unused_steps.tolist() == [0, 1, 1]
    q(z)  # second unused step: codes 1 and 2 are moved onto encoder outputs
    flat = z.permute(0, 2, 3, 1).reshape(-1, 2)
    for k in (1, 2):
        assert torch.cdist(q.embedding[k : k + 1].detach(), flat).min() < 0.01
    assert q.unused_steps.tolist() == [0, 0, 0]


def test_codebook_history_snapshots_each_validation_and_survives_the_state_dict():
    torch.manual_seed(4)
    model = VQVAE((1, 8, 8), channels=[4], codebook_size=3, code_dim=2, snapshot_points=10)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    task = VQVAETask(3)
    x, y = torch.rand(4, 1, 8, 8), torch.zeros(4, dtype=torch.long)
    assert len(model.history) == 1 and int(model.history[0]["step"]) == 0
    for _epoch in range(3):
        model.train()
        for _ in range(2):
            out = task.forward(model, x, y)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
        model.eval()  # the trainer's validation
        model.eval()  # evaluating again without training adds nothing
    hist = model.history
    assert [int(h["step"]) for h in hist] == [0, 2, 4, 6]
    assert hist[0]["points"].shape == (10, 2) and hist[-1]["codebook"].shape == (3, 2)
    assert not torch.equal(hist[0]["codebook"], hist[-1]["codebook"])
    fresh = VQVAE((1, 8, 8), channels=[4], codebook_size=3, code_dim=2, snapshot_points=10)
    fresh.load_state_dict(model.state_dict())
    assert [int(h["step"]) for h in fresh.history] == [0, 2, 4, 6]
    fresh.eval()
    assert len(fresh.history) == 4


def test_odd_image_sizes_are_reconstructed_at_their_size():
    model = VQVAE((3, 7, 9), channels=[4, 4], codebook_size=3, code_dim=2)
    assert model(torch.rand(2, 3, 7, 9)).logits.shape == (2, 3, 7, 9)


def test_colour_variant_is_a_fixed_function_of_the_image():
    torch.manual_seed(5)
    x = torch.rand(6, 1, 5, 5)
    c = colourize(x)
    f = colour_factors(x)
    assert c.shape == (6, 3, 5, 5) and float(c.min()) >= 0 and float(c.max()) <= 1
    assert f.shape == (6, 3) and float(f.min()) >= 0 and float(f.max()) < 1
    assert torch.allclose(c, x * f[:, :, None, None])
    assert torch.equal(colourize(x.flip(0)), c.flip(0))  # batch order does not matter
    assert torch.equal(colourize(x[2:3]), c[2:3])
    assert not torch.equal(colour_factors(x, seed=1), f)
    assert f.std(0).min() > 0.05  # images get different colours


def test_quantiser_agrees_with_vector_quantize_pytorch():
    import vector_quantize_pytorch as vqp  # a declared dev dependency: missing is a failure
    torch.manual_seed(6)
    ours = VectorQuantizer(7, 4)
    with torch.no_grad():
        ours.embedding.normal_()
    ref = vqp.VectorQuantize(dim=4, codebook_size=7, accept_image_fmap=True, commitment_weight=1.0,
                             rotation_trick=False, freeze_codebook=True)
    with torch.no_grad():
        ref._codebook.embed.copy_(ours.embedding[None])
    ref.train()
    ours.eval()
    z = torch.randn(3, 4, 5, 5, requires_grad=True)
    q_ref, idx_ref, loss_ref = ref(z)
    z_q, idx, _, commit = ours(z)
    assert torch.equal(idx, idx_ref)
    assert float(commit.detach()) == pytest.approx(float(loss_ref.detach()), rel=1e-5)
    assert torch.allclose(z_q, q_ref, atol=1e-6)
    (g_ref,) = torch.autograd.grad(q_ref.pow(2).sum(), z)
    (g,) = torch.autograd.grad(z_q.pow(2).sum(), z)
    assert torch.allclose(g, g_ref, atol=1e-6)
