"""The captioner's parts: encoders (torchvision shapes, local weights saved by the test), the attention
decoder and its penalty, the caption tensors and rows, the task's loss and free-running BLEU,
scheduled sampling and the pixel attacks."""

from __future__ import annotations

import pytest
import torch
import torchvision

from robustlab.core.errors import RobustlabError
from robustlab.labs.captioning.decoder import AttentionDecoder, doubly_stochastic_penalty
from robustlab.labs.captioning.decoding import greedy_decode
from robustlab.labs.captioning.encoders import Encoder, load_encoder_weights
from robustlab.labs.captioning.metrics import corpus_bleu
from robustlab.labs.captioning.model import Captioner
from robustlab.labs.captioning.prepare import (
    CaptionRows,
    CaptionSplit,
    caption_tensor,
    reference_tensor,
    reference_words,
    rows_for,
)
from robustlab.labs.captioning.robustness import CaptionObjective, caption_attack, jensen_shannon
from robustlab.labs.captioning.task import (
    CaptionTask,
    FreeRunningBleu,
    ScheduledSampling,
    ids_to_words,
    teacher_forcing_probability,
)
from robustlab.labs.captioning.text import EOS, PAD, SOS, UNK, Vocabulary


def _captioner(vocab: int = 12, reads_features: bool = False, seed: int = 0) -> Captioner:
    torch.manual_seed(seed)
    enc = Encoder("small-cnn", width=16, fine_tune="none", seed=seed)
    dec = AttentionDecoder(vocab, 16, embed_dim=8, dec_dim=16, att_dim=8, attention="additive", dropout=0.0)
    return Captioner(enc, dec, reads_features=reads_features).eval()


def test_efficientnet_b7_grid_is_7x7x2560_at_224():
    enc = Encoder("efficientnet_b7")
    with torch.no_grad():
        out = enc(torch.rand(1, 3, 224, 224))
    assert out.shape == (1, 2560, 7, 7)
    assert enc.frozen and not any(p.requires_grad for p in enc.parameters())


def test_resnet_fine_tune_last_trains_only_layer4():
    enc = Encoder("resnet18", fine_tune="last")
    trainable = {n.split(".")[1] for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable == {"layer4"}
    enc.train()
    assert enc.net.layer4.training and not enc.net.layer1.training and not enc.net.bn1.training


def test_local_weights_round_trip_and_one_line_errors(tmp_path):
    torch.manual_seed(3)
    source = torchvision.models.efficientnet_b0(weights=None)  # a classifier head included, as on disk
    path = tmp_path / "b0.pth"
    torch.save(source.state_dict(), path)
    enc = Encoder("efficientnet_b0", seed=9)
    load_encoder_weights(enc, path)
    torch.testing.assert_close(enc.net.features[1][0].block[0][0].weight, source.features[1][0].block[0][0].weight)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), source.features(enc.normalize(x)))

    state = source.state_dict()
    state["features.0.0.weight"] = state["features.0.0.weight"][:, :2]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(RobustlabError, match=r"features\.0\.0\.weight has shape") as e:
        load_encoder_weights(Encoder("efficientnet_b0"), tmp_path / "bad.pth")
    assert "\n" not in str(e.value)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(RobustlabError, match="unexpected tensor"):
        load_encoder_weights(Encoder("efficientnet_b0"), tmp_path / "resnet.pth")
    with pytest.raises(RobustlabError, match="does not exist"):
        load_encoder_weights(Encoder("efficientnet_b0"), tmp_path / "missing.pth")


