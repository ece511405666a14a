"""PoseTrack18 reader on files the tests write: good data, keypoint parts, and every bad-input case."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from adaptrack.common.errors import DataError
from adaptrack.track.data import PartSpec, read_posetrack, read_posetrack_dir

from .conftest import HEIGHT, WIDTH, keypoints, write_dataset


def test_reads_labeled_frames_people_and_head_boxes(tmp_path: Path, good: dict[str, Any]) -> None:
    seq = read_posetrack(write_dataset(tmp_path, good))
    assert seq.name == "seq"
    assert [f.frame_index for f in seq.frames] == [0, 2]  # the unlabeled frame 1 is skipped
    frame = seq.frames[1]
    assert frame.path == tmp_path / "images/val/seq/000002.jpg"
    assert (frame.width, frame.height) == (WIDTH, HEIGHT)
    assert [p.track_id for p in frame.people] == [0, 3]
    assert frame.people[0].box == (7.0, 10.0, 12.0, 30.0)
    assert frame.people[0].parts == ((10.0, 10.0, 6.0, 6.0),)
    assert frame.person(3) is not None and frame.person(3).parts == ((33.0, 8.0, 7.0, 7.0),)
    assert seq.track_ids == [0, 3]
    assert seq.target_track is None


def test_head_visibility_is_read_when_annotated(tmp_path: Path, good: dict[str, Any]) -> None:
    good["annotations"][2]["head_visible"] = 0.62  # track 0, frame 2
    parts = (PartSpec(), PartSpec(name="nose", keypoint="nose", size=0.2), PartSpec(name="left_ear"))
    seq = read_posetrack(write_dataset(tmp_path, good), parts=parts)
    target, other = seq.frames[1].people
    assert target.visibility == (0.62, 1.0, 0.0)  # head as annotated, a visible keypoint, a hidden one
    assert [target.visible_share(k) for k in range(3)] == [0.62, 1.0, 0.0]
    assert other.visibility == (1.0, 0.0, 0.0)  # no head_visible key: an annotated head counts as visible
    assert seq.frames[0].people[0].visible_share(0) == 1.0


def test_images_root_may_be_the_images_folder(tmp_path: Path, good: dict[str, Any]) -> None:
    path = write_dataset(tmp_path, good)
    seq = read_posetrack(path, images_root=tmp_path / "images")
    assert seq.frames[0].path == tmp_path / "images/val/seq/000000.jpg"


def test_keypoint_parts_are_squares_scaled_by_person_height(tmp_path: Path, good: dict[str, Any]) -> None:
    parts = (PartSpec(), PartSpec(name="nose", keypoint="nose", size=0.2), PartSpec(name="left_ankle"))
    seq = read_posetrack(write_dataset(tmp_path, good), parts=parts)
    target, other = seq.frames[0].people
    head, nose, ankle = target.parts
    assert head == (8.0, 10.0, 6.0, 6.0)
    side = 0.2 * 30.0  # fraction of the person box height
    assert nose == pytest.approx((11.0 - side / 2, 14.0 - side / 2, side, side))
    assert ankle == pytest.approx((8.0 - 3.75, 39.0 - 3.75, 7.5, 7.5))  # default size 0.25
    assert other.parts[1] is None and other.parts[2] is None  # invisible keypoints


def test_person_box_derived_from_keypoints_or_skipped(tmp_path: Path, good: dict[str, Any]) -> None:
    del good["annotations"][0]["bbox"]  # two visible keypoints: the box is derived
    good["annotations"][1]["bbox"] = []  # no visible keypoints: the person is skipped
    seq = read_posetrack(write_dataset(tmp_path, good))
    people = seq.frames[0].people
    assert [p.track_id for p in people] == [0]
    x, y, w, h = people[0].box
    # nose (11, 14) and left ankle (8, 39), padded by 10 % on each side
    assert (x, y, w, h) == pytest.approx((8.0 - 0.3, 14.0 - 2.5, 3.6, 30.0))


def test_slightly_outside_boxes_are_clipped(tmp_path: Path, good: dict[str, Any]) -> None:
    good["annotations"][0]["bbox"] = [-4.0, 20.0, 20.0, 32.0]  # 4 px left and bottom of the image
    good["annotations"][0]["bbox_head"] = [-3.0, 20.0, 6.0, 6.0]
    person = read_posetrack(write_dataset(tmp_path, good)).frames[0].people[0]
    assert person.box == (0.0, 20.0, 16.0, HEIGHT - 20.0)
    assert person.parts[0] == (0.0, 20.0, 3.0, 6.0)


def test_mostly_outside_part_counts_as_not_visible(tmp_path: Path, good: dict[str, Any]) -> None:
    good["annotations"][0]["bbox_head"] = [-5.0, 10.0, 6.0, 6.0]  # 1/6 of it inside the image
    person = read_posetrack(write_dataset(tmp_path, good)).frames[0].people[0]
    assert person.parts == (None,)


def test_missing_frame_allowed_without_image_checks(tmp_path: Path, good: dict[str, Any]) -> None:
    path = write_dataset(tmp_path, good, frames=False)
    seq = read_posetrack(path, check_images=False)
    assert len(seq.frames) == 2 and not seq.frames[0].path.exists()


def test_read_dir_sorted_and_empty_dir_is_an_error(tmp_path: Path, good: dict[str, Any]) -> None:
    write_dataset(tmp_path, good, name="b")
    write_dataset(tmp_path, good, name="a")
    seqs = read_posetrack_dir(tmp_path / "annotations" / "val")
    assert [s.name for s in seqs] == ["a", "b"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty.*no \*\.json"):
        read_posetrack_dir(tmp_path / "empty")


Edit = Callable[[dict[str, Any]], None]

BAD_CASES: list[tuple[str, Edit, list[str]]] = [
    ("no annotations list", lambda d: d.pop("annotations"), ["'annotations'", "missing"]),
    ("image without file_name", lambda d: d["images"][2].pop("file_name"), ["images[2]", "'file_name'"]),
    ("annotation without track_id", lambda d: d["annotations"][2].pop("track_id"),
     ["annotations[2]", "frame 2", "'track_id'", "missing"]),
    ("annotation without bbox or keypoints",
     lambda d: (d["annotations"][1].pop("bbox"), d["annotations"][1].pop("keypoints")),
     ["annotations[1]", "frame 0", "track 3", "'bbox'"]),
    ("zero-width bbox", lambda d: d["annotations"][2].__setitem__("bbox", [5, 10, 0, 30]),
     ["annotations[2]", "frame 2", "'bbox'", "zero or negative"]),
    ("negative head box", lambda d: d["annotations"][0].__setitem__("bbox_head", [8, 10, 6, -2]),
     ["annotations[0]", "frame 0", "track 0", "'bbox_head'", "zero or negative"]),
    ("bbox far outside", lambda d: d["annotations"][0].__setitem__("bbox", [500, 10, 12, 30]),
     ["annotations[0]", "frame 0", "'bbox'", "outside"]),
    ("bbox sticking out grossly", lambda d: d["annotations"][0].__setitem__("bbox", [-200, 10, 230, 30]),
     ["annotations[0]", "'bbox'", "beyond"]),
    ("bbox not four numbers", lambda d: d["annotations"][0].__setitem__("bbox", [1, 2, 3]),
     ["annotations[0]", "'bbox'", "4 numbers"]),
    ("unknown image id", lambda d: d["annotations"][3].__setitem__("image_id", 77),
     ["annotations[3]", "'image_id'", "unknown image id 77"]),
    ("duplicate track in a frame", lambda d: d["annotations"][1].__setitem__("track_id", 0),
     ["annotations[1]", "frame 0", "'track_id'", "twice"]),
    ("no head boxes at all", lambda d: [a.pop("bbox_head") for a in d["annotations"]],
     ["'bbox_head'", "head part is requested"]),
    ("keypoints of the wrong length", lambda d: d["annotations"][0].__setitem__("keypoints", [1, 2, 1]),
     ["annotations[0]", "'keypoints'", "triples"]),
    ("no annotated frame", lambda d: ([i.__setitem__("is_labeled", False) for i in d["images"]],
                                      d.__setitem__("annotations", [])),
     ["'is_labeled'", "no annotated frame among 3"]),
    ("two images of the same frame", lambda d: d["images"][2].__setitem__("file_name", "images/val/seq/000000.jpg"),
     ["images[2]", "'file_name'", "frame 0 appears twice"]),
    ("non-integer track id", lambda d: d["annotations"][0].__setitem__("track_id", "x"),
     ["annotations[0]", "'track_id'", "integer"]),
    ("head visibility above 1", lambda d: d["annotations"][2].__setitem__("head_visible", 1.5),
     ["annotations[2]", "frame 2", "track 0", "'head_visible'", "between 0 and 1"]),
]


@pytest.mark.parametrize(("edit", "expected"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_bad_annotations_name_file_frame_and_key(tmp_path: Path, good: dict[str, Any], edit: Edit,
                                                 expected: list[str]) -> None:
    edit(good)
    path = write_dataset(tmp_path, good)
    with pytest.raises(DataError) as info:
        read_posetrack(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message


def test_missing_frame_file_is_an_error(tmp_path: Path, good: dict[str, Any]) -> None:
    path = write_dataset(tmp_path, good)
    (tmp_path / "images/val/seq/000002.jpg").unlink()
    with pytest.raises(DataError) as info:
        read_posetrack(path)
    message = str(info.value)
    for fragment in (str(path), "images[2]", "frame 2", "'file_name'", "missing", "000002.jpg"):
        assert fragment in message


def test_unreadable_frame_file_is_an_error(tmp_path: Path, good: dict[str, Any]) -> None:
    path = write_dataset(tmp_path, good)
    (tmp_path / "images/val/seq/000000.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"frame 0.*'file_name'.*unreadable"):
        read_posetrack(path)


def test_frame_size_mismatch_is_an_error(tmp_path: Path, good: dict[str, Any]) -> None:
    good["images"][0]["width"] = WIDTH * 2
    with pytest.raises(DataError, match=r"frame 0.*'width'.*differs"):
        read_posetrack(write_dataset(tmp_path, good))


def test_size_read_from_the_file_when_not_annotated(tmp_path: Path, good: dict[str, Any]) -> None:
    for image in good["images"]:
        del image["width"], image["height"]
    seq = read_posetrack(write_dataset(tmp_path, good))
    assert (seq.frames[0].width, seq.frames[0].height) == (WIDTH, HEIGHT)


def test_unknown_keypoint_part_lists_the_names(tmp_path: Path, good: dict[str, Any]) -> None:
    path = write_dataset(tmp_path, good)
    with pytest.raises(DataError, match=r"'keypoints'.*'left_eye'.*available: nose, head_bottom"):
        read_posetrack(path, parts=(PartSpec(name="eye", keypoint="left_eye"),))


def test_invalid_and_missing_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json: not valid JSON"):
        read_posetrack(bad)
    with pytest.raises(DataError, match=r"nothere\.json: annotation file is missing"):
        read_posetrack(tmp_path / "nothere.json")


def test_keypoint_helper_marks_only_named_points_visible() -> None:
    flat = keypoints({"nose": (1.0, 2.0)})
    assert flat[:3] == [1.0, 2.0, 1] and flat[3:6] == [0.0, 0.0, 0] and len(flat) == 51
    assert not math.isnan(sum(flat))
