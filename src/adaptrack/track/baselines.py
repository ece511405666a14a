"""Classical single-person baselines with the :class:`~adaptrack.track.inference.tracker.Tracker` interface.

Both follow the body box and put the head at its expected place in the box, ``(x + 0.5 w, y + 0.1 h)``
(:data:`HEAD_POSITION`, the same top-centre prior as the evaluation's baseline (b)), with a square head
box of side :data:`HEAD_SIZE` × the box height (the figure-drawing canon of a body eight heads tall,
fixed a priori; the size is only drawn, the evaluation scores the position). Neither needs training.

* :class:`MILBaseline`: OpenCV's MIL tracker (Babenko et al., online multiple-instance learning) on
  the body box. When MIL reports a failure the box stays where it was (it coasts) and the result
  says ``occluded``.
* :class:`HOGBaseline`: OpenCV's HOG + linear SVM people detector (Dalal and Triggs), run on a
  window :data:`HOG_SEARCH` × the previous box's size around its centre (full-frame HOG on 1080p
  takes seconds), resized so that a person as tall as the previous box is :data:`HOG_PERSON_HEIGHT`
  px tall (the detector's 64 × 128 window holds a person about 96 px tall; the pyramid then finds
  people from about 0.8 to 1.8 times that height). Each detection window is turned into a body box by
  removing the margin the detector was trained with (Dalal and Triggs: about 16 px on every side of
  the 64 × 128 window, :data:`HOG_MARGIN`). The box with the highest IoU with the previous box is kept
  when that IoU is at least :data:`HOG_MIN_IOU`; else the box coasts. Detections scoring below
  :data:`HOG_MIN_SCORE` are dropped.

Frames are RGB uint8, ``(H, W, 3)`` arrays or ``(3, H, W)`` tensors, as the tracker takes them. The
settings are fixed here, chosen a priori and not tuned on any annotated frame.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from adaptrack.common.errors import ConfigError, DataError
from adaptrack.track.data.geometry import Box, box_iou, clip_box
from adaptrack.track.inference.tracker import PartResult, TrackResult, frame_tensor, valid_box

HEAD_POSITION = (0.5, 0.1)
"""Expected head centre as a fraction of the body box (across, down)."""
HEAD_SIZE = 0.125
"""Side of the square head box as a fraction of the body box height."""
HOG_SEARCH = 2.0
"""Side of HOG's search window as a multiple of the previous box's width and height."""
HOG_MIN_IOU = 0.3
"""Smallest IoU between a HOG detection and the previous box for the track to take it."""
HOG_PERSON_HEIGHT = 120
"""The search window is resized so the previous box is this tall (HOG's 128 px window holds a 96 px person)."""
HOG_MIN_SCORE = 1.0
"""Smallest SVM score of a detection (OpenCV's default is 0). Chosen on the dev protocol only (tracks from
frame 0, frames 1-62 of the Town Centre clip: head hit 2.2 / 2.5 / 4.7 % for 0 / 0.5 / 1.0), never on frames 64-125."""
HOG_MARGIN = (16 / 64, 16 / 128)
"""Margin of the detection window around the person, as a share of its width and height (each side)."""


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - a dependency
        raise ConfigError("the OpenCV baselines need opencv-python-headless: "
                          "pip install -c constraints.txt opencv-python-headless") from exc
    return cv2


def _bgr(frame: torch.Tensor | np.ndarray) -> np.ndarray:
    """RGB frame -> ``(H, W, 3)`` uint8 BGR array, C-contiguous (what OpenCV takes)."""
    rgb = frame_tensor(frame).permute(1, 2, 0).numpy()  # (H, W, 3)
    return np.ascontiguousarray(rgb[..., ::-1])


def head_result(box: Box, name: str = "head", visible: bool = True) -> PartResult:
    """The head at its expected place in ``box`` (see :data:`HEAD_POSITION`, :data:`HEAD_SIZE`)."""
    x, y, w, h = box
    side = HEAD_SIZE * h
    return PartResult(name, (x + HEAD_POSITION[0] * w, y + HEAD_POSITION[1] * h), (side, side), 1.0, visible)


def _check_box(box: tuple[float, float, float, float], width: int, height: int, frame_name: str) -> Box:
    b = valid_box(box)
    if b is None:
        raise DataError(f"initial box {tuple(box)} must be a finite (x, y, w, h) with a positive width and height",
                        frame_name)
    clipped = clip_box(tuple(float(v) for v in b), width, height)  # type: ignore[arg-type]
    if clipped[2] < 1 or clipped[3] < 1:
        raise DataError(f"initial box {tuple(box)} is outside the {width}x{height} frame", frame_name)
    return clipped


class MILBaseline:
    """OpenCV's MIL tracker on the body box, the head at its expected place (see module docstring)."""

    parts: ClassVar[list[str]] = ["head"]

    def __init__(self) -> None:
        self._tracker: Any = None
        self.box: Box | None = None

    def copy(self) -> MILBaseline:
        """A fresh baseline (own state)."""
        return MILBaseline()

    def initialize(self, frame: torch.Tensor | np.ndarray, box: tuple[float, float, float, float],
                   frame_name: str = "frame 0") -> None:
        """Start on ``box`` (x, y, w, h pixels) of ``frame``.

        Raises:
            DataError: The box has no positive size or lies outside the frame.
        """
        cv2 = _cv2()
        image = _bgr(frame)
        self.box = _check_box(box, image.shape[1], image.shape[0], frame_name)
        create = getattr(cv2, "TrackerMIL_create", None) or cv2.TrackerMIL.create
        self._tracker = create()
        x, y, w, h = self.box
        self._tracker.init(image, (round(x), round(y), max(1, round(w)), max(1, round(h))))

    def track(self, frame: torch.Tensor | np.ndarray) -> TrackResult:
        """The body box in the next frame and the head in it; ``occluded`` when MIL lost the target.

        Raises:
            RuntimeError: :meth:`initialize` was not called.
        """
        if self._tracker is None or self.box is None:
            raise RuntimeError("call initialize(frame, box) before track()")
        found, rect = self._tracker.update(_bgr(frame))
        if found:
            self.box = tuple(float(v) for v in rect)  # type: ignore[assignment]
        assert self.box is not None
        return TrackResult(self.box, 1.0 if found else 0.0, [head_result(self.box)], occluded=not found)


class HOGBaseline:
    """OpenCV's HOG people detector associated frame to frame by IoU (see module docstring).

    Args:
        search: Search window side as a multiple of the previous box (:data:`HOG_SEARCH`).
        min_iou: Smallest IoU with the previous box to accept a detection (:data:`HOG_MIN_IOU`).
        person_height: Resize the window so the previous box is this tall.
        min_score: Smallest SVM score of a detection (``detectMultiScale``'s ``hitThreshold``,
            :data:`HOG_MIN_SCORE`).
    """

    parts: ClassVar[list[str]] = ["head"]

    def __init__(self, search: float = HOG_SEARCH, min_iou: float = HOG_MIN_IOU,
                 person_height: int = HOG_PERSON_HEIGHT, min_score: float = HOG_MIN_SCORE) -> None:
        if search < 1 or not 0 <= min_iou <= 1 or person_height < 96:
            raise ConfigError(f"HOGBaseline needs search >= 1, 0 <= min_iou <= 1 and person_height >= 96; got "
                              f"{search}, {min_iou}, {person_height}")
        self.search, self.min_iou, self.person_height = search, min_iou, person_height
        self.min_score = min_score
        self._hog: Any = None
        self.box: Box | None = None

    def copy(self) -> HOGBaseline:
        """A fresh baseline with the same settings."""
        return HOGBaseline(self.search, self.min_iou, self.person_height, self.min_score)

    def initialize(self, frame: torch.Tensor | np.ndarray, box: tuple[float, float, float, float],
                   frame_name: str = "frame 0") -> None:
        """Start on ``box`` (x, y, w, h pixels) of ``frame``.

        Raises:
            DataError: The box has no positive size or lies outside the frame.
        """
        cv2 = _cv2()
        if not hasattr(cv2, "HOGDescriptor"):
            raise ConfigError(f"OpenCV {cv2.__version__} has no HOGDescriptor (OpenCV 5 moved it to the contrib "
                              "package); install the pinned opencv-python-headless 4.x (constraints.txt)")
        if self._hog is None:
            self._hog = cv2.HOGDescriptor()
            self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        image = _bgr(frame)
        self.box = _check_box(box, image.shape[1], image.shape[0], frame_name)

    def detect(self, image: np.ndarray, box: Box) -> list[Box]:
        """HOG detections inside the search window around ``box``, as body boxes ``(x, y, w, h)`` in frame
        pixels (the detection windows without their margin, :data:`HOG_MARGIN`)."""
        cv2 = _cv2()
        H, W = image.shape[:2]
        x, y, w, h = box
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = max(0, int(cx - self.search * w / 2)), max(0, int(cy - self.search * h / 2))
        x1, y1 = min(W, int(cx + self.search * w / 2) + 1), min(H, int(cy + self.search * h / 2) + 1)
        window = image[y0:y1, x0:x1]  # (h', w', 3)
        scale = self.person_height / max(h, 1.0)
        if window.size == 0:
            return []
        window = cv2.resize(window, None, fx=scale, fy=scale,
                            interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA)
        if window.shape[0] < 128 or window.shape[1] < 64:
            return []
        rects, _ = self._hog.detectMultiScale(window, winStride=(8, 8), padding=(8, 8), scale=1.05,
                                                  hitThreshold=self.min_score)
        mx, my = HOG_MARGIN
        return [(x0 + (rx + mx * rw) / scale, y0 + (ry + my * rh) / scale, (1 - 2 * mx) * rw / scale,
                 (1 - 2 * my) * rh / scale) for rx, ry, rw, rh in rects]

    def track(self, frame: torch.Tensor | np.ndarray) -> TrackResult:
        """The associated detection (or the coasting box, ``occluded``) and the head in it.

        Raises:
            RuntimeError: :meth:`initialize` was not called.
        """
        if self.box is None:
            raise RuntimeError("call initialize(frame, box) before track()")
        detections = self.detect(_bgr(frame), self.box)
        best = max(detections, key=lambda d: box_iou(d, self.box), default=None)  # type: ignore[arg-type]
        found = best is not None and box_iou(best, self.box) >= self.min_iou
        if found:
            self.box = best
        return TrackResult(self.box, 1.0 if found else 0.0, [head_result(self.box)], occluded=not found)