def test_decoder_shapes_and_padding_and_penalty():
    torch.manual_seed(0)
    dec = AttentionDecoder(10, 6, embed_dim=4, dec_dim=8, att_dim=5, attention="dot").eval()
    a = torch.randn(3, 4, 6)
    caps = torch.tensor([[SOS, 5, 6, EOS, PAD], [SOS, 5, 6, 7, EOS], [SOS, EOS, PAD, PAD, PAD]])
    lengths = torch.tensor([4, 5, 2])
    logits, alpha = dec(a, caps, lengths)
    assert logits.shape == (3, 4, 10) and alpha.shape == (3, 4, 4)
    assert torch.all(logits[0, 3] == 0) and torch.all(alpha[2, 1:] == 0)
    torch.testing.assert_close(alpha[0, :3].sum(-1), torch.ones(3))
    # the penalty: mean over images and cells of (1 − attention received)²
    expected = ((1 - alpha.sum(1)) ** 2).mean()
    torch.testing.assert_close(doubly_stochastic_penalty(alpha), expected)
    # row by row equals the batch (length sorting undone correctly)
    single, _ = dec(a[1:2], caps[1:2], lengths[1:2])
    torch.testing.assert_close(single[0], logits[1])


def test_caption_tensors_and_references_never_hold_unk():
    vocab = Vocabulary.build([["a", "red", "circle"], ["a", "red", "square"], ["a", "circle"]], min_count=2)
    assert "square" not in vocab.itos
    ids, lengths = caption_tensor([["a", "red", "square"], ["a"]], vocab, max_length=2)
    assert ids.tolist() == [[SOS, vocab.stoi["a"], vocab.stoi["red"], EOS], [SOS, vocab.stoi["a"], EOS, PAD]]
    assert lengths.tolist() == [4, 3]
    words = ("<pad>", "<sos>", "<eos>", "<unk>", "a", "circle", "red", "square")
    tokens = [[["a", "red", "square"]], [["a", "circle"], ["a"]]]
    refs = reference_tensor(tokens, words, n_refs=2, length=3)
    assert refs.shape == (2, 2, 3)
    assert reference_words(refs, words) == tokens
    assert UNK not in refs.tolist()


def test_rows_pairs_every_reference_and_evaluation_rows_every_image():
    split = CaptionSplit(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), [["x"], ["y", "z"]],
                         [[["a"]], [["a", "b"], ["b"]]], None)
    vocab = Vocabulary.build([["a", "b"]], 1)
    words = ("<pad>", "<sos>", "<eos>", "<unk>", "a", "b")
    train = rows_for(split, split.images, vocab, words, 2, 2, 10, pairs=True)
    test = rows_for(split, split.images, vocab, words, 2, 2, 10, pairs=False)
    assert len(train) == 3 and len(test) == 2
    src, caps, lengths, refs = train.__getitems__([0, 1, 2])
    assert src.shape == (3, 3, 8, 8) and refs.shape == (3, 2, 2)
    assert lengths.tolist() == [3, 4, 3]
    assert isinstance(train, CaptionRows)


def test_eval_forward_decodes_and_free_running_bleu_scores_words():
    model = _captioner(vocab=12)
    task = CaptionTask(alpha_c=1.0, max_length=6, reads_features=False)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    caps = torch.tensor([[SOS, 4, 5, EOS]] * 4)
    lengths = torch.full((4,), 4)
    refs = torch.tensor([[[4, 5, 0], [5, 4, 4]]] * 4)
    inputs, targets = task.unpack((images, caps, lengths, refs), torch.device("cpu"))
    with torch.no_grad():
        out = task.forward(model, inputs, targets)
    assert out.outputs["decoded"].shape == (4, 7)
    d = greedy_decode(model.decoder, model.annotations(inputs[0]), 6)
    itos = tuple(f"w{i}" for i in range(12))
    assert ids_to_words(out.outputs["decoded"], itos) == d.words(itos)
    metric = FreeRunningBleu(itos, itos)
    metric.update(out)
    scores = metric.compute()
    hyps = d.words(itos)
    expected = corpus_bleu([[["w4", "w5"], ["w5", "w4", "w4"]]] * 4, hyps)
    assert scores["bleu4"] == pytest.approx(expected[3]) and scores["bleu1"] == pytest.approx(expected[0])
    sums = {k: float(v) for k, v in task.batch_metrics(out).items()}
    assert sums["count"] == 12  # 3 target tokens (eos included) per caption
    assert task.summarize(sums)["loss"] == pytest.approx(float(out.loss))


