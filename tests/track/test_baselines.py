"""The OpenCV baselines on a tiny video the test writes: MIL follows a moving square; HOG's association."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adaptrack.common.errors import ConfigError, DataError
from adaptrack.track.baselines import HEAD_POSITION, HEAD_SIZE, HOGBaseline, MILBaseline, head_result
from adaptrack.track.data.geometry import box_iou
from adaptrack.track.data.video import read_video_frames
from tests.track.towncentre_fixtures import FRAMES, square_at, write_video


def test_head_at_expected_place_of_the_box() -> None:
    part = head_result((10, 20, 40, 80))
    assert part.position == (10 + HEAD_POSITION[0] * 40, 20 + HEAD_POSITION[1] * 80)
    assert part.size == (HEAD_SIZE * 80, HEAD_SIZE * 80) and part.visible


def test_mil_follows_the_moving_square(tmp_path: Path) -> None:
    frames = [image for _, image in read_video_frames(write_video(tmp_path / "clip.mp4"))]
    tracker = MILBaseline()
    tracker.initialize(frames[0], square_at(0))
    ious = [box_iou(tracker.track(frames[i]).box, square_at(i)) for i in range(1, FRAMES)]
    assert min(ious) > 0.5, ious
    result = tracker.track(frames[-1])
    assert result.parts[0].name == "head" and len(result.box) == 4


def test_mil_errors() -> None:
    with pytest.raises(RuntimeError, match="initialize"):
        MILBaseline().track(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(DataError, match="positive"):
        MILBaseline().initialize(np.zeros((32, 32, 3), np.uint8), (1, 1, 0, 5))
    with pytest.raises(DataError, match="outside"):
        MILBaseline().initialize(np.zeros((32, 32, 3), np.uint8), (100, 100, 5, 5))


class _FixedHOG(HOGBaseline):
    """HOG with canned detections (association is tested apart from the detector)."""

    def __init__(self, detections: list[list[tuple[float, float, float, float]]]) -> None:
        super().__init__()
        self.queue = list(detections)

    def detect(self, image: np.ndarray, box: tuple[float, float, float, float]) -> list[tuple[float, ...]]:
        return self.queue.pop(0)


def test_hog_takes_the_best_overlap_else_coasts() -> None:
    image = np.zeros((200, 200, 3), np.uint8)
    tracker = _FixedHOG([[(100, 10, 40, 80), (12, 22, 40, 80)], [(150, 100, 40, 80)], []])
    tracker.initialize(image, (10, 20, 40, 80))
    first = tracker.track(image)
    assert first.box == (12, 22, 40, 80) and not first.occluded
    second = tracker.track(image)  # the only detection does not overlap: the box coasts
    assert second.box == (12, 22, 40, 80) and second.occluded
    assert tracker.track(image).occluded


def test_hog_detector_runs_on_the_search_window() -> None:
    tracker = HOGBaseline()
    image = np.zeros((300, 200, 3), np.uint8)
    tracker.initialize(image, (50, 50, 40, 100))
    assert tracker.detect(image, (50, 50, 40, 100)) == []  # a black frame has no person
    result = tracker.track(image)
    assert result.box == (50, 50, 40, 100) and result.occluded
    with pytest.raises(ConfigError, match="search"):
        HOGBaseline(search=0.5)
