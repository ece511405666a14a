"""MOT17 reader on a three-frame sequence folder the tests write, the split reader, and bad inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaptrack.common.errors import DataError
from adaptrack.track.data import read_mot17, read_mot17_dir
from adaptrack.track.data.mot17 import select_variants

WIDTH, HEIGHT = 64, 48
GOOD_GT = [
    "1,1,5,10,12,30,1,1,1.0",
    "1,2,30,8,14,32,1,1,0.4",
    "1,3,40,5,10,20,0,1,1.0",  # conf 0: not considered
    "2,1,6,10,12,30,1,1,0.9",
    "2,4,50,5,10,20,1,7,1.0",  # class 7 (static person): not a pedestrian
    "2,2,-4,8,14,32,1,1,0.3",  # 4 px left of the image: clipped
]


def write_sequence(root: Path, name: str = "MOT17-02-FRCNN", gt: list[str] | None = None, length: int = 3,
                   images: bool = True, seqinfo: str | None = None) -> Path:
    """``root/name`` with seqinfo.ini, gt/gt.txt and ``length`` tiny JPEGs in img1/."""
    folder = root / name
    (folder / "gt").mkdir(parents=True)
    (folder / "img1").mkdir()
    if seqinfo is None:
        seqinfo = (f"[Sequence]\nname={name}\nimDir=img1\nframeRate=30\nseqLength={length}\nimWidth={WIDTH}\n"
                   f"imHeight={HEIGHT}\nimExt=.jpg\n")
    (folder / "seqinfo.ini").write_text(seqinfo)
    (folder / "gt" / "gt.txt").write_text("\n".join(GOOD_GT if gt is None else gt) + "\n")
    if images:
        for t in range(1, length + 1):
            Image.fromarray(np.full((HEIGHT, WIDTH, 3), 80, np.uint8)).save(folder / "img1" / f"{t:06d}.jpg")
    return folder


def test_reads_every_frame_bodies_and_identities(tmp_path: Path) -> None:
    seq = read_mot17(write_sequence(tmp_path))
    assert seq.name == "MOT17-02-FRCNN"
    assert [f.frame_index for f in seq.frames] == [0, 1, 2]  # MOT frames 1..3, frame 3 has nobody
    first, second, third = seq.frames
    assert first.path == tmp_path / "MOT17-02-FRCNN/img1/000001.jpg"
    assert (first.width, first.height) == (WIDTH, HEIGHT)
    assert [p.track_id for p in first.people] == [1, 2]
    assert first.people[0].box == (5.0, 10.0, 12.0, 30.0)
    assert first.people[0].parts == (None,) and first.people[0].visible_share(0) == 0.0  # no head labels
    assert [p.track_id for p in second.people] == [1, 2]
    assert second.person(2).box == (0.0, 8.0, 10.0, 32.0)
    assert third.people == ()
    assert seq.track_ids == [1, 2]


def test_visibility_and_class_filters(tmp_path: Path) -> None:
    folder = write_sequence(tmp_path)
    seq = read_mot17(folder, min_visibility=0.5)
    assert [[p.track_id for p in f.people] for f in seq.frames] == [[1], [1], []]
    seq = read_mot17(folder, classes=(1, 7))
    assert [p.track_id for p in seq.frames[1].people] == [1, 2, 4]


def test_split_reads_one_detector_variant_per_sequence(tmp_path: Path) -> None:
    for name in ("MOT17-02-DPM", "MOT17-02-FRCNN", "MOT17-02-SDP", "MOT17-04-SDP"):
        write_sequence(tmp_path, name, images=False)
    seqs = read_mot17_dir(tmp_path, check_images=False)
    assert [s.name for s in seqs] == ["MOT17-02-FRCNN", "MOT17-04-SDP"]
    assert [p.name for p in select_variants(sorted(tmp_path.iterdir()), "DPM")] == ["MOT17-02-DPM", "MOT17-04-SDP"]
    assert len(read_mot17_dir(tmp_path, detector=None, check_images=False)) == 4
    with pytest.raises(DataError, match="no sequence folder"):
        read_mot17_dir(tmp_path / "MOT17-02-DPM" / "gt")


@pytest.mark.parametrize(("row", "pattern"), [
    ("2,1,6,10,12", r"gt\.txt: line 3: expected 9 comma-separated values"),
    ("2,1,6,10,12,30,1,1,abc", r"gt\.txt: line 3: non-numeric value"),
    ("2,1.5,6,10,12,30,1,1,1", r"gt\.txt: line 3: id must be an integer"),
    ("9,1,6,10,12,30,1,1,1", r"gt\.txt: line 3: frame 9 outside 1\.\.3"),
    ("2,1,6,10,12,30,2,1,1", r"gt\.txt: line 3: conf \(the consider flag\) must be 0 or 1"),
    ("2,1,6,10,12,30,1,1,1.5", r"gt\.txt: line 3: visibility must be in \[0, 1\]"),
    ("2,1,6,10,0,30,1,1,1", r"gt\.txt: line 3 \(frame 2, id 1\): box has zero or negative size"),
    ("2,1,200,10,12,30,1,1,1", r"gt\.txt: line 3 \(frame 2, id 1\): box .* lies outside the 64x48 image"),
    ("1,1,7,10,12,30,1,1,1", r"gt\.txt: line 3: id 1 appears twice in frame 1 \(also line 1\)"),
])
def test_bad_gt_rows_name_file_and_line(tmp_path: Path, row: str, pattern: str) -> None:
    folder = write_sequence(tmp_path, gt=[*GOOD_GT[:2], row])
    with pytest.raises(DataError, match=pattern):
        read_mot17(folder)


def test_box_outside_may_be_dropped_with_a_warning(tmp_path: Path) -> None:
    folder = write_sequence(tmp_path, gt=[*GOOD_GT[:2], "2,1,200,10,12,30,1,1,1"])
    with pytest.warns(UserWarning, match="dropped 1 box"):
        seq = read_mot17(folder, drop_outside=True)
    assert seq.frames[1].people == ()


def test_missing_image_seqinfo_key_and_gt_are_errors(tmp_path: Path) -> None:
    folder = write_sequence(tmp_path)
    (folder / "img1" / "000002.jpg").unlink()
    with pytest.raises(DataError, match=r"img1/000002\.jpg: frame file is missing"):
        read_mot17(folder)
    assert len(read_mot17(folder, check_images=False).frames) == 3

    folder = write_sequence(tmp_path, "MOT17-05-FRCNN", seqinfo="[Sequence]\nimDir=img1\nframeRate=30\n")
    with pytest.raises(DataError, match=r"seqinfo\.ini: \[Sequence\] key 'seqLength': missing"):
        read_mot17(folder)

    folder = write_sequence(tmp_path, "MOT17-09-FRCNN")
    (folder / "gt" / "gt.txt").unlink()
    with pytest.raises(DataError, match=r"gt\.txt: ground truth is missing \(MOT17 test sequences"):
        read_mot17(folder)


def test_frame_size_must_match_seqinfo(tmp_path: Path) -> None:
    folder = write_sequence(tmp_path)
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(folder / "img1" / "000003.jpg")
    with pytest.raises(DataError, match=r"000003\.jpg: frame is 10x10, seqinfo\.ini says imWidth=64"):
        read_mot17(folder)
