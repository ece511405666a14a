"""The embedded synthetic printed-digit source domain."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from adaptrack.adapt.data.synthetic import (
    BACKGROUND_IMAGES,
    FONT_FILES,
    SyntheticStyle,
    background_bank,
    glyph_bank,
    load_synthetic_digits,
    render_digits,
    save_grid,
)


def test_deterministic_by_seed():
    a_images, a_labels = render_digits(300, seed=3)
    b_images, b_labels = render_digits(300, seed=3)
    c_images, _ = render_digits(300, seed=4)
    assert torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)
    assert not torch.equal(a_images, c_images)


def test_balanced_labels_shapes_and_dtypes():
    images, labels = render_digits(1003, seed=0, chunk=256)
    assert images.shape == (1003, 1, 28, 28) and images.dtype == torch.uint8
    counts = torch.bincount(labels, minlength=10)
    assert labels.dtype == torch.int64 and counts.max() - counts.min() <= 1 and counts.sum() == 1003
    colour, _ = render_digits(40, seed=0, size=(32, 32), channels=3)
    assert colour.shape == (40, 3, 32, 32)
    assert (colour[:, 0] != colour[:, 1]).any()  # tinted, not gray copies


def test_digits_stand_out_from_background():
    images, _ = render_digits(200, seed=1, style=SyntheticStyle(noise=0.0))
    flat = images.reshape(200, -1).float()
    spread = flat.quantile(0.98, dim=1) - flat.quantile(0.5, dim=1)  # ink vs typical background
    assert spread.median() > 60


def test_glyph_bank_distinct_digits_and_backgrounds():
    masks, boxes = glyph_bank()
    assert masks.shape == (len(FONT_FILES) * 3, 10, 64, 64)
    assert (boxes[..., 2:] > 4).all()  # every glyph has ink
    for g in range(masks.shape[0]):
        flat = masks[g].reshape(10, -1)
        assert len({tuple(row.nonzero().flatten().tolist()) for row in flat}) == 10
    bank, sizes = background_bank(28, 1)
    assert bank.shape[0] == 3 * len(BACKGROUND_IMAGES) and (sizes >= 28).all()


def test_splits_differ_and_registry_defaults():
    train = load_synthetic_digits("train", n=50)
    test = load_synthetic_digits("test", n=50)
    assert train.name == "synthetic_digits/train" and train.classes == [str(d) for d in range(10)]
    assert not torch.equal(train.images, test.images)
    assert len(load_synthetic_digits("test", n=None, size=(12, 12))) == 2000


def test_invalid_arguments():
    with pytest.raises(ValueError, match="channels"):
        render_digits(10, channels=2)
    with pytest.raises(ValueError, match="at least 1"):
        render_digits(0)
    with pytest.raises(ValueError, match="split"):
        load_synthetic_digits("val", n=10)


def test_save_grid(tmp_path):
    images, labels = render_digits(23, seed=0)
    path = save_grid(images, labels, tmp_path / "grid.png", columns=10, scale=2)
    with Image.open(path) as grid:
        assert grid.size == (10 * (28 * 2 + 2), 3 * (28 * 2 + 12 + 2)) and grid.mode == "RGB"
    assert [p.name for p in tmp_path.iterdir()] == ["grid.png"]
    with pytest.raises(ValueError, match="uint8"):
        save_grid(images.float(), labels, tmp_path / "bad.png")
