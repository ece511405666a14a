"""The data module: paired batches, resizing, class matching and bad-input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adaptrack.adapt.batch import AdaptBatch
from adaptrack.adapt.data.datamodule import DomainAdaptationDataModule
from adaptrack.common.errors import DataError


def write_image(path: Path, size: int, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(path)


def make_labeled(root: Path, classes: list[str], per_class: int = 3, size: int = 20) -> Path:
    for c in classes:
        for i in range(per_class):
            write_image(root / c / f"{i}.png", size, hash((c, i)) % 1000)
    return root


def folder_dm(tmp_path: Path, **kwargs: object) -> DomainAdaptationDataModule:
    return DomainAdaptationDataModule(source="folder", target="folder", source_dir=str(tmp_path / "src"),
                                      target_dir=str(tmp_path / "tgt"), batch_size=4, eval_batch_size=8,
                                      **kwargs)  # type: ignore[arg-type]


def test_paired_batches_are_augmented_and_normalized() -> None:
    dm = DomainAdaptationDataModule(synthetic_size=64, batch_size=8, steps_per_epoch=3)
    dm.setup("fit")
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    batch = dm.on_after_batch_transfer(batches[0], 0)
    assert isinstance(batch, AdaptBatch)
    assert batch.source.shape == batch.target.shape == batch.target_strong.shape == (8, 1, 28, 28)
    assert batch.source.dtype == torch.float32
    assert batch.source.min() >= -1.5 and batch.source.max() <= 1.5
    assert not torch.equal(batch.target, batch.target_strong)  # two views
    assert batch.target_report_labels.shape == (8,)
    assert dm.num_classes == 10 and dm.class_names == [str(i) for i in range(10)]


def test_epoch_order_is_deterministic_by_seed() -> None:
    def first_labels(seed: int) -> torch.Tensor:
        dm = DomainAdaptationDataModule(synthetic_size=64, batch_size=8, steps_per_epoch=2, seed=seed)
        return next(iter(dm.train_dataloader()))[1]

    assert torch.equal(first_labels(3), first_labels(3))
    assert not torch.equal(first_labels(3), first_labels(4))


def test_folders_resized_and_classes_matched_by_name(tmp_path: Path) -> None:
    make_labeled(tmp_path / "src" / "train", ["cat", "dog"], size=20)
    make_labeled(tmp_path / "src" / "test", ["cat", "dog"], size=20)
    for i in range(5):  # unlabeled target of another size
        write_image(tmp_path / "tgt" / "train" / f"t{i}.jpg", 40, i)
    make_labeled(tmp_path / "tgt" / "test", ["dog"], size=33)  # subset of classes
    dm = folder_dm(tmp_path, image_size=16)
    dm.setup("fit")
    target_test = dm.image_set("target", "test")
    assert target_test.images.shape[1:] == (1, 16, 16)
    assert target_test.classes == ["cat", "dog"]
    assert target_test.labels.tolist() == [1, 1, 1]  # "dog" re-indexed into the source classes
    assert dm.image_set("target", "train").labels is None


def test_class_names_differ_between_labeled_sets(tmp_path: Path) -> None:
    make_labeled(tmp_path / "src" / "train", ["cat", "dog"])
    make_labeled(tmp_path / "src" / "test", ["cat", "dog"])
    make_labeled(tmp_path / "tgt" / "train", ["cat", "horse"])
    make_labeled(tmp_path / "tgt" / "test", ["cat", "horse"])
    with pytest.raises(DataError, match=r"horse.*\['cat', 'dog'\]|\['cat', 'dog'\].*horse"):
        folder_dm(tmp_path).setup("fit")


def test_source_splits_must_share_classes(tmp_path: Path) -> None:
    make_labeled(tmp_path / "src" / "train", ["cat", "dog"])
    make_labeled(tmp_path / "src" / "test", ["cat", "fox"])
    write_image(tmp_path / "tgt" / "train" / "t.png", 20, 0)
    with pytest.raises(DataError, match="class names differ"):
        folder_dm(tmp_path).setup("fit")


def test_empty_target_is_an_error(tmp_path: Path) -> None:
    make_labeled(tmp_path / "src" / "train", ["cat", "dog"])
    make_labeled(tmp_path / "src" / "test", ["cat", "dog"])
    (tmp_path / "tgt" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="tgt"):
        folder_dm(tmp_path).setup("fit")


def test_corrupt_target_image_named_or_skipped(tmp_path: Path) -> None:
    make_labeled(tmp_path / "src" / "train", ["cat", "dog"])
    make_labeled(tmp_path / "src" / "test", ["cat", "dog"])
    for i in range(3):
        write_image(tmp_path / "tgt" / "train" / f"t{i}.png", 20, i)
    (tmp_path / "tgt" / "train" / "broken.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(DataError, match=r"broken\.png"):
        folder_dm(tmp_path).setup("fit")
    with pytest.warns(UserWarning, match="skipped 1"):
        dm = folder_dm(tmp_path, skip_bad=True)
        dm.setup("fit")
    assert len(dm.image_set("target", "train")) == 3
