"""The real-clip protocol: exact hit / wrong-person / miss counts with a scripted tracker; the command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaptrack.common.errors import ConfigError, DataError
from adaptrack.track.cli import main
from adaptrack.track.data.types import FrameAnn, PartSpec, PersonAnn, SequenceAnn
from adaptrack.track.evaluation import real
from adaptrack.track.evaluation.real import ClipProtocol, draw_still, evaluate_clip, start_people
from adaptrack.track.inference.tracker import PartResult, TrackResult
from tests.track.towncentre_fixtures import square_top_lines, write_top, write_video

W, H = 40, 30
A_BOX, B_BOX, C_BOX = (2.0, 2.0, 10.0, 20.0), (20.0, 2.0, 10.0, 20.0), (32.0, 20.0, 10.0, 20.0)
A_HEAD, B_HEAD, C_HEAD = (4.0, 2.0, 6.0, 4.0), (22.0, 2.0, 6.0, 4.0), (34.0, 20.0, 6.0, 4.0)


def _centre(box: tuple[float, float, float, float]) -> tuple[float, float]:
    return (box[0] + box[2] / 2, box[1] + box[3] / 2)


def _sequence(tmp_path: Path) -> SequenceAnn:
    """Frames 0-4: A and B everywhere except A in frame 4; C pokes out of the frame (never starts)."""
    frames = []
    for i in range(5):
        path = tmp_path / f"{i:06d}.png"
        Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(path)
        people = [PersonAnn(2, B_BOX, (B_HEAD,)), PersonAnn(3, C_BOX, (C_HEAD,))]
        if i < 4:
            people.insert(0, PersonAnn(1, A_BOX, (A_HEAD,)))
        frames.append(FrameAnn(path, i, W, H, tuple(people)))
    return SequenceAnn("toy", tuple(frames), (PartSpec("head"),))


class Scripted:
    """Follows A: frame 1 on A's head (hit), 2 on B's head (wrong person), 3 on nothing with a far box
    (miss, IoU 0), 4 anywhere (A not annotated: not scored). Follows B exactly (all hits)."""

    def __init__(self) -> None:
        self.box: tuple[float, float, float, float] | None = None
        self.frame = 0

    def initialize(self, frame: np.ndarray, box: tuple[float, float, float, float], frame_name: str = "") -> None:
        assert frame.shape == (H, W, 3)
        self.box, self.frame = tuple(box), 0

    def track(self, frame: np.ndarray) -> TrackResult:
        self.frame += 1
        box, head = self.box, _centre(B_HEAD)
        if self.box == A_BOX:
            head = {1: _centre(A_HEAD), 2: _centre(B_HEAD), 3: (15.0, 25.0), 4: (0.0, 0.0)}[self.frame]
            box = (25.0, 5.0, 10.0, 20.0) if self.frame == 3 else A_BOX
        assert box is not None
        return TrackResult(box, 1.0, [PartResult("head", head, (4.0, 4.0), 1.0)])


def test_counts_hit_wrong_miss_exactly(tmp_path: Path) -> None:
    seq = _sequence(tmp_path)
    inside = {(1, 0): 1.0, (2, 0): 0.8, (3, 0): 0.3}
    assert start_people(seq, 0, 0.5, inside) == [1, 2]
    assert start_people(seq, 0, 0.5) == [1, 2, 3]
    still = tmp_path / "still.png"
    rows = evaluate_clip(seq, {"scripted": Scripted}, ClipProtocol(0, 1, 4), {"scripted": "none"},
                         inside=inside, still=still)
    (row,) = rows
    assert row["tracks"] == 2 and row["person-frames"] == 7 and row["started"] == [1, 2]
    assert row["head hit %"] == pytest.approx(100 * 5 / 7)
    assert row["wrong-person %"] == pytest.approx(100 / 7)
    assert row["miss %"] == pytest.approx(100 / 7)
    assert row["IoU>=0.5 %"] == pytest.approx(100 * 6 / 7)
    assert row["timelines"] == {"1": "hWm-", "2": "hhhh"}
    assert row["FPS"] > 0 and row["threads"] == 1
    assert Image.open(still).size == (W, H)


def test_scored_range_and_errors(tmp_path: Path) -> None:
    seq = _sequence(tmp_path)
    rows = evaluate_clip(seq, {"s": Scripted}, ClipProtocol(1, 2, 2), inside=None)
    assert rows[0]["tracks"] == 3 and rows[0]["person-frames"] == 3  # frame 2 only, C starts too
    with pytest.raises(ConfigError, match="unknown protocol"):
        evaluate_clip(seq, {"s": Scripted}, "train")
    with pytest.raises(ConfigError, match="start < first"):
        ClipProtocol(3, 3, 5)
    with pytest.raises(DataError, match="start frame 9"):
        evaluate_clip(seq, {"s": Scripted}, ClipProtocol(9, 10, 11))
    with pytest.raises(DataError, match="no person starts"):
        evaluate_clip(seq, {"s": Scripted}, ClipProtocol(0, 1, 2), min_inside=0.9,
                      inside={(1, 0): 0.2, (2, 0): 0.2, (3, 0): 0.2})
    tracker = Scripted()
    with pytest.raises(ConfigError, match="copy"):
        evaluate_clip(seq, {"s": tracker}, ClipProtocol(0, 1, 2))


def test_draw_still_marks_heads_and_boxes(tmp_path: Path) -> None:
    seq = _sequence(tmp_path)
    image = np.zeros((H, W, 3), np.uint8)
    result = TrackResult(A_BOX, 1.0, [PartResult("head", _centre(A_HEAD), (4, 4), 1.0)])
    out = draw_still(image, seq.frames[0], {"a": {1: result}}, tmp_path / "s.png")
    pixels = np.asarray(Image.open(out))
    assert pixels.shape == (H, W, 3) and pixels.any()


def test_command_writes_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    video = write_video(tmp_path / "clip.mp4")
    top = write_top(tmp_path / "gt.top", square_top_lines())
    monkeypatch.setitem(real.PROTOCOLS, "dev", ClipProtocol(0, 1, 5))
    out = tmp_path / "out"
    assert main(["evaluate-real", "--top", str(top), "--video", str(video), "--trackers", "[opencv-mil]",
                 "--protocol", "dev", "--frames_dir", str(tmp_path / "frames"), "--output", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    (row,) = metrics["rows"]
    assert row["tracker"] == "opencv-mil" and row["tracks"] == 2 and row["person-frames"] == 10
    assert row["IoU>=0.5 %"] >= 50
    assert "opencv-mil" in (out / "metrics.md").read_text() and (out / "still.jpg").is_file()
