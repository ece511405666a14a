"""CrowdHuman ``.odgt`` reader on a two-line file with two tiny JPEGs the tests write, and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from adaptrack.common.errors import DataError
from adaptrack.track.data import ClipDataset, PartSpec, read_crowdhuman, read_crowdhuman_ignore_regions

W1, H1 = 64, 48
W2, H2 = 40, 30


def _person(fbox: list[float], hbox: list[float], head_attr: dict[str, int] | None = None,
            ignore: int = 0, vbox: list[float] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"tag": "person", "fbox": fbox, "vbox": vbox or fbox, "hbox": hbox,
                             "extra": {"ignore": ignore, "box_id": 0, "occ": 0}}
    if head_attr is not None:
        entry["head_attr"] = head_attr
    return entry


def good_records() -> list[dict[str, Any]]:
    """Image A: two people (one with an occluded head), an ignored person and a crowd mask; image B:
    one person with an 'unsure' head and one whose full box sticks out of the image."""
    a = {"ID": "273271,c9db000d5146c15", "gtboxes": [
        _person([5, 10, 12, 30], [8, 10, 6, 6], {"ignore": 0, "occ": 0, "unsure": 0}, vbox=[5, 10, 12, 20]),
        _person([30, 8, 14, 32], [33, 8, 7, 7], {"ignore": 0, "occ": 1, "unsure": 0}),
        _person([50, 5, 10, 20], [52, 5, 4, 4], {"ignore": 0, "occ": 0, "unsure": 0}, ignore=1),
        {"tag": "mask", "fbox": [0, 0, 10, 10], "vbox": [0, 0, 10, 10], "hbox": [0, 0, 10, 10], "head_attr": {},
         "extra": {"ignore": 1}},
    ]}
    b = {"ID": "284193,faa9000f2678b5e", "gtboxes": [
        _person([2, 2, 10, 20], [4, 2, 5, 5], {"ignore": 0, "occ": 0, "unsure": 1}),
        _person([20, 10, 15, 35], [24, 10, 6, 6], {}),  # bottom 15 px below the 30 px image: clipped
    ]}
    return [a, b]


def write(tmp_path: Path, records: list[dict[str, Any]] | list[str], images: bool = True) -> tuple[Path, Path]:
    """Write ``annotation.odgt`` (records or raw lines) and ``Images/<ID>.jpg`` for the good IDs."""
    root = tmp_path / "Images"
    root.mkdir(exist_ok=True)
    if images:
        for image_id, (w, h) in (("273271,c9db000d5146c15", (W1, H1)), ("284193,faa9000f2678b5e", (W2, H2))):
            Image.fromarray(np.full((h, w, 3), 120, np.uint8)).save(root / f"{image_id}.jpg")
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    odgt = tmp_path / "annotation.odgt"
    odgt.write_text("\n".join(lines) + "\n")
    return odgt, root


def test_each_image_is_a_one_frame_sequence_with_heads_and_bodies(tmp_path: Path) -> None:
    odgt, root = write(tmp_path, good_records())
    seqs = read_crowdhuman(odgt, root)
    assert [s.name for s in seqs] == ["273271,c9db000d5146c15", "284193,faa9000f2678b5e"]
    a, b = (s.frames[0] for s in seqs)
    assert all(len(s.frames) == 1 and s.frames[0].frame_index == 0 for s in seqs)
    assert (a.width, a.height, b.width, b.height) == (W1, H1, W2, H2)  # from the file headers
    assert a.path == root / "273271,c9db000d5146c15.jpg"
    assert [p.track_id for p in a.people] == [0, 1]  # the ignored person (2) and the mask (3) are not people
    assert a.people[0].box == (5.0, 10.0, 12.0, 30.0)  # fbox
    assert a.people[0].parts == ((8.0, 10.0, 6.0, 6.0),)
    assert a.people[0].visibility == (1.0,)
    assert a.people[1].visibility == (0.5,)  # head_attr.occ: flagged, share not measured
    assert b.people[0].parts == (None,) and b.people[0].visible_share(0) == 0.0  # unsure head
    assert seqs[0].frames[0].people[1].parts == ((33.0, 8.0, 7.0, 7.0),)
    assert b.people[1].box == (20.0, 10.0, 15.0, 20.0)  # clipped to the 30 px height
    assert b.people[1].parts == ((24.0, 10.0, 6.0, 6.0),)  # empty head_attr counts as 0


def test_ignored_or_unsure_head_may_have_a_degenerate_hbox(tmp_path: Path) -> None:
    records = good_records()
    records[1]["gtboxes"][0]["hbox"] = [4, 2, 0, 0]  # head_attr.unsure == 1
    records[0]["gtboxes"][0]["head_attr"]["ignore"] = 1
    del records[0]["gtboxes"][0]["hbox"]
    odgt, root = write(tmp_path, records)
    seqs = read_crowdhuman(odgt, root)
    assert seqs[0].frames[0].people[0].parts == (None,)
    assert seqs[1].frames[0].people[0].parts == (None,)


def test_vbox_body_and_ignore_regions(tmp_path: Path) -> None:
    odgt, root = write(tmp_path, good_records())
    seqs = read_crowdhuman(odgt, root, body="vbox", occluded_head_visibility=0.3)
    assert seqs[0].frames[0].people[0].box == (5.0, 10.0, 12.0, 20.0)
    assert seqs[0].frames[0].people[1].visibility == (0.3,)
    regions = read_crowdhuman_ignore_regions(odgt)
    assert regions == {"273271,c9db000d5146c15": ((50.0, 5.0, 10.0, 20.0), (0.0, 0.0, 10.0, 10.0))}


def test_clip_dataset_with_clip_len_one_yields_one_sample_per_person(tmp_path: Path) -> None:
    odgt, root = write(tmp_path, good_records())
    dataset = ClipDataset(read_crowdhuman(odgt, root), clip_len=1)
    assert len(dataset) == 4
    clip = dataset[0]
    assert tuple(clip.frames.shape) == (1, 3, H1, W1)
    assert clip.target_parts.shape == (1, 1, 4)


def test_missing_image_is_an_error_or_skipped_with_a_warning(tmp_path: Path) -> None:
    odgt, root = write(tmp_path, good_records())
    (root / "284193,faa9000f2678b5e.jpg").unlink()
    with pytest.raises(DataError, match=r"annotation\.odgt: line 2 \(ID 284193,faa9000f2678b5e\).*missing") as info:
        read_crowdhuman(odgt, root)
    assert "284193,faa9000f2678b5e.jpg" in str(info.value)
    with pytest.warns(UserWarning, match="skipped 1 image"):
        seqs = read_crowdhuman(odgt, root, check_images=False)
    assert [s.name for s in seqs] == ["273271,c9db000d5146c15"]


def test_malformed_json_line_names_file_and_line(tmp_path: Path) -> None:
    records: list[Any] = [json.dumps(good_records()[0]), '{"ID": "x", "gtboxes": [']
    odgt, root = write(tmp_path, records)
    with pytest.raises(DataError, match=r"annotation\.odgt: line 2: not valid JSON"):
        read_crowdhuman(odgt, root)


@pytest.mark.parametrize(("edit", "pattern"), [
    (lambda r: r[1].pop("gtboxes"), r"line 2 \(ID 284193,faa9000f2678b5e\): key 'gtboxes': missing"),
    (lambda r: r[0].pop("ID"), r"line 1: key 'ID': missing"),
    (lambda r: r[0]["gtboxes"][1].pop("hbox"), r"line 1 \(ID 273271,c9db000d5146c15\), gtboxes\[1\]: key 'hbox'"),
    (lambda r: r[1]["gtboxes"][0].pop("fbox"), r"line 2 .*gtboxes\[0\]: key 'fbox': missing"),
    (lambda r: r[0]["gtboxes"][0].update(tag="car"), r"line 1 .*gtboxes\[0\]: key 'tag': expected 'person' or 'mask'"),
    (lambda r: r[0]["gtboxes"][0].update(fbox=[100, 100, 5, 5]), r"line 1 .*gtboxes\[0\]: key 'fbox': .*outside"),
    (lambda r: r[1]["gtboxes"][1].update(hbox=[0, 0, 0, 5]), r"line 2 .*gtboxes\[1\]: key 'hbox': .*zero"),
    (lambda r: r[0]["gtboxes"][0]["head_attr"].update(ignore=2), r"line 1 .*key 'head_attr.ignore': expected 0 or 1"),
    (lambda r: r[1].update(ID=r[0]["ID"]), r"line 2 .*key 'ID': duplicate image ID \(also line 1\)"),
])
def test_bad_records_name_file_line_and_key(tmp_path: Path, edit: Any, pattern: str) -> None:
    records = good_records()
    edit(records)
    odgt, root = write(tmp_path, records)
    with pytest.raises(DataError, match=r"annotation\.odgt: " + pattern):
        read_crowdhuman(odgt, root)


def test_keypoint_parts_and_missing_file_are_refused(tmp_path: Path) -> None:
    odgt, root = write(tmp_path, good_records())
    with pytest.raises(DataError, match="only head boxes"):
        read_crowdhuman(odgt, root, parts=(PartSpec(name="nose"),))
    with pytest.raises(DataError, match=r"absent\.odgt: annotation file is missing"):
        read_crowdhuman(tmp_path / "absent.odgt", root)
