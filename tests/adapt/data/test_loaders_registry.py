"""The named data set registry and its factory."""

from __future__ import annotations

import pytest
import torch

from adaptrack.adapt.data import list_datasets, load_dataset
from adaptrack.adapt.data.registry import DATASETS, dataset_dir
from adaptrack.common.errors import DataError, MissingDataError

NAMES = ["synthetic_digits", "sklearn_digits", "mnist", "usps", "svhn", "mnistm", "folder", "office31", "office_home",
         "visda2017"]


def test_list_and_unknown_name():
    assert list_datasets() == NAMES
    with pytest.raises(ValueError, match="unknown data set 'cifar'") as info:
        load_dataset("cifar", "train")
    for name in NAMES:
        assert name in str(info.value)


def test_bad_split_and_option_values():
    with pytest.raises(ValueError, match="split"):
        load_dataset("sklearn_digits", "val")
    with pytest.raises(ValueError, match="needs directory"):
        load_dataset("folder", "train")
    with pytest.raises(ValueError, match="channels must be 1 or 3"):
        load_dataset("synthetic_digits", "train", synthetic_size=10, channels=2)
    with pytest.raises(ValueError, match="image_size"):
        load_dataset("synthetic_digits", "train", synthetic_size=10, image_size=(0, 28))


def test_root_from_environment_and_directory_override(tmp_path, monkeypatch, write_mnist):
    monkeypatch.setenv("ADAPTRACK_DATA", str(tmp_path))
    assert dataset_dir("mnist") == tmp_path / "mnist"
    images, _ = write_mnist(tmp_path / "mnist", "test", n=7)
    data = load_dataset("mnist", "test", image_size=32, channels=3, seed=5)  # options it does not use
    assert data.images.shape == (7, 1, 28, 28)
    assert torch.equal(data.images[:, 0], torch.from_numpy(images))
    explicit = tmp_path / "elsewhere"
    with pytest.raises(MissingDataError, match=str(explicit / "mnist")):
        load_dataset("mnist", "test", root=explicit)
    write_mnist(tmp_path / "own", "test", n=3)
    assert len(load_dataset("mnist", "test", root=explicit, directory=tmp_path / "own")) == 3


def test_folder_splits_and_auto_labeled(tmp_path, write_png):
    for i in range(4):
        write_png(tmp_path / "f" / "train" / ("b" if i % 2 else "a") / f"{i}.png", size=(9, 9), mode="RGB",
                  seed=i)
        write_png(tmp_path / "f" / "test" / f"{i}.png", size=(9, 9), seed=i)
    train = load_dataset("folder", "train", directory=tmp_path / "f", image_size=14, channels=1)
    assert train.images.shape == (4, 1, 14, 14) and train.classes == ["a", "b"]
    assert train.labels.tolist() == [0, 0, 1, 1]
    test = load_dataset("folder", "test", directory=tmp_path / "f")  # flat: unlabeled, gray
    assert test.labels is None and test.images.shape == (4, 1, 9, 9)
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset("folder", "test", directory=tmp_path / "f", labeled=True)
    flat = load_dataset("folder", "train", directory=tmp_path / "f" / "train" / "a", labeled=False)
    assert flat.labels is None and len(flat) == 2


def test_embedded_sets_need_no_files(tmp_path):
    synthetic = load_dataset("synthetic_digits", "train", root=tmp_path, synthetic_size=20,
                             image_size=(32, 32), channels=3, seed=1)
    assert synthetic.images.shape == (20, 3, 32, 32)
    digits = load_dataset("sklearn_digits", "test", root=tmp_path, seed=7)  # split fixed whatever the seed
    assert torch.equal(digits.images, load_dataset("sklearn_digits", "test").images)
    assert list(tmp_path.iterdir()) == []
    assert DATASETS["synthetic_digits"].options == {"synthetic_size", "seed", "image_size", "channels"}
