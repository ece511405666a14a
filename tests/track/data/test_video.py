"""Video decoding, frame extraction with its manifest, and frame listing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaptrack.common.errors import ConfigError, DataError
from adaptrack.track.data.video import extract_frames, frame_paths, read_video_frames
from tests.track.towncentre_fixtures import FRAMES, HEIGHT, WIDTH, square_at, write_video


def test_read_video_frames_yields_rgb_frames_in_order(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4")
    frames = list(read_video_frames(video))
    assert [i for i, _ in frames] == list(range(FRAMES))
    _, image = frames[3]
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    x, y, w, h = (int(v) for v in square_at(3))
    inside = image[y + 4:y + h - 4, x + 4:x + w - 4].reshape(-1, 3).mean(axis=0)
    corner = image[2, 2].astype(float)
    assert inside[1] < 40 and inside[0] > 100  # the square is red-blue
    assert abs(corner[0] - corner[1]) < 12 and 30 < corner.mean() < 90  # the background is grey


def test_read_video_frames_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such video"):
        list(read_video_frames(tmp_path / "missing.mp4"))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.mp4"):
        list(read_video_frames(empty))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(DataError, match=r"junk\.mp4"):
        list(read_video_frames(junk))


def test_extract_frames_writes_jpegs_once(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4")
    out = tmp_path / "frames"
    files = extract_frames(video, out, every=2, start=1, stop=8)
    assert [f.name for f in files] == ["000001.jpg", "000003.jpg", "000005.jpg", "000007.jpg"]
    assert Image.open(files[0]).size == (WIDTH, HEIGHT)
    stamp = files[0].stat().st_mtime_ns
    again = extract_frames(video, out, every=2, start=1, stop=8)
    assert again == files and files[0].stat().st_mtime_ns == stamp  # nothing decoded or written again
    everything = extract_frames(video, out)  # other options: extracted again
    assert len(everything) == FRAMES
    with pytest.raises(ConfigError, match="every"):
        extract_frames(video, out, every=0)
    with pytest.raises(DataError, match="range"):
        extract_frames(video, tmp_path / "none", start=100)


def test_frame_paths_video_or_folder(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4")
    assert len(frame_paths(video, tmp_path / "cache")) == FRAMES
    with pytest.raises(ConfigError, match="cache"):
        frame_paths(video)
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("10.png", "2.jpg", "1.jpeg", "notes.txt"):
        (folder / name).write_bytes(b"x")
    assert [p.name for p in frame_paths(folder)] == ["1.jpeg", "2.jpg", "10.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="empty"):
        frame_paths(empty)

