"""Custom image folders: labeled, unlabeled, bad input, sizes, channels and class matching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from adaptrack.adapt.data.base import ImageSet
from adaptrack.adapt.data.folders import (
    check_same_classes,
    load_labeled_folder,
    load_unlabeled_folder,
    match_classes,
)
from adaptrack.common.errors import DataError


def _labeled(root, write_png, classes=("cat", "ant", "bee"), per_class=2, size=(10, 8), mode="L"):
    for c, name in enumerate(classes):
        for i in range(per_class):
            write_png(root / name / f"{i}.png", size=size, mode=mode, seed=10 * c + i)
    return root


def test_labeled_folder_sorted_classes(tmp_path, write_png):
    root = _labeled(tmp_path / "src", write_png)
    (root / "ant" / "notes.txt").write_text("not an image")
    (root / "ant" / ".hidden.png").write_bytes(b"ignored")
    data = load_labeled_folder(root)
    assert data.classes == ["ant", "bee", "cat"]
    assert data.images.shape == (6, 1, 8, 10) and data.images.dtype == torch.uint8
    assert data.labels.tolist() == [0, 0, 1, 1, 2, 2]
    expected = np.asarray(Image.open(root / "bee" / "1.png"))
    assert np.array_equal(data.images[3, 0].numpy(), expected)
    assert data.files[3].endswith("bee/1.png")


def test_channels_and_formats(tmp_path, write_png):
    root = tmp_path / "mixed"
    write_png(root / "a" / "x.jpg", mode="RGB")
    write_png(root / "a" / "y.bmp", mode="L")
    write_png(root / "b" / "z.jpeg", mode="RGB")
    assert load_labeled_folder(root).images.shape == (3, 3, 8, 10)  # one colour file: RGB
    gray = load_labeled_folder(root, channels=1)
    assert gray.images.shape == (3, 1, 8, 10)
    gray_only = load_unlabeled_folder(_labeled(tmp_path / "g", write_png) / "ant", channels=3)
    assert gray_only.images.shape == (2, 3, 8, 10)
    assert torch.equal(gray_only.images[:, 0], gray_only.images[:, 2])


def test_other_size_needs_size_option_then_resizes(tmp_path, write_png):
    root = _labeled(tmp_path / "s", write_png, classes=("a", "b"))
    odd = write_png(root / "b" / "odd.png", size=(13, 7))
    with pytest.raises(DataError, match=r"7x13 .* set the size option") as info:
        load_labeled_folder(root)
    assert info.value.path == odd
    data = load_labeled_folder(root, size=(16, 12))
    assert data.images.shape == (5, 1, 16, 12)


def test_corrupt_image_names_file_or_is_skipped_with_count(tmp_path, write_png):
    root = _labeled(tmp_path / "c", write_png, classes=("a", "b"))
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    truncated = root / "b" / "cut.jpg"
    write_png(truncated, size=(64, 64), mode="RGB")
    truncated.write_bytes(truncated.read_bytes()[:300])
    with pytest.raises(DataError, match="image file is unreadable") as info:
        load_labeled_folder(root)
    assert info.value.path == root / "a" / "broken.png"
    with pytest.warns(UserWarning, match="skipped 2 unreadable image"):
        data = load_labeled_folder(root, skip_bad=True)
    assert len(data) == 4 and data.labels.tolist() == [0, 0, 1, 1]
    assert not any("broken" in f or "cut" in f for f in data.files)


def test_all_images_bad_is_an_error_even_when_skipping(tmp_path):
    root = tmp_path / "bad"
    root.mkdir()
    (root / "a.png").write_bytes(b"nope")
    with pytest.warns(UserWarning, match="skipped 1"), pytest.raises(DataError, match="no readable image"):
        load_unlabeled_folder(root, skip_bad=True)


def test_empty_folders(tmp_path, write_png):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images") as info:
        load_unlabeled_folder(empty)
    assert info.value.path == empty
    with pytest.raises(DataError, match="no class sub-folders"):
        load_labeled_folder(empty)
    (empty / "a").mkdir()
    with pytest.raises(DataError, match=r"class folder 'a' holds no images") as info:
        load_labeled_folder(empty)
    assert info.value.path == empty / "a"
    with pytest.raises(DataError, match="load it as a labeled folder"):
        load_unlabeled_folder(empty)
    with pytest.raises(DataError, match="folder not found"):
        load_unlabeled_folder(tmp_path / "absent")
    flat = tmp_path / "flat"
    write_png(flat / "1.png")
    with pytest.raises(DataError, match="load it as an unlabeled folder"):
        load_labeled_folder(flat)


def test_unlabeled_flat_folder(tmp_path, write_png):
    for i in range(3):
        write_png(tmp_path / "t" / f"{i}.png", mode="RGB", seed=i)
    data = load_unlabeled_folder(tmp_path / "t")
    assert data.labels is None and data.classes == [] and data.images.shape == (3, 3, 8, 10)


def _set(classes: list[str], labels: list[int] | None, name: str) -> ImageSet:
    n = 3 if labels is None else len(labels)
    tensor = None if labels is None else torch.tensor(labels)
    return ImageSet(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), tensor, classes, name)


def test_check_same_classes_lists_both():
    a = _set(["cat", "dog"], [0, 1], "source")
    check_same_classes(a, _set(["cat", "dog"], [1], "other"))
    with pytest.raises(DataError) as info:
        check_same_classes(a, _set(["cat", "cow"], [0], "target"))
    message = str(info.value)
    assert "['cat', 'dog']" in message and "['cat', 'cow']" in message
    assert "only in source: ['dog']" in message and "only in target: ['cow']" in message
    with pytest.raises(DataError, match="different order"):
        check_same_classes(a, _set(["dog", "cat"], [0], "swapped"))


def test_match_classes_by_name():
    source = _set(["ant", "bee", "cat"], [0, 1, 2], "source")
    target = match_classes(source, _set(["bee", "cat"], [0, 1, 1], "target"))
    assert target.classes == ["ant", "bee", "cat"] and target.labels.tolist() == [1, 2, 2]
    unlabeled = match_classes(source, _set([], None, "unlabeled"))
    assert unlabeled.labels is None and unlabeled.classes == source.classes
    with pytest.raises(DataError, match=r"\['dog'\].*\['ant', 'bee', 'cat'\].*\['bee', 'dog'\]"):
        match_classes(source, _set(["bee", "dog"], [0], "target"))
