"""The shared image decoder: modes, resizing, gray detection and errors naming the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaptrack.common.errors import DataError
from adaptrack.common.images import decode_image


def test_decodes_rgb_and_gray_files_and_resizes(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    array, gray = decode_image(tmp_path / "c.png")
    assert array.shape == (6, 8, 3) and not gray and np.array_equal(array, rgb)
    array, gray = decode_image(tmp_path / "g.png", "RGB", size=(3, 4))
    assert array.shape == (3, 4, 3) and gray
    array, _ = decode_image(tmp_path / "c.png", "L")
    assert array.shape == (6, 8) and array.dtype == np.uint8


def test_missing_and_corrupt_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"none\.png: frame file is missing"):
        decode_image(tmp_path / "none.png", what="frame file")
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"bad\.jpg: image file is unreadable \(UnidentifiedImageError"):
        decode_image(tmp_path / "bad.jpg")
