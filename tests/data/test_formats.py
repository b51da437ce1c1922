"""Each dataset family loads from tiny files written in its real on-disk format."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from robustlab.core.errors import RobustlabError
from robustlab.data import is_available, load_dataset


def _check_images(ds, shape):
    x, y = ds[0]
    assert x.dtype == torch.float32 and tuple(x.shape) == shape
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert isinstance(y, int)
    assert ds.targets.dtype == torch.int64 and len(ds.targets) == len(ds)


def test_cifar10_pickles(cifar10_root):
    assert is_available("cifar10", cifar10_root)
    train = load_dataset("cifar10", "train", root=cifar10_root)
    test = load_dataset("cifar10", "test", root=cifar10_root)
    assert len(train) == 20 and len(test) == 10
    _check_images(train, (3, 32, 32))
    assert train.targets[:4].tolist() == [2, 3, 4, 5]  # batch 1 labels (2*1+k) % 10
    assert test.targets.tolist() == list(range(10))
    assert train.classes[0] == "airplane" and len(train.classes) == 10
    assert train.coarse_targets is None


def test_cifar10_pixels_match_row_layout(cifar10_root):
    """Rows hold 1024 R, 1024 G, then 1024 B values: pixel (c, h, w) = row[c*1024 + h*32 + w]."""
    folder = cifar10_root / "cifar-10-batches-py"
    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="bytes")[b"data"]
    x, _ = load_dataset("cifar10", "test", root=cifar10_root)[3]
    expected = torch.from_numpy(raw[3].reshape(3, 32, 32)).float() / 255
    assert torch.equal(x, expected)


def test_cifar100_fine_and_coarse(cifar100_root):
    train = load_dataset("cifar100", "train", root=cifar100_root)
    test = load_dataset("cifar-100", "test", root=cifar100_root)  # alias
    assert len(train) == 200 and len(test) == 100
    _check_images(train, (3, 32, 32))
    assert train.targets.bincount().tolist() == [2] * 100
    assert train.coarse_targets is not None and train.coarse_targets.dtype == torch.int64
    assert torch.equal(train.coarse_targets, train.targets % 20)
    assert len(train.coarse_classes) == 20 and train.coarse_classes[0] == "aquatic_mammals"
    assert train.classes[1] == "aquarium_fish" and train.info.num_classes == 100


def _py2_str(text: str) -> bytes:
    raw = text.encode("latin1")
    return b"U" + bytes([len(raw)]) + raw  # SHORT_BINSTRING: a Python 2 str


def py2_cifar_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """The byte stream Python 2's cPickle (protocol 2) wrote for the official batches, built by hand:
    str keys, numpy 1.x global names (numpy.core.multiarray) and the pixels as one binary str."""
    n, width = data.shape
    out = bytearray(b"\x80\x02}(" + _py2_str("data"))
    out += b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _py2_str("b") + b"\x87R"
    out += b"(K\x01J" + struct.pack("<i", n) + b"M" + struct.pack("<H", width) + b"\x86"
    out += b"cnumpy\ndtype\n" + _py2_str("u1") + b"K\x00K\x01\x87R"
    out += b"(K\x03" + _py2_str("|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    raw = data.tobytes()
    out += b"\x89T" + struct.pack("<I", len(raw)) + raw + b"tb"
    out += _py2_str("labels") + b"](" + b"".join(b"K" + bytes([v]) for v in labels) + b"eu."
    return bytes(out)


def test_cifar_reads_python2_pickles(cifar10_root):
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    (cifar10_root / "cifar-10-batches-py" / "test_batch").write_bytes(py2_cifar_batch(data, [4, 0, 9]))
    ds = load_dataset("cifar10", "test", root=cifar10_root)
    assert ds.targets.tolist() == [4, 0, 9]
    assert torch.equal(ds.data, torch.from_numpy(data.reshape(3, 3, 32, 32)))


def test_cifar_refuses_unsafe_pickle(cifar10_root):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(cifar10_root / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump({"data": Evil(), "labels": []}, f)
    with pytest.raises(RobustlabError, match="not a valid CIFAR pickle"):
        load_dataset("cifar10", "test", root=cifar10_root)


def test_svhn_mat(svhn_root):
    assert is_available("svhn", svhn_root)
    train = load_dataset("svhn", "train", root=svhn_root)
    assert len(train) == 12
    _check_images(train, (3, 32, 32))
    # y was 1..10 repeating; 10 means digit 0
    assert train.targets.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    from scipy.io import loadmat

    raw = loadmat(svhn_root / "train_32x32.mat")["X"]
    x, _ = train[5]
    assert torch.equal(x, torch.from_numpy(raw[:, :, :, 5]).permute(2, 0, 1).float() / 255)


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx(tmp_path, write_idx, gz):
    root = tmp_path / "root"
    write_idx(root / "MNIST" / "raw", n_train=20, n_test=10, gz=gz)
    assert is_available("mnist", root)
    train = load_dataset("mnist", "train", root=root)
    test = load_dataset("MNIST", "test", root=root)
    assert (len(train), len(test)) == (20, 10)
    _check_images(train, (1, 28, 28))
    assert train.targets.tolist() == [i % 10 for i in range(20)]


def test_fashion_mnist_from_env_dir(tmp_path, write_idx, monkeypatch):
    system = write_idx(tmp_path / "system-fashion", n_train=30, n_test=10, gz=True)
    monkeypatch.setenv("ROBUSTLAB_FASHION_MNIST_DIR", str(system))
    root = tmp_path / "empty-root"
    assert is_available("fashion-mnist", root)
    train = load_dataset("fashion_mnist", "train", root=root)
    assert len(train) == 30 and train.classes[0] == "T-shirt/top"
    _check_images(train, (1, 28, 28))


def test_fashion_mnist_root_layout_wins_over_system(tmp_path, write_idx, monkeypatch):
    monkeypatch.setenv("ROBUSTLAB_FASHION_MNIST_DIR", str(write_idx(tmp_path / "sys", n_train=30)))
    root = tmp_path / "root"
    write_idx(root / "FashionMNIST" / "raw", n_train=12, gz=False)
    assert len(load_dataset("fashion-mnist", "train", root=root)) == 12
    write_idx(root / "fashion-mnist", n_train=14)
    assert len(load_dataset("fashion-mnist", "train", root=root)) == 12  # torchvision layout first


def test_idx_reader_rejects_garbage(tmp_path, write_idx):
    folder = write_idx(tmp_path / "r" / "MNIST" / "raw", gz=False)
    (folder / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x05")  # truncated
    with pytest.raises(RobustlabError, match="truncated"):
        load_dataset("mnist", "train", root=tmp_path / "r")
    with gzip.open(folder / "t10k-images-idx3-ubyte.gz", "wb") as f:
        f.write(b"not idx at all")
    (folder / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(RobustlabError, match="not an IDX file"):
        load_dataset("mnist", "test", root=tmp_path / "r")


def test_flowers102(flowers_root):
    assert is_available("flowers102", flowers_root)
    train = load_dataset("flowers102", "train", root=flowers_root, image_size=16)
    val = load_dataset("flowers-102", "val", root=flowers_root, image_size=16)
    test = load_dataset("flowers102", "test", root=flowers_root, image_size=(12, 20))
    assert (len(train), len(val), len(test)) == (4, 3, 5)
    _check_images(train, (3, 16, 16))
    assert tuple(test[0][0].shape) == (3, 12, 20) and test.info.image_size == (12, 20)
    assert train.targets.tolist() == [0, 1, 2, 101]  # labels are 1-based on disk
    assert test.targets.tolist() == [7, 8, 9, 49, 0]
    assert train.info.num_classes == 102 and train.classes[0] == "pink primrose"
    xb, yb = train._load_batch([0, 3])
    assert xb.shape == (2, 3, 16, 16) and yb.tolist() == [0, 101]


def test_flowers_default_size(flowers_root):
    ds = load_dataset("flowers102", "val", root=flowers_root)
    assert tuple(ds[0][0].shape) == (3, 224, 224)


def test_imagefolder(imagefolder_root):
    assert is_available("imagefolder", imagefolder_root)
    train = load_dataset("imagefolder", "train", root=imagefolder_root, image_size=24)
    test = load_dataset("imagefolder", "test", root=imagefolder_root, image_size=24)
    assert train.classes == ["cat", "dog"] and train.info.num_classes == 2
    assert len(train) == 6 and train.targets.tolist() == [0, 0, 0, 1, 1, 1]
    assert len(test) == 1 and test.targets.tolist() == [0] and test.classes == ["cat", "dog"]
    for i in range(len(train)):  # grayscale files come out as RGB, every size resized
        x, _ = train[i]
        assert tuple(x.shape) == (3, 24, 24) and 0 <= float(x.min()) <= float(x.max()) <= 1
    x, _ = test[0]
    assert torch.allclose(x, torch.ones_like(x))
    assert train.info.splits == ("train", "test")


def test_imagefolder_needs_root_and_known_classes(imagefolder_root):
    with pytest.raises(RobustlabError, match="needs a root"):
        load_dataset("imagefolder", "train")
    assert not is_available("imagefolder")
    (imagefolder_root / "test" / "bird").mkdir()
    (imagefolder_root / "test" / "bird" / "b.png").write_bytes(b"")
    with pytest.raises(RobustlabError, match="missing from train: bird"):
        load_dataset("imagefolder", "test", root=imagefolder_root)
    with pytest.raises(RobustlabError, match="imagefolder"):
        load_dataset("imagefolder", "val", root=imagefolder_root)


def test_imagefolder_unreadable_image(imagefolder_root):
    (imagefolder_root / "train" / "cat" / "c0.png").write_bytes(b"broken")
    ds = load_dataset("imagefolder", "train", root=imagefolder_root)
    with pytest.raises(RobustlabError, match="cannot read image"):
        ds[0]
