"""Pure box helpers shared by the reader, the clip sampler and the generator."""

from __future__ import annotations

import math

import pytest

from adaptrack.track.data.geometry import (
    BoxError,
    as_box,
    box_area,
    box_centre,
    box_from_points,
    box_iou,
    check_in_image,
    clip_box,
    contains_point,
    head_in_box,
    inside_fraction,
    intersection_area,
    scale_boxes,
    square_around,
)


def test_as_box_accepts_numbers_and_rejects_bad_values() -> None:
    assert as_box([1, 2, 3, 4]) == (1.0, 2.0, 3.0, 4.0)
    for bad, reason in (([1, 2, 3], "4 numbers"), ("abcd", "4 numbers"), ([1, 2, "x", 4], "4 numbers"),
                        ([0, 0, 0, 5], "zero or negative"), ([0, 0, 5, -1], "zero or negative"),
                        ([0, math.nan, 5, 5], "non-finite")):
        with pytest.raises(BoxError, match=reason):
            as_box(bad)


def test_area_centre_intersection_iou() -> None:
    a, b = (0.0, 0.0, 10.0, 10.0), (5.0, 5.0, 10.0, 10.0)
    assert box_area(a) == 100 and box_centre(b) == (10.0, 10.0)
    assert intersection_area(a, b) == 25
    assert box_iou(a, b) == pytest.approx(25 / 175)
    assert box_iou(a, (20.0, 20.0, 1.0, 1.0)) == 0.0
    assert contains_point(a, 10.0, 0.0) and not contains_point(a, 10.1, 5.0)


def test_clip_and_inside_fraction() -> None:
    box = (-5.0, 90.0, 20.0, 20.0)
    assert clip_box(box, 100, 100) == (0.0, 90.0, 15.0, 10.0)
    assert inside_fraction(box, 100, 100) == pytest.approx(150 / 400)
    assert clip_box((200.0, 0.0, 5.0, 5.0), 100, 100)[2] == 0.0


def test_check_in_image_clips_slight_and_rejects_gross() -> None:
    assert check_in_image((-10.0, 5.0, 50.0, 50.0), 100, 100) == (0.0, 5.0, 40.0, 50.0)
    with pytest.raises(BoxError, match="outside"):
        check_in_image((150.0, 5.0, 10.0, 10.0), 100, 100)
    with pytest.raises(BoxError, match="beyond"):
        check_in_image((-80.0, 5.0, 100.0, 10.0), 100, 100)  # 80 px > half the width
    assert check_in_image((-80.0, 5.0, 100.0, 10.0), 100, 100, max_outside=1.0)[2] == 20.0


def test_points_square_scale() -> None:
    assert box_from_points([0.0, 10.0], [0.0, 20.0], pad=0.1) == pytest.approx((-1.0, -2.0, 12.0, 24.0))
    with pytest.raises(BoxError):
        box_from_points([1.0], [1.0])
    with pytest.raises(BoxError):
        box_from_points([1.0, 1.0], [0.0, 5.0])  # zero width
    assert square_around(10.0, 20.0, 4.0) == (8.0, 18.0, 4.0, 4.0)
    assert scale_boxes((10.0, 20.0, 30.0, 40.0), 0.5, 2.0) == (5.0, 40.0, 15.0, 80.0)


def test_head_in_box_needs_centre_and_half_the_area() -> None:
    body = (0.0, 0.0, 20.0, 50.0)
    assert head_in_box((5.0, 5.0, 6.0, 6.0), body)
    assert not head_in_box((18.0, 5.0, 6.0, 6.0), body)  # centre at x = 21, outside
    assert not head_in_box((15.0, -5.0, 4.0, 12.0), body, min_overlap=0.7)  # 7/12 of it inside
    assert head_in_box((15.0, -5.0, 4.0, 12.0), body, min_overlap=0.5)
