"""Pure box geometry on ``(x, y, w, h)`` boxes (top-left corner, pixel units).

Every function here is side-effect free and unit-tested; the reader, the clip sampler and the
synthetic scene generator share them so that "inside", "clipped" and "visible" mean the same thing
everywhere.

One vocabulary with :mod:`adaptrack.track.geometry`: an idea both modules implement has the same name
in both (``box_centre``, ``box_iou``, ``scale_boxes``), on float tuples here and on tensors there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from adaptrack.track.data.types import Box


class BoxError(ValueError):
    """A box is malformed or unusable; the reader turns it into a :class:`DataError` with context."""


def as_box(values: object) -> Box:
    """Convert a JSON ``[x, y, w, h]`` value into a :data:`Box`.

    Args:
        values: Four finite numbers.

    Returns:
        The box as a tuple of floats.

    Raises:
        BoxError: Not four numbers, a non-finite value, or a width/height that is zero or negative.
    """
    if not isinstance(values, Sequence) or isinstance(values, str) or len(values) != 4:
        raise BoxError(f"expected [x, y, w, h] (4 numbers), got {values!r}")
    try:
        x, y, w, h = (float(v) for v in values)
    except (TypeError, ValueError) as exc:
        raise BoxError(f"expected [x, y, w, h] (4 numbers), got {values!r}") from exc
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise BoxError(f"box has a non-finite value: {values!r}")
    if w <= 0 or h <= 0:
        raise BoxError(f"box has zero or negative size (w={w:g}, h={h:g})")
    return (x, y, w, h)


def box_area(box: Box) -> float:
    """Area ``w * h`` (zero for degenerate boxes)."""
    return max(0.0, box[2]) * max(0.0, box[3])


def box_centre(box: Box) -> tuple[float, float]:
    """Centre ``(cx, cy)``."""
    return (box[0] + box[2] / 2.0, box[1] + box[3] / 2.0)


def intersection_area(a: Box, b: Box) -> float:
    """Area of the overlap of two boxes (zero when disjoint)."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union (zero when both are empty)."""
    inter = intersection_area(a, b)
    union = box_area(a) + box_area(b) - inter
    return inter / union if union > 0 else 0.0


def contains_point(box: Box, x: float, y: float) -> bool:
    """True when ``(x, y)`` lies inside ``box`` (edges included)."""
    return box[0] <= x <= box[0] + box[2] and box[1] <= y <= box[1] + box[3]


def inside_fraction(box: Box, width: float, height: float) -> float:
    """Share of the box's area that lies inside a ``width`` × ``height`` image."""
    area = box_area(box)
    return intersection_area(box, (0.0, 0.0, width, height)) / area if area > 0 else 0.0


def clip_box(box: Box, width: float, height: float) -> Box:
    """Clip a box to the image ``[0, width] × [0, height]``; the result may have zero size."""
    x0 = min(max(box[0], 0.0), width)
    y0 = min(max(box[1], 0.0), height)
    x1 = min(max(box[0] + box[2], 0.0), width)
    y1 = min(max(box[1] + box[3], 0.0), height)
    return (x0, y0, x1 - x0, y1 - y0)


def check_in_image(box: Box, width: float, height: float, max_outside: float = 0.5) -> Box:
    """Accept a box that is slightly out of the image and clip it; reject a gross one.

    A box is *gross* when it does not overlap the image at all, or when one of its edges lies beyond
    the image by more than ``max_outside`` times the image size in that direction. PoseTrack18 boxes
    built from keypoints with a margin often stick out a little (the shared sample has a head box
    whose top is 29 px above the frame), so those are clipped rather than rejected.

    Args:
        box: The annotated box.
        width: Image width.
        height: Image height.
        max_outside: Tolerated overshoot per edge as a fraction of the image size.

    Returns:
        The box clipped to the image.

    Raises:
        BoxError: The box is gross.
    """
    x, y, w, h = box
    over_x = max(0.0, -x, x + w - width)
    over_y = max(0.0, -y, y + h - height)
    if intersection_area(box, (0.0, 0.0, width, height)) <= 0:
        raise BoxError(f"box {_fmt(box)} lies outside the {width:g}x{height:g} image")
    if over_x > max_outside * width or over_y > max_outside * height:
        raise BoxError(
            f"box {_fmt(box)} extends {max(over_x, over_y):.0f} px beyond the {width:g}x{height:g} image "
            f"(tolerated: {max_outside:.0%} of the image size)"
        )
    return clip_box(box, width, height)


def square_around(x: float, y: float, side: float) -> Box:
    """A ``side`` × ``side`` box centred on ``(x, y)``."""
    return (x - side / 2.0, y - side / 2.0, side, side)


def box_from_points(xs: Sequence[float], ys: Sequence[float], pad: float = 0.1) -> Box:
    """Tight box around points, enlarged by ``pad`` × its size on every side.

    Args:
        xs: Point x coordinates (at least two points).
        ys: Point y coordinates.
        pad: Margin added on each side as a fraction of the tight box's width/height.

    Returns:
        The padded box.

    Raises:
        BoxError: Fewer than two points, or the points span zero width or height.
    """
    if len(xs) < 2 or len(xs) != len(ys):
        raise BoxError(f"need at least two points to derive a box, got {len(xs)}")
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    w, h = x1 - x0, y1 - y0
    if w <= 0 or h <= 0:
        raise BoxError("points span zero width or height")
    return (x0 - pad * w, y0 - pad * h, w * (1 + 2 * pad), h * (1 + 2 * pad))


def scale_boxes(box: Box, sx: float, sy: float) -> Box:
    """Box in an image resized by ``sx`` horizontally and ``sy`` vertically (one box; the tensor
    :func:`adaptrack.track.geometry.scale_boxes` takes any number)."""
    return (box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy)


def head_in_box(head: Box, body: Box, min_overlap: float = 0.5) -> bool:
    """True when ``head`` *lies inside* ``body``: its centre is inside and ≥ ``min_overlap`` of its area.

    This is the definition behind the ``crowded`` preset's share ("another person's head lies inside
    the target's body box").
    """
    cx, cy = box_centre(head)
    area = box_area(head)
    return contains_point(body, cx, cy) and area > 0 and intersection_area(head, body) >= min_overlap * area


def _fmt(box: Box) -> str:
    return "[" + ", ".join(f"{v:.1f}" for v in box) + "]"
