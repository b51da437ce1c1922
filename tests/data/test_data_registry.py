"""Registry: names, infos, availability and the one-line errors for people."""

from __future__ import annotations

from pathlib import Path

import pytest

from robustlab.core.errors import RobustlabError
from robustlab.data import catalog, dataset_info, default_data_root, is_available, list_datasets, load_dataset

EXPECTED = {
    "cifar10",
    "cifar100",
    "svhn",
    "mnist",
    "fashion-mnist",
    "flowers102",
    "digits",
    "imagefolder",
    "font-digits",
}


def test_list_datasets_has_every_family_with_consistent_infos():
    """The built-in image families, exactly; plug-in labs may add datasets of other kinds (whether one
    is registered yet depends on which lab modules this process imported)."""
    infos = [i for i in list_datasets() if i.kind == "image"]
    assert {i.name for i in infos} == EXPECTED
    for info in infos:
        assert len(info.mean) == len(info.std) == info.channels
        assert all(0 < s < 1 for s in info.std) and all(0 <= m <= 1 for m in info.mean)
        assert "train" in info.splits and "test" in info.splits
        if info.class_names is not None:
            assert len(info.class_names) == info.num_classes == len(set(info.class_names))
    assert dataset_info("flowers102").splits == ("train", "val", "test")
    assert dataset_info("CIFAR10").shape == (3, 32, 32)
    assert (dataset_info("svhn").train_size, dataset_info("svhn").test_size) == (73_257, 26_032)


def test_unknown_dataset_lists_choices():
    with pytest.raises(RobustlabError) as err:
        dataset_info("nope")
    msg = str(err.value)
    assert "unknown dataset 'nope'" in msg and "cifar10" in msg and "fashion-mnist" in msg
    with pytest.raises(RobustlabError, match="unknown dataset"):
        load_dataset("imagenet")
    with pytest.raises(RobustlabError, match="unknown dataset"):
        is_available("nope")


def test_unknown_split():
    with pytest.raises(RobustlabError, match="unknown split 'val' for dataset 'cifar10'; choose one of: train, test"):
        load_dataset("cifar10", "val")


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "mnist", "flowers102"])
def test_missing_files_one_line_error(tmp_path, name):
    root = tmp_path / "nothing-here"
    assert not is_available(name, root)
    with pytest.raises(RobustlabError) as err:
        load_dataset(name, "test", root=root)
    msg = str(err.value)
    assert "\n" not in msg
    assert repr(name) in msg and str(root) in msg and "--download" in msg


def test_missing_fashion_mnist_mentions_apt(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTLAB_FASHION_MNIST_DIR", str(tmp_path / "empty"))
    assert not is_available("fashion-mnist", tmp_path)
    with pytest.raises(RobustlabError) as err:
        load_dataset("fashion-mnist", root=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and "'fashion-mnist'" in msg and "apt-get install dataset-fashion-mnist" in msg
    assert str(tmp_path / "empty") in msg


def test_default_root_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTLAB_DATA", str(tmp_path / "d"))
    assert default_data_root() == tmp_path / "d"
    monkeypatch.delenv("ROBUSTLAB_DATA")
    assert default_data_root() == Path.cwd() / "data"


def test_default_root_is_used(cifar10_root, monkeypatch):
    monkeypatch.setenv("ROBUSTLAB_DATA", str(cifar10_root))
    assert is_available("cifar10")
    assert len(load_dataset("cifar10", "test")) == 10


def test_image_size_resizes_fixed_size_datasets(cifar10_root):
    ds = load_dataset("cifar10", "test", root=cifar10_root, image_size=16)
    assert ds.info.image_size == (16, 16) and tuple(ds[0][0].shape) == (3, 16, 16)


def test_transform_is_applied(cifar10_root):
    ds = load_dataset("cifar10", "test", root=cifar10_root, transform=lambda x: x * 0)
    assert float(ds[0][0].abs().sum()) == 0
    assert all(float(x.abs().sum()) == 0 for x, _ in ds.__getitems__([0, 1, 2]))
    assert float(ds.with_transform(None)[0][0].sum()) > 0


def test_catalog_rows(cifar10_root):
    rows = {r["name"]: r for r in catalog(cifar10_root)}
    assert rows["cifar10"]["available"] is True and rows["svhn"]["available"] is False
    assert rows["digits"]["available"] is True and rows["font-digits"]["available"] is True
    assert rows["mnist"]["shape"] == "1x28x28, 10 classes" and rows["cifar100"]["kind"] == "image"


def test_catalog_lists_plug_in_datasets_of_other_kinds():
    """Loading the labs registers their datasets; the catalog gives every kind a row (no image-only field)."""
    from robustlab.labs import LABS

    LABS.names()
    rows = {r["name"]: r for r in catalog()}
    assert rows["bbbp"]["kind"] == "tokens" and "2 classes" in rows["bbbp"]["shape"]
    assert rows["bbbp"]["train"] == 2039 and rows["bbbp"]["available"] is True
    assert [r["name"] for r in catalog()] == sorted(rows)


def test_download_failure_is_one_line(tmp_path, monkeypatch):
    """An offline download attempt ends in one line (torchvision faked: never touch the network)."""
    import sys
    import types

    def offline(*args, **kwargs):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    fake = types.ModuleType("torchvision")
    fake.datasets = types.ModuleType("torchvision.datasets")
    fake.datasets.CIFAR10 = offline
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake.datasets)
    with pytest.raises(RobustlabError) as err:
        load_dataset("cifar10", root=tmp_path, download=True)
    msg = str(err.value)
    assert "could not download dataset 'cifar10'" in msg and "\n" not in msg


@pytest.mark.parametrize("size", [0, -3, (8, 0), (1, 2, 3), 2.5])
def test_bad_image_size(size):
    with pytest.raises(RobustlabError, match="image size"):
        load_dataset("digits", image_size=size)


def test_items_are_fresh_tensors():
    ds = load_dataset("digits", "test")
    x, _ = ds[0]
    x += 1  # callers may modify what they get
    assert float(ds[0][0].max()) <= 1
