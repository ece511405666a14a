"""The data module: paired batches, resizing, class matching and bad-input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adaptrack.adapt.batch import AdaptBatch
from adaptrack.adapt.data.balance import oversample, rotate_uint8
from adaptrack.adapt.data.datamodule import DomainAdaptationDataModule, LabeledTargetConfig, OversampleConfig
from adaptrack.adapt.data.filters import NoiseFilter, noise_sigma
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
    strong = batch.strong_target()  # made on first read
    assert batch.source.shape == batch.target.shape == strong.shape == (8, 1, 28, 28)
    assert batch.source.dtype == torch.float32
    assert batch.source.min() >= -1.5 and batch.source.max() <= 1.5
    assert not torch.equal(batch.target, strong)  # two views
    assert batch.target_report_labels.shape == (8,)
    assert batch.target_index.shape == (8,) and batch.labeled.shape == (0, 1, 28, 28)
    assert dm.num_classes == 10 and dm.class_names == [str(i) for i in range(10)]


def test_epoch_order_is_deterministic_by_seed() -> None:
    def first_labels(seed: int) -> torch.Tensor:
        dm = DomainAdaptationDataModule(synthetic_size=64, batch_size=8, steps_per_epoch=2, seed=seed)
        return next(iter(dm.train_dataloader())).source_labels

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


def test_doa_equalises_source_classes_and_padder_matches_the_source_total(tmp_path: Path) -> None:
    """S40: every source class at the largest class's count; S41: labeled target equal per class, same total."""
    for cls, n in (("a", 5), ("b", 2), ("c", 1)):
        make_labeled(tmp_path / "src" / "train", [cls], per_class=n)
    make_labeled(tmp_path / "src" / "test", ["a", "b", "c"], per_class=1)
    for i in range(6):
        write_image(tmp_path / "tgt" / "train" / f"t{i}.png", 20, 50 + i)
    make_labeled(tmp_path / "lab", ["a", "b", "c"], per_class=1)
    dm = folder_dm(tmp_path, labeled_target=LabeledTargetConfig(directory=str(tmp_path / "lab")),
                   oversample=OversampleConfig(source=True, labeled_target=True, max_angle=20.0))
    dm.setup("fit")
    sets = dm.training_sets()
    assert torch.bincount(sets["source"].labels).tolist() == [5, 5, 5]
    assert torch.bincount(sets["labeled_target"].labels).tolist() == [5, 5, 5]
    assert len(sets["labeled_target"]) == len(sets["source"])
    assert dm.preparation["source"] == {"loaded": [5, 2, 1], "after_doa": [5, 5, 5]}
    assert dm.preparation["labeled_target"] == {"drawn": [1, 1, 1], "after_padder": [5, 5, 5]}
    originals = dm.image_set("source", "train").images
    assert torch.equal(sets["source"].images[:len(originals)], originals)  # originals kept, copies appended
    assert len(dm.unlabeled_target()) == 6  # a labeled folder does not touch the pool


def test_padder_alone_makes_the_labeled_total_equal_to_the_source_total() -> None:
    dm = DomainAdaptationDataModule(synthetic_size=103, labeled_target=LabeledTargetConfig(per_class=1),
                                    oversample=OversampleConfig(labeled_target=True))
    dm.setup("fit")
    labeled = dm.training_sets()["labeled_target"]
    counts = torch.bincount(labeled.labels, minlength=10)
    assert len(labeled) == len(dm.training_sets()["source"]) == 103
    assert int(counts.max() - counts.min()) <= 1


def test_rotation_oversampling_rotates() -> None:
    images = torch.zeros(1, 1, 9, 9, dtype=torch.uint8)
    images[0, 0, 4, :] = 255  # a horizontal bar
    rotated = rotate_uint8(images, torch.tensor([90.0]))
    assert rotated[0, 0, :, 4].float().mean() > 200 and rotated[0, 0, 4, 0] < 50  # now vertical
    out, labels = oversample(images, torch.tensor([0]), [4], max_angle=30.0, seed=0)
    assert out.shape == (4, 1, 9, 9) and labels.tolist() == [0, 0, 0, 0]


def test_noise_filter_removes_noisy_images_from_every_training_set_and_counts_them() -> None:
    clean = DomainAdaptationDataModule(synthetic_size=64, labeled_target=LabeledTargetConfig(per_class=2))
    clean.setup("fit")
    noisy_target = clean.image_set("target", "train")
    g = torch.Generator().manual_seed(0)
    picked = torch.arange(0, 40, 4)  # 10 target images made noisy
    noise = torch.randn(len(picked), *noisy_target.images.shape[1:], generator=g) * 0.15 * 255
    noisy_target.images[picked] = (noisy_target.images[picked].float() + noise).clamp(0, 255).to(torch.uint8)
    dm = DomainAdaptationDataModule(synthetic_size=64, labeled_target=LabeledTargetConfig(per_class=2),
                                    image_filter=NoiseFilter(max_sigma=0.05, sets=["target", "labeled_target"]))
    dm._sets = dict(clean._sets)  # same loaded splits, with the noisy target images
    dm.setup("fit")
    labeled_drawn = dm.training_sets()["labeled_target"]
    pool_size = len(noisy_target) - 20
    removed = dm.preparation["target"]["removed_by_filter"]
    removed_labeled = dm.preparation["labeled_target"]["removed_by_filter"]
    assert removed + removed_labeled == 10
    assert len(dm.unlabeled_target()) == pool_size - removed
    assert len(labeled_drawn) == 20 - removed_labeled
    assert "removed_by_filter" not in dm.preparation["source"]  # not among the filter's sets
    assert float(noise_sigma(dm.unlabeled_target().images).max()) <= 0.05


def test_synthetic_digits_rendered_once_per_process_are_handed_out_as_copies() -> None:
    from adaptrack.adapt.data.synthetic import load_synthetic_digits, render_digits

    first = load_synthetic_digits("train", n=24, seed=3, size=(16, 16))
    first.images.zero_()  # a user of one set cannot change the next one's images
    second = load_synthetic_digits("train", n=24, seed=3, size=(16, 16))
    images, labels = render_digits(24, seed=6, size=(16, 16))
    assert torch.equal(second.images, images) and torch.equal(second.labels, labels)
