"""The real MNIST and USPS files of the development data folder (skipped when it is absent)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
import torch

from adaptrack.adapt.data import load_dataset
from adaptrack.adapt.data.download import file_md5
from adaptrack.common.paths import shared_data_dir

SHARED = shared_data_dir()
MNIST_MD5 = {  # of the uncompressed files, from shared/data/README.md (the published values)
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def _need(relative: str) -> Path:
    if SHARED is None:
        pytest.skip("shared data folder ../shared/data not found (no README.md beside the project)")
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"{path} absent from the shared data folder")
    return SHARED


def test_mnist_files_match_published_md5():
    root = _need("mnist")
    for name, md5 in MNIST_MD5.items():
        with gzip.open(root / "mnist" / f"{name}.gz", "rb") as handle:
            assert hashlib.file_digest(handle, "md5").hexdigest() == md5, name


@pytest.mark.parametrize(("split", "count"), [("train", 60000), ("test", 10000)])
def test_mnist_real(split, count):
    data = load_dataset("mnist", split, root=_need("mnist"))
    assert data.images.shape == (count, 1, 28, 28) and data.labels.shape == (count,)
    assert torch.bincount(data.labels, minlength=10).min() > count // 20
    assert data.images.max() == 255 and data.images[:, :, 0].float().mean() < 5  # dark top row


@pytest.mark.parametrize(("split", "count"), [("train", 7291), ("test", 2007)])
def test_usps_real(split, count):
    root = _need("usps/usps.h5")
    assert file_md5(root / "usps" / "usps.h5") == "355df6b942eb766252e0340bc019b0b9"
    data = load_dataset("usps", split, root=root)
    assert data.images.shape == (count, 1, 16, 16) and data.labels.shape == (count,)
    assert set(data.labels.unique().tolist()) == set(range(10))
