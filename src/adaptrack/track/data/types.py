"""Annotation and sample types of the part-aware tracker's data layer.

Every box is ``(x, y, w, h)`` in pixel coordinates of the original frame, ``x, y`` the top-left
corner, as the PoseTrack18/COCO ``bbox`` field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PartSpec:
    """Which body part to track; K of them may be configured.

    Attributes:
        name: ``"head"`` reads the annotation's ``bbox_head``; any other name is a label for a
            keypoint part (then ``keypoint`` names the keypoint, defaulting to ``name``).
        keypoint: A PoseTrack18 keypoint name from ``categories`` (e.g. ``"nose"``, ``"left_eye"``);
            ``None`` for the head box, or to use ``name`` as the keypoint name.
        size: For keypoint parts, the side of the square part box centred on the keypoint, as a
            fraction of the person box height. Ignored for the head box.
    """

    name: str = "head"
    keypoint: str | None = None
    size: float = 0.25

    @property
    def is_head_box(self) -> bool:
        """True when the part is the annotated ``bbox_head`` rather than a keypoint."""
        return self.name == "head" and self.keypoint is None

    @property
    def keypoint_name(self) -> str:
        """The keypoint this part is centred on (``keypoint`` if set, else ``name``)."""
        return self.keypoint if self.keypoint is not None else self.name


@dataclass(frozen=True)
class PersonAnn:
    """One annotated person in one frame.

    Attributes:
        track_id: Identity of the person across the sequence.
        box: Person box ``(x, y, w, h)``.
        parts: One box per configured :class:`PartSpec`, ``None`` where the part is not visible or
            not annotated.
        visibility: Per part, the share of it that is visible: the synthetic generator's
            ``head_visible`` for head boxes, 1 for other annotated parts and annotations without the
            key, 0 for parts that are not annotated. The reader always fills it; empty (a person
            built without it) counts every annotated part as fully visible.
    """

    track_id: int
    box: Box
    parts: tuple[Box | None, ...]
    visibility: tuple[float, ...] = ()

    def visible_share(self, k: int) -> float:
        """Visible share of part ``k``: 0 when it is not annotated, else the annotated visibility
        (1 when the annotation gives none)."""
        if self.parts[k] is None:
            return 0.0
        return self.visibility[k] if self.visibility else 1.0


@dataclass(frozen=True)
class FrameAnn:
    """One annotated frame.

    Attributes:
        path: Image file of the frame.
        frame_index: Position of the frame in its video (0-based, from ``frame_id``/``file_name``).
        width: Image width in pixels.
        height: Image height in pixels.
        people: Every annotated person in the frame.
    """

    path: Path
    frame_index: int
    width: int
    height: int
    people: tuple[PersonAnn, ...]

    def person(self, track_id: int) -> PersonAnn | None:
        """The person with ``track_id`` in this frame, or ``None``."""
        for p in self.people:
            if p.track_id == track_id:
                return p
        return None


@dataclass(frozen=True)
class SequenceAnn:
    """The annotated frames of one video, in frame order.

    Attributes:
        name: Sequence name (the video folder name, e.g. ``"003418_mpii_test"``).
        frames: Annotated frames sorted by ``frame_index``; unannotated frames are not listed.
        parts: The part specifications, in the order of :attr:`PersonAnn.parts`.
        target_track: The designated target track when the file names one (synthetic scenes
            write it), else ``None``.
    """

    name: str
    frames: tuple[FrameAnn, ...]
    parts: tuple[PartSpec, ...]
    target_track: int | None = None

    @property
    def track_ids(self) -> list[int]:
        """Sorted track ids that appear in any frame."""
        return sorted({p.track_id for f in self.frames for p in f.people})


@dataclass
class Clip:
    """One training/evaluation sample: T consecutive frames of one sequence, one target track.

    Attributes:
        frames: ``(T, 3, H, W)`` uint8 RGB.
        target_box: ``(T, 4)`` float x, y, w, h of the tracked person; NaN rows where absent.
        target_parts: ``(T, K, 4)`` the tracked person's part boxes; NaN where absent.
        other_parts: ``(T, M, K, 4)`` part boxes of the other people, padded with NaN to M.
        template_box: ``(4,)`` target box in frame 0 (the template).
        sequence: Sequence name.
        track_id: Tracked person's track id.
        frame_indices: Video frame index of each of the T frames.
        other_boxes: ``(T, M, 4)`` person boxes of the other people (same order and padding as
            ``other_parts``). Slot ``m`` is the same person in every frame of the clip.
    """

    frames: torch.Tensor
    target_box: torch.Tensor
    target_parts: torch.Tensor
    other_parts: torch.Tensor
    template_box: torch.Tensor
    sequence: str
    track_id: int
    frame_indices: list[int]
    other_boxes: torch.Tensor = field(default_factory=lambda: torch.empty(0, 0, 4))


@dataclass
class ClipBatch:
    """Several clips stacked for one mini-batch (see :func:`adaptrack.track.data.collate_clips`).

    Attributes:
        frames: ``(B, T, 3, H, W)`` uint8 RGB.
        target_box: ``(B, T, 4)`` tracked person boxes; NaN rows where absent.
        target_parts: ``(B, T, K, 4)`` tracked person's part boxes; NaN where absent.
        other_parts: ``(B, T, M, K, 4)`` other people's part boxes, NaN-padded to the batch's M.
        other_boxes: ``(B, T, M, 4)`` other people's person boxes, NaN-padded like ``other_parts``.
        template_box: ``(B, 4)`` target box in each clip's frame 0.
        track_ids: ``(B,)`` int64 tracked person per clip.
        sequences: Sequence name per clip.
        frame_indices: Video frame indices per clip.
        frame_size: ``(H, W)`` of the frames the clips were cut from (before any crop).
        crop_origin: ``(B, 2)`` long x, y pixel of each clip's window in those frames (zeros
            without a crop).
        flipped: The frames were mirrored left-right after the crop (within each window).
    """

    frames: torch.Tensor
    target_box: torch.Tensor
    target_parts: torch.Tensor
    other_parts: torch.Tensor
    other_boxes: torch.Tensor
    template_box: torch.Tensor
    track_ids: torch.Tensor
    sequences: list[str]
    frame_indices: list[list[int]]
    frame_size: tuple[int, int] | None = None
    crop_origin: torch.Tensor | None = None
    flipped: bool = False

    @property
    def full_size(self) -> tuple[int, int]:
        """``(H, W)`` of the uncropped frames."""
        return self.frame_size or (int(self.frames.shape[-2]), int(self.frames.shape[-1]))

    @property
    def origins(self) -> torch.Tensor:
        """``(B, 2)`` crop origins (zeros without a crop)."""
        if self.crop_origin is not None:
            return self.crop_origin
        return torch.zeros(self.frames.shape[0], 2, dtype=torch.long)