def test_training_forward_has_no_decoding_and_cached_grids_match_pixels():
    model = _captioner(reads_features=True)
    task = CaptionTask(alpha_c=0.0, max_length=5, reads_features=True)
    images = torch.rand(2, 3, 32, 32)
    grid = model.encoder(images)
    caps, lengths = torch.tensor([[SOS, 4, EOS]] * 2), torch.tensor([3, 3])
    model.train()
    out = task.forward(model, (grid, caps, lengths), torch.zeros(2, 1, 1, dtype=torch.long))
    assert "decoded" not in out.outputs
    model.eval()
    pixel_model = Captioner(model.encoder, model.decoder, reads_features=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(grid, caps, lengths)[0], pixel_model(images, caps, lengths)[0])


def test_teacher_forcing_schedules():
    assert teacher_forcing_probability("always", 0.7, 3, 0.5, 5) == 1.0
    assert teacher_forcing_probability("linear", 0.0, 0, 0.5, 5) == 1.0
    assert teacher_forcing_probability("linear", 0.5, 0, 0.5, 5) == pytest.approx(0.75)
    assert teacher_forcing_probability("linear", 2.0, 0, 0.5, 5) == pytest.approx(0.5)
    assert teacher_forcing_probability("inverse-sigmoid", 0, 0.0, 0.1, 5) == pytest.approx(5 / 6)
    assert teacher_forcing_probability("inverse-sigmoid", 0, 50.0, 0.1, 5) == pytest.approx(0.1)
    s = ScheduledSampling("linear", 0.5, 5)
    s.setup(num_classes=0, device=torch.device("cpu"), epochs=2, steps_per_epoch=10)
    s.step_count = 10
    assert s.probability() == pytest.approx(0.75)


def test_attacks_stay_in_the_ball_and_move_the_objective():
    model = _captioner()
    x = torch.rand(3, 3, 32, 32)
    caps = torch.tensor([[SOS, 4, 5, 6, EOS]] * 3)
    lengths = torch.full((3,), 5)
    before = [p.clone() for p in model.parameters()]
    objective = CaptionObjective(model, caps, lengths)
    with torch.no_grad():
        clean = objective(x)
    eps = 8 / 255
    for kind in ("fgsm", "pgd"):
        adv = caption_attack(model, x, caps, lengths, eps, kind, steps=5, seed=1)
        assert (adv - x).abs().max() <= eps + 1e-6 and adv.min() >= 0 and adv.max() <= 1
        with torch.no_grad():
            assert torch.all(objective(adv) > clean), kind
    target = caption_attack(model, x, caps, lengths, eps, "pgd", steps=5, targeted=True, seed=1)
    with torch.no_grad():
        assert torch.all(objective(target) < clean)
    torch.testing.assert_close(caption_attack(model, x, caps, lengths, 0.0), x)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert not model.training
    # same seed, same adversarial images
    torch.testing.assert_close(caption_attack(model, x, caps, lengths, eps, "pgd", 3, seed=4),
                               caption_attack(model, x, caps, lengths, eps, "pgd", 3, seed=4))


def test_jensen_shannon_bounds():
    p = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]])
    q = torch.tensor([[[0.0, 1.0], [0.5, 0.5]]])
    mask = torch.tensor([[True, True]])
    assert jensen_shannon(p, p, mask) == pytest.approx(0.0, abs=1e-9)
    assert jensen_shannon(p, q, torch.tensor([[True, False]])) == pytest.approx(0.6931, abs=1e-3)
    assert jensen_shannon(p, q, mask) == pytest.approx(0.6931 / 2, abs=1e-3)
