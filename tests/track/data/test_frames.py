"""Frame decoding and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from adaptrack.common.errors import DataError
from adaptrack.track.data import load_frame, resize_frame
from adaptrack.track.data.frames import frame_size


def test_rgb_and_grey_frames_load_as_chw_uint8(tmp_path: Path) -> None:
    pixels = np.zeros((5, 7, 3), np.uint8)
    pixels[1, 2] = (10, 20, 30)
    Image.fromarray(pixels).save(tmp_path / "rgb.png")
    Image.fromarray(np.full((5, 7), 200, np.uint8)).save(tmp_path / "grey.png")
    rgb = load_frame(tmp_path / "rgb.png")
    assert rgb.shape == (3, 5, 7) and rgb.dtype == torch.uint8
    assert rgb[:, 1, 2].tolist() == [10, 20, 30]
    grey = load_frame(tmp_path / "grey.png")
    assert grey.shape == (3, 5, 7) and int(grey.min()) == 200
    assert frame_size(tmp_path / "rgb.png") == (7, 5)


def test_missing_garbage_and_truncated_frames_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothere\.jpg: frame file is missing"):
        load_frame(tmp_path / "nothere.jpg")
    (tmp_path / "garbage.jpg").write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match=r"garbage\.jpg: frame file is unreadable"):
        load_frame(tmp_path / "garbage.jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(
        tmp_path / "full.jpg")
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.jpg: frame file is unreadable"):
        load_frame(tmp_path / "cut.jpg")


def test_load_with_size_matches_resize_frame(tmp_path: Path) -> None:
    pixels = np.random.default_rng(1).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "f.png")
    direct = load_frame(tmp_path / "f.png", size=(15, 20))
    assert direct.shape == (3, 15, 20)
    assert torch.equal(direct, resize_frame(load_frame(tmp_path / "f.png"), (15, 20)))
    assert load_frame(tmp_path / "f.png", size=(30, 40)).equal(load_frame(tmp_path / "f.png"))
