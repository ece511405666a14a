"""Loaders of the original digit formats, on small files written here in each format."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from adaptrack.adapt.data.formats import (
    load_mnist,
    load_mnistm,
    load_sklearn_digits,
    load_svhn,
    load_usps,
    read_idx,
    read_usps_h5,
    read_usps_libsvm,
)
from adaptrack.common.errors import DataError, MissingDataError

# --- MNIST idx -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
def test_mnist_idx_gz_and_raw(tmp_path, write_mnist, gz):
    images, labels = write_mnist(tmp_path, "test", n=12, gz=gz)
    data = load_mnist(tmp_path, "test")
    assert data.images.shape == (12, 1, 28, 28) and data.images.dtype == torch.uint8
    assert torch.equal(data.images[:, 0], torch.from_numpy(images))
    assert data.labels.tolist() == labels.tolist() and data.labels.dtype == torch.int64
    assert data.classes == [str(d) for d in range(10)] and data.name == "mnist/test"


def test_read_idx_other_types_roundtrip(tmp_path, write_idx):
    ints = np.arange(-6, 6, dtype=">i4").reshape(3, 4)
    floats = np.linspace(0, 1, 10, dtype=">f4").reshape(2, 5)
    assert np.array_equal(read_idx(write_idx(tmp_path / "i.idx", ints)), ints)
    out = read_idx(write_idx(tmp_path / "f.idx.gz", floats))
    assert out.dtype == np.float32 and np.array_equal(out, floats)


def test_truncated_idx_names_file(tmp_path, write_mnist):
    write_mnist(tmp_path, "train", gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated") as info:
        load_mnist(tmp_path, "train")
    assert "train-images-idx3-ubyte" in str(info.value) and info.value.path == path


def test_truncated_gzip_names_file(tmp_path, write_mnist):
    write_mnist(tmp_path, "train", gz=True, n=50)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="gzip") as info:
        load_mnist(tmp_path, "train")
    assert str(path) in str(info.value)


def test_bad_magic_and_trailing_bytes(tmp_path):
    bad = tmp_path / "bad-idx3-ubyte"
    bad.write_bytes(b"PK\x03\x04" + bytes(20))
    with pytest.raises(DataError, match="not an idx file"):
        read_idx(bad)
    extra = tmp_path / "extra-idx1-ubyte"
    extra.write_bytes(bytes([0, 0, 8, 1]) + np.array([3], ">u4").tobytes() + bytes(5))
    with pytest.raises(DataError, match="trailing bytes"):
        read_idx(extra)


def test_mnist_count_mismatch_and_bad_labels(tmp_path, write_idx, write_mnist):
    write_mnist(tmp_path, "train", n=12)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(DataError, match=r"12 images .* but 11 labels"):
        load_mnist(tmp_path, "train")
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(12, 11, np.uint8))
    with pytest.raises(DataError, match="digits 0-9"):
        load_mnist(tmp_path, "train")


def test_mnist_missing_file(tmp_path):
    with pytest.raises(MissingDataError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path, "train")


# --- USPS ------------------------------------------------------------------------------------------------

def _write_usps_h5(path: Path, n_train: int = 7, n_test: int = 3) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    content = {}
    with h5py.File(path, "w") as handle:
        for split, n in (("train", n_train), ("test", n_test)):
            data = rng.random((n, 256), dtype=np.float32)
            target = (np.arange(n) % 10).astype(np.int32)
            handle.create_dataset(f"{split}/data", data=data)
            handle.create_dataset(f"{split}/target", data=target)
            content[split] = (data, target)
    return content


def test_usps_h5(tmp_path):
    content = _write_usps_h5(tmp_path / "usps.h5")
    for split in ("train", "test"):
        data = load_usps(tmp_path, split)
        pixels, target = content[split]
        assert data.images.shape == (len(target), 1, 16, 16)
        expected = np.rint(pixels.reshape(-1, 1, 16, 16) * 255).astype(np.uint8)
        assert np.array_equal(data.images.numpy(), expected)
        assert data.labels.tolist() == target.tolist()


def test_usps_h5_missing_group_and_not_hdf5(tmp_path):
    path = tmp_path / "usps.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("train/data", data=np.zeros((2, 256), np.float32))
    with pytest.raises(DataError, match="'test/data' and 'test/target'") as info:
        read_usps_h5(path, "test")
    assert info.value.path == path
    path.write_bytes(b"definitely not hdf5")
    with pytest.raises(DataError, match="HDF5") as info:
        read_usps_h5(path, "train")
    assert "usps.h5" in str(info.value)


def test_usps_libsvm_bz2(tmp_path, write_usps_libsvm):
    pixels = np.full((3, 256), -1.0)
    pixels[0, 0], pixels[1, 255], pixels[2, 17] = 1.0, 0.0, 0.5
    write_usps_libsvm(tmp_path / "usps.t.bz2", np.array([1, 10, 4]), pixels)
    data = load_usps(tmp_path, "test")  # no usps.h5: falls back to libsvm
    assert data.images.shape == (3, 1, 16, 16) and data.labels.tolist() == [0, 9, 3]
    flat = data.images.reshape(3, 256)
    assert flat[0, 0] == 255 and flat[1, 255] == 128 and flat[2, 17] == 191
    assert flat[0, 1] == 0 and flat[1, 0] == 0


def test_usps_libsvm_bad_label_and_corrupt_bz2(tmp_path, write_usps_libsvm):
    path = write_usps_libsvm(tmp_path / "usps.bz2", np.array([0, 3]), np.zeros((2, 256)))
    with pytest.raises(DataError, match=r"1\.\.10"):
        read_usps_libsvm(path, "train")
    path.write_bytes(bz2.compress(b"1 1:0.5 2:0.1\n")[:20])
    with pytest.raises(DataError, match="LIBSVM") as info:
        read_usps_libsvm(path, "train")
    assert "usps.bz2" in str(info.value)


# --- SVHN ------------------------------------------------------------------------------------------------

def test_svhn_mat(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, (32, 32, 3, 5), dtype=np.uint8)
    y = np.array([[10], [1], [5], [10], [9]], dtype=np.uint8)
    scipy.io.savemat(tmp_path / "train_32x32.mat", {"X": x, "y": y})
    data = load_svhn(tmp_path, "train")
    assert data.images.shape == (5, 3, 32, 32) and data.labels.tolist() == [0, 1, 5, 0, 9]
    assert data.images[3, 2, 7, 11] == x[7, 11, 2, 3]  # X[row, col, channel, index]


def test_svhn_corrupt_and_wrong_content(tmp_path):
    path = tmp_path / "test_32x32.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(40))
    with pytest.raises(DataError) as info:
        load_svhn(tmp_path, "test")
    assert info.value.path == path
    scipy.io.savemat(path, {"X": np.zeros((28, 28, 3, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(DataError, match="32 x 32 x 3 x N"):
        load_svhn(tmp_path, "test")
    with pytest.raises(MissingDataError, match=r"train_32x32\.mat"):
        load_svhn(tmp_path, "train")


# --- MNIST-M ---------------------------------------------------------------------------------------------

def _write_mnistm(base: Path, split: str, labels: list[int], size: int = 28) -> list[np.ndarray]:
    folder = base / f"mnist_m_{split}"
    folder.mkdir(parents=True)
    arrays, lines = [], []
    for i, label in enumerate(labels):
        array = np.random.default_rng(i).integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(array).save(folder / f"{i:08d}.png")
        arrays.append(array)
        lines.append(f"{i:08d}.png {label}")
    (base / f"mnist_m_{split}_labels.txt").write_text("\n".join(lines) + "\n")
    return arrays


def test_mnistm_as_released(tmp_path):
    arrays = _write_mnistm(tmp_path / "mnist_m", "train", [3, 1, 4])
    data = load_mnistm(tmp_path, "train")
    assert data.images.shape == (3, 3, 28, 28) and data.labels.tolist() == [3, 1, 4]
    assert np.array_equal(data.images[2].permute(1, 2, 0).numpy(), arrays[2])
    assert data.files[0].endswith("mnist_m_train/00000000.png")


def test_mnistm_unpacked_flat_32px(tmp_path):
    _write_mnistm(tmp_path, "test", [0, 9], size=32)
    assert load_mnistm(tmp_path, "test").images.shape == (2, 3, 32, 32)


def test_mnistm_bad_label_line_and_missing_image(tmp_path):
    _write_mnistm(tmp_path, "train", [1, 2])
    labels = tmp_path / "mnist_m_train_labels.txt"
    labels.write_text("00000000.png 1\n00000001.png seven\n")
    with pytest.raises(DataError, match="line 2") as info:
        load_mnistm(tmp_path, "train")
    assert info.value.path == labels
    labels.write_text("00000000.png 1\n00000005.png 2\n")
    with pytest.raises(DataError, match=r"00000005\.png"):
        load_mnistm(tmp_path, "train")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        data = load_mnistm(tmp_path, "train", skip_bad=True)
    assert len(data) == 1 and data.labels.tolist() == [1]


# --- scikit-learn digits ---------------------------------------------------------------------------------

def test_sklearn_digits_split_is_a_stratified_partition():
    from sklearn.datasets import load_digits

    train, test = load_sklearn_digits("train"), load_sklearn_digits("test")
    assert train.images.shape == (1198, 1, 8, 8) and test.images.shape == (599, 1, 8, 8)
    assert train.images.max() == 255 and train.images.dtype == torch.uint8
    everything = np.rint(load_digits().images * 255 / 16).astype(np.uint8).reshape(-1, 64)
    joined = torch.cat([train.images, test.images]).reshape(-1, 64).numpy()
    assert sorted(map(bytes, joined)) == sorted(map(bytes, everything))  # union = all, no overlap
    share = torch.bincount(test.labels, minlength=10) / torch.bincount(
        torch.cat([train.labels, test.labels]), minlength=10)
    assert torch.all((share - 1 / 3).abs() < 0.02)
    assert torch.equal(load_sklearn_digits("test").images, test.images)
    assert not torch.equal(load_sklearn_digits("test", seed=1).labels, test.labels)


def test_gzip_helper_is_detected_by_content(tmp_path, write_idx):
    # a gzip-compressed idx file without the .gz suffix still reads
    array = np.arange(6, dtype=np.uint8).reshape(2, 3)
    path = write_idx(tmp_path / "plain-idx2-ubyte", array)
    path.write_bytes(gzip.compress(path.read_bytes()))
    assert np.array_equal(read_idx(path), array)
