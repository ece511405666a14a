"""The reader on the real PoseTrack18 sample in ``../shared/data`` (skipped where it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from adaptrack.common.paths import shared_data_dir
from adaptrack.track.data import PartSpec, load_frame, read_posetrack_dir
from adaptrack.track.data.geometry import box_area, intersection_area


def _sample() -> Path:
    shared = shared_data_dir()
    if shared is None or not (shared / "posetrack18_sample" / "annotations" / "val").is_dir():
        pytest.skip("shared data folder ../shared/data/posetrack18_sample is absent in this checkout")
    return shared / "posetrack18_sample"


def test_sample_has_three_frames_fourteen_people_heads_inside_bodies() -> None:
    root = _sample()
    seqs = read_posetrack_dir(root / "annotations" / "val")
    assert [s.name for s in seqs] == ["003418_mpii_test", "009473_mpii_test", "012834_mpii_test"]
    frames = [f for s in seqs for f in s.frames]
    assert len(frames) == 3
    people = [p for f in frames for p in f.people]
    assert len(people) == 14
    heads = [(p.parts[0], p.box) for p in people if p.parts[0] is not None]
    assert len(heads) == 14  # one head box is 72 % above the frame but keeps enough to count
    inside = [intersection_area(h, b) / box_area(h) for h, b in heads]
    assert sum(share >= 0.9 for share in inside) >= 13
    for frame in frames:
        assert (frame.width, frame.height) == (1920, 1080)
        for person in frame.people:
            x, y, w, h = person.box
            assert x >= 0 and y >= 0 and x + w <= 1920 + 1e-6 and y + h <= 1080 + 1e-6


def test_sample_keypoint_part_and_frame_decoding() -> None:
    root = _sample()
    seqs = read_posetrack_dir(root / "annotations" / "val", parts=(PartSpec(name="nose", size=0.1),))
    noses = [p.parts[0] for s in seqs for f in s.frames for p in f.people]
    assert sum(n is not None for n in noses) >= 10
    image = load_frame(seqs[0].frames[0].path)
    assert image.shape == (3, 1080, 1920)
