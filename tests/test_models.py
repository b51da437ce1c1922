import pytest
import torch
from torchvision.models import resnet18

from robustlab.core.errors import RobustlabError
from robustlab.models import build_model, list_models, load_pretrained


@pytest.mark.parametrize(
    ("name", "kw", "c", "s"),
    [
        ("small_cnn", {}, 1, 28),
        ("small_cnn", {"width": 8}, 1, 8),
        ("resnet18_cifar", {}, 3, 32),
        ("resnet18", {}, 3, 64),
        ("resnet18", {"batchnorm": False, "dropout": 0.5}, 1, 64),
        ("vit", {"variant": "tiny"}, 3, 32),
    ],
)
def test_shapes_and_cam_layers(name, kw, c, s):
    m = build_model(name, 7, in_channels=c, image_size=s, **kw).eval()
    x = torch.rand(2, c, s, s)
    assert m(x).shape == (2, 7)
    assert m.embed(x).shape == (2, m.feature_dim)
    assert len(m.cam_target_layers()) == 1


def test_no_batchnorm_variant_has_no_bn():
    m = build_model("resnet18", 10, batchnorm=False)
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.modules())


def test_normalization_lives_inside():
    m = build_model("small_cnn", 10, in_channels=1, image_size=8, mean=(0.3,), std=(0.2,)).eval()
    x = torch.rand(4, 1, 8, 8)
    inner = m.head(m.backbone((x - 0.3) / 0.2))
    assert torch.allclose(m(x), inner, atol=1e-6)
    assert "normalize.mean" in m.state_dict()


def test_registry_errors():
    with pytest.raises(RobustlabError, match="unknown model 'nope'; choose one of: resnet18"):
        build_model("nope", 10)
    with pytest.raises(RobustlabError, match="unknown option 'widht'"):
        build_model("small_cnn", 10, widht=3)
    with pytest.raises(RobustlabError, match="mean/std"):
        build_model("small_cnn", 10, in_channels=3, mean=(0.5,), std=(0.5,))
    assert {m.name for m in list_models()} == {"small_cnn", "resnet18_cifar", "resnet18", "vit"}


def test_pretrained_torchvision_resnet_file(tmp_path):
    """Real loading code, fed a torchvision-format state dict the test saves (no download)."""
    tv = resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "resnet18.pth")
    m = build_model("resnet18", 5, pretrained=tmp_path / "resnet18.pth")
    assert torch.equal(m.backbone.conv1.weight, tv.conv1.weight)
    assert m.head.out_features == 5


def test_pretrained_timm_vit_file(tmp_path):
    from safetensors.torch import save_file
    from timm.models.vision_transformer import VisionTransformer

    upstream = VisionTransformer(img_size=32, patch_size=4, embed_dim=192, depth=6, num_heads=3, num_classes=1000)
    save_file({k: v.contiguous() for k, v in upstream.state_dict().items()}, str(tmp_path / "vit.safetensors"))
    m = build_model("vit", 10, image_size=32, patch_size=4, pretrained=tmp_path / "vit.safetensors")
    assert torch.equal(m.backbone.patch_embed.proj.weight, upstream.patch_embed.proj.weight)


def test_pretrained_mismatch_is_one_line(tmp_path):
    tv = resnet18(weights=None)
    torch.save(tv.state_dict(), tmp_path / "r.pth")
    with pytest.raises(RobustlabError, match="conv1.weight has shape"):
        load_pretrained(build_model("resnet18_cifar", 10), tmp_path / "r.pth")
    small = build_model("small_cnn", 10, in_channels=1, image_size=8)
    torch.save(small.state_dict(), tmp_path / "small.pt")
    with pytest.raises(RobustlabError, match="pretrained weights"):
        load_pretrained(build_model("resnet18", 10), tmp_path / "small.pt")
