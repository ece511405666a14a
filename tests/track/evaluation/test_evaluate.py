"""Evaluation tallies and the two baselines on hand-made part maps."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from adaptrack.track.data import FrameAnn, PartSpec, PersonAnn, SequenceAnn
from adaptrack.track.evaluation.evaluate import (
    PartTally,
    SubjectTally,
    peak_in_box,
    peak_nearest,
    product_peak,
    select_tracks,
)
from adaptrack.track.inference.tracker import PartMaps


def test_part_tally_hit_wrong_miss_and_error() -> None:
    tally = PartTally()
    target = torch.tensor([10.0, 10.0, 10.0, 10.0])
    others = torch.tensor([[30.0, 10.0, 10.0, 10.0], [float("nan")] * 4])
    tally.add(torch.tensor([15.0, 15.0]), target, others)  # hit, error 0
    tally.add(torch.tensor([35.0, 15.0]), target, others)  # wrong person, error 20 / 10
    tally.add(torch.tensor([80.0, 80.0]), target, others)  # miss
    tally.add(torch.tensor([float("nan")] * 2), target, others)  # no prediction: miss
    row = tally.row()
    assert (row["hit %"], row["wrong %"], row["miss %"], row["frames"]) == (25.0, 25.0, 50.0, 4)
    assert row["err/size"] == pytest.approx((0 + 2 + math.hypot(65, 65) / 10) / 3)


def test_part_tally_keeps_per_track_timelines_and_a_bootstrap_interval_over_tracks() -> None:
    tally = PartTally()
    target = torch.tensor([10.0, 10.0, 10.0, 10.0])
    others = torch.tensor([[30.0, 10.0, 10.0, 10.0]])
    hit, wrong = torch.tensor([15.0, 15.0]), torch.tensor([35.0, 15.0])
    for pos in (hit, hit, wrong):
        tally.add(pos, target, others, track="a/0")
    tally.skip(track="a/0")  # not scored, only shown
    assert tally.timelines() == {"a/0": "hhW-"} and tally.row()["frames"] == 3
    low, high = tally.interval("W")
    assert low == pytest.approx(100 / 3) and high == pytest.approx(100 / 3)  # one track: nothing to resample
    for _ in range(3):
        tally.add(hit, target, others, track="b/0")
    low, high = tally.interval("W")
    assert low == 0.0 and high == pytest.approx(100 / 3)  # resamples of only b, or only a
    assert tally.row()["wrong 95% CI"] == f"0.0-{100 / 3:.1f}"
    assert math.isnan(PartTally().interval()[0]) and PartTally().row()["frames"] == 0


def test_subject_tally_auc_and_precision() -> None:
    tally = SubjectTally()
    gt = torch.tensor([0.0, 0.0, 10.0, 10.0])
    tally.add(gt.clone(), gt)  # IoU 1, error 0
    tally.add(torch.tensor([100.0, 0.0, 10.0, 10.0]), gt)  # IoU 0, error 100
    row = tally.row()
    assert row["P@20"] == 0.5
    assert row["AUC"] == pytest.approx(0.5 * 20 / 21)  # IoU 1 is above every threshold but 1


def _maps() -> PartMaps:
    heat = torch.zeros(1, 8, 8)
    heat[0, 1, 2] = 0.9  # a strong head at (16, 8): the other person
    heat[0, 2, 5] = 0.6  # the target's head at (40, 16)
    z = torch.zeros(1, 2, 8, 8)
    return PartMaps(heat, z, z, heat.clone(), (8.0, 8.0))


def test_baseline_a_takes_the_strongest_peak_inside_the_box() -> None:
    maps = _maps()
    assert peak_in_box(maps, 0, torch.tensor([0.0, 0.0, 64.0, 64.0])).tolist() == [16.0, 8.0]
    assert peak_in_box(maps, 0, torch.tensor([30.0, 10.0, 20.0, 40.0])).tolist() == [40.0, 16.0]


def test_baseline_b_takes_the_peak_nearest_the_expected_position() -> None:
    maps = _maps()
    box = torch.tensor([30.0, 12.0, 20.0, 40.0])  # top-centre (40, 16)
    assert peak_nearest(maps, 0, box, (0.5, 0.1), threshold=0.3).tolist() == [40.0, 16.0]
    # below the threshold no peak qualifies: falls back to the global maximum
    assert peak_nearest(maps, 0, box, (0.5, 0.1), threshold=0.95).tolist() == [16.0, 8.0]


def test_product_peak_decodes_the_element_product_maximum_with_the_part_offset() -> None:
    product = torch.zeros(1, 4, 4)
    product[0, 1, 2] = 0.7  # element x = 2, y = 1
    offset = torch.zeros(1, 2, 4, 4)
    offset[0, :, 1, 2] = torch.tensor([0.25, 0.5])
    maps = PartMaps(product, torch.ones(1, 2, 4, 4), offset, product, (8.0, 8.0))
    assert product_peak(maps, 0).tolist() == [18.0, 12.0]


def _person(track_id: int, head_visible: float | None) -> PersonAnn:
    head = None if head_visible is None else (1.0, 1.0, 2.0, 2.0)
    return PersonAnn(track_id, (0.0, 0.0, 4.0, 8.0), (head,), (0.0 if head is None else head_visible,))


def test_tracks_start_where_their_part_is_visible_enough() -> None:
    # track 0: head hidden in frame 0, 60 % visible in frame 1, fully visible from frame 2;
    # track 1: fully visible from frame 0; track 2: never more than half visible
    visible = {0: [None, 0.6, 1.0, 1.0], 1: [1.0, 1.0, 1.0, 1.0], 2: [0.5, 0.5, None, 0.5]}
    frames = tuple(FrameAnn(Path(f"{t}.jpg"), t, 8, 8, tuple(_person(k, v[t]) for k, v in visible.items()))
                   for t in range(4))
    seq = SequenceAnn("s", frames, (PartSpec(),))
    assert select_tracks(seq, "all", None) == [(0, 0), (1, 0), (2, 0)]  # first annotated frame
    assert select_tracks(seq, "all", None, init_visibility=0.5) == [(0, 1), (1, 0), (2, 0)]
    assert select_tracks(seq, "all", None, init_visibility=0.0) == [(0, 1), (1, 0), (2, 0)]  # parts annotated
    assert select_tracks(seq, "all", None, init_visibility=0.99) == [(0, 2), (1, 0)]  # track 2 never is
    assert select_tracks(seq, "all", 1, init_visibility=0.99) == [(0, 2)]
    late = SequenceAnn("s", frames[:3], (PartSpec(),))
    assert select_tracks(late, "all", None, init_visibility=0.99) == [(1, 0)]  # nothing left to track after 2
