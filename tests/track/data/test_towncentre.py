"""The Town Centre ``.top`` reader on files the tests write, and on the shared clip (skipped where absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptrack.common.errors import ConfigError, DataError
from adaptrack.common.paths import shared_data_dir
from adaptrack.track.data import PartSpec, read_top, read_towncentre
from adaptrack.track.data.towncentre import inside_shares
from tests.track.towncentre_fixtures import (
    FRAMES,
    HEIGHT,
    WIDTH,
    square_at,
    square_top_lines,
    top_line,
    write_top,
    write_video,
)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4")


@pytest.mark.parametrize("header", [True, False])
def test_reads_boxes_frames_and_paths(tmp_path: Path, video: Path, header: bool) -> None:
    lines = square_top_lines()
    lines[-1] = top_line(2, FRAMES - 1, (100, 84, 8, 8), (96, 82, 16, 24), head_valid=0)
    top = write_top(tmp_path / "gt.top", lines, header=header)
    seq = read_towncentre(top, video, tmp_path / "frames")
    assert seq.name == "gt" and seq.parts == (PartSpec("head"),)
    assert [f.frame_index for f in seq.frames] == list(range(FRAMES))
    frame = seq.frames[3]
    assert frame.path == tmp_path / "frames" / "000003.jpg" and frame.path.is_file()
    assert (frame.width, frame.height) == (WIDTH, HEIGHT)
    square = frame.person(1)
    assert square is not None and square.box == pytest.approx(square_at(3))
    assert square.parts[0] == pytest.approx((square_at(3)[0] + 8, 20, 16, 8))
    still = frame.person(2)
    assert still is not None and still.box == pytest.approx((96, 82, 16, 14))  # clipped at the bottom
    assert seq.frames[-1].person(2).parts == (None,)  # headValid 0
    shares = inside_shares(read_top(top), WIDTH, HEIGHT)
    assert shares[(2, 0)] == pytest.approx(14 / 24)
    assert shares[(1, 0)] == 1.0


def test_frame_range_and_frame_folder(tmp_path: Path, video: Path) -> None:
    top = write_top(tmp_path / "gt.top", square_top_lines())
    seq = read_towncentre(top, video, tmp_path / "frames", frame_range=(2, 5))
    assert [f.frame_index for f in seq.frames] == [2, 3, 4]
    again = read_towncentre(top, tmp_path / "frames")  # the extracted folder works as the source
    assert len(again.frames) == FRAMES and again.frames[0].path.name == "000000.jpg"
    with pytest.raises(ConfigError, match="head"):
        read_towncentre(top, video, tmp_path / "frames", parts=(PartSpec("nose", "nose"),))


@pytest.mark.parametrize(("line", "message"), [
    ("1,0,1,1,2,3,4", "line 3: 7 columns, expected 12"),
    ("1,0,1,1,2,3,4,5,a,6,7,8", "line 3: column bodyLeft: 'a' is not a number"),
    ("1,0,1,1,2,3,4,5,10,6,7,8", "line 3: body box .* non-positive width"),
    ("1,0,1,1,2,3,2,5,1,2,30,40", "line 3: head box .* non-positive width"),
    ("1,1.5,1,1,2,3,4,5,1,2,30,40", "line 3: column frameNumber: expected a non-negative integer"),
    ("9,99,1,1,2,3,4,5,1,2,30,40", "line 3: frame 99 is beyond the video .12 frames"),
    ("1,0,1,1,2,3,4,5,1,2,30,40", "line 3: person 1 in frame 0 appears twice .also line 2"),
    ("1,1,1,1,2,3,4,5,500,500,530,540", "line 3: body box: .* outside"),
])
def test_bad_lines_name_file_and_line(tmp_path: Path, video: Path, line: str, message: str) -> None:
    top = write_top(tmp_path / "bad.top", [top_line(1, 0, (14, 20, 8, 4), (10, 20, 16, 16)), line])
    with pytest.raises(DataError, match=message) as info:
        read_towncentre(top, video, tmp_path / "frames")
    assert "bad.top" in str(info.value)


def test_wrong_header_and_missing_file(tmp_path: Path, video: Path) -> None:
    top = tmp_path / "h.top"
    top.write_text("person,frame\n1,0,1,1,2,3,4,5,1,2,30,40\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1: header"):
        read_top(top)
    with pytest.raises(DataError, match="missing"):
        read_top(tmp_path / "nope.top")


def test_shared_clip_126_frames_1365_person_frames(request: pytest.FixtureRequest) -> None:
    shared = shared_data_dir()
    folder = None if shared is None else shared / "towncentre"
    if folder is None or not (folder / "TownCentre-first126.mp4").is_file():
        pytest.skip("shared clip ../shared/data/towncentre is absent in this checkout")
    cache = request.config.cache.mkdir("towncentre-first126-frames")  # extracted once, kept between runs
    seq = read_towncentre(folder / "TownCentre-groundtruth-first126.top", folder / "TownCentre-first126.mp4", cache)
    assert len(seq.frames) == 126 and seq.frames[-1].frame_index == 125
    assert {(f.width, f.height) for f in seq.frames} == {(1920, 1080)}
    assert sum(len(f.people) for f in seq.frames) == 1365
    assert len(seq.track_ids) == 19
    assert all(p.parts[0] is not None for f in seq.frames for p in f.people)
