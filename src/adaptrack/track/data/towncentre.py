"""Reader for the Oxford Town Centre ground truth (Benfold and Reid, CVPR 2011): the ``.top`` CSV.

One line per person and frame, twelve columns::

    personNumber,frameNumber,headValid,bodyValid,headLeft,headTop,headRight,headBottom,bodyLeft,bodyTop,bodyRight,bodyBottom

in pixels of the video, corners (left, top, right, bottom); frame numbers count from 0 and match the
video's frames. The shared clip's file starts with that header line; the full dataset's file has
none: both are accepted (a first line whose first field is not a number must be that header).

Rules (all documented here, none silent):

- The person box is the body box, clipped to the frame where it pokes out (as the PoseTrack reader
  does, :func:`~adaptrack.track.data.geometry.check_in_image`); a body box that does not overlap the
  frame, or sticks out by more than ``max_outside`` of the frame size, is an error. Lines with
  ``bodyValid`` 0 carry no person box and are skipped (the shared clip has none).
- The part is the head box, ``None`` when ``headValid`` is 0 or when less than ``min_part_inside`` of
  it is inside the frame.
- Errors name the file and the line: wrong column count, a value that is not a number, a box with a
  non-positive width or height (where its valid flag is 1), a frame number beyond the video, the
  same (person, frame) twice.
- Only frames with at least one person are listed (:class:`~adaptrack.track.data.types.SequenceAnn`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from adaptrack.common.errors import ConfigError, DataError
from adaptrack.track.data.frames import frame_size
from adaptrack.track.data.geometry import Box, BoxError, box_area, check_in_image, inside_fraction
from adaptrack.track.data.types import FrameAnn, PartSpec, PersonAnn, SequenceAnn
from adaptrack.track.data.video import frame_paths

TOP_COLUMNS: tuple[str, ...] = (
    "personNumber", "frameNumber", "headValid", "bodyValid", "headLeft", "headTop", "headRight", "headBottom",
    "bodyLeft", "bodyTop", "bodyRight", "bodyBottom",
)
"""The ``.top`` file's columns, in order."""


@dataclass(frozen=True)
class TopRow:
    """One line of a ``.top`` file, boxes as ``(x, y, w, h)`` before any clipping.

    Attributes:
        line: 1-based line number in the file.
        person: ``personNumber``.
        frame: ``frameNumber``.
        head: Head box, ``None`` when ``headValid`` is 0.
        body: Body box, ``None`` when ``bodyValid`` is 0.
    """

    line: int
    person: int
    frame: int
    head: Box | None
    body: Box | None


def read_top(top_path: str | Path) -> list[TopRow]:
    """Parse a ``.top`` file (with or without its header line).

    Raises:
        DataError: Missing file, wrong column count, a non-number, a non-integer person/frame/flag, a
            box with non-positive size, or a duplicate (person, frame); the message names the line.
    """
    path = Path(top_path)
    if not path.is_file():
        raise DataError("Town Centre ground-truth (.top) file is missing", path)
    rows: list[TopRow] = []
    seen: dict[tuple[int, int], int] = {}
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            fields = [f.strip() for f in text.strip().split(",")]
            if number == 1 and fields and not _is_number(fields[0]):
                if tuple(fields) != TOP_COLUMNS:
                    raise DataError(f"line 1: header {','.join(fields)!r} differs from the expected "
                                    f"{','.join(TOP_COLUMNS)!r}", path)
                continue
            row = _row(path, number, fields)
            key = (row.person, row.frame)
            if key in seen:
                raise DataError(f"line {number}: person {row.person} in frame {row.frame} appears twice "
                                f"(also line {seen[key]})", path)
            seen[key] = number
            rows.append(row)
    if not rows:
        raise DataError("no annotation line in the file", path)
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _row(path: Path, number: int, fields: list[str]) -> TopRow:
    if len(fields) != len(TOP_COLUMNS):
        raise DataError(f"line {number}: {len(fields)} columns, expected {len(TOP_COLUMNS)} "
                        f"({','.join(TOP_COLUMNS)})", path)
    values: list[float] = []
    for name, text in zip(TOP_COLUMNS, fields, strict=True):
        try:
            value = float(text)
        except ValueError:
            raise DataError(f"line {number}: column {name}: {text!r} is not a number", path) from None
        if not math.isfinite(value):
            raise DataError(f"line {number}: column {name}: {text!r} is not a finite number", path)
        values.append(value)
    ints = []
    for name, value in zip(TOP_COLUMNS[:4], values[:4], strict=True):
        if value != int(value) or value < 0:
            raise DataError(f"line {number}: column {name}: expected a non-negative integer, got {value:g}", path)
        ints.append(int(value))
    person, frame, head_valid, body_valid = ints
    boxes: list[Box | None] = []
    for what, valid, (left, top, right, bottom) in (("head", head_valid, values[4:8]),
                                                    ("body", body_valid, values[8:12])):
        if not valid:
            boxes.append(None)
            continue
        if right <= left or bottom <= top:
            raise DataError(f"line {number}: {what} box (left {left:g}, top {top:g}, right {right:g}, bottom "
                            f"{bottom:g}) has a non-positive width or height", path)
        boxes.append((left, top, right - left, bottom - top))
    return TopRow(line=number, person=person, frame=frame, head=boxes[0], body=boxes[1])


def default_frames_dir(video: str | Path) -> Path:
    """Cache folder for a video's extracted frames: ``$XDG_CACHE_HOME/adaptrack/frames/<video stem>``
    (``~/.cache`` when unset)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "adaptrack" / "frames" / Path(video).stem


def read_towncentre(top_path: str | Path, video_or_frames: str | Path, frames_dir: str | Path | None = None,
                    parts: Sequence[PartSpec] = (PartSpec("head"),),
                    frame_range: tuple[int, int] | None = None, max_outside: float = 0.5,
                    min_part_inside: float = 0.25) -> SequenceAnn:
    """Read a Town Centre ``.top`` file with the video's frames as :attr:`FrameAnn.path`.

    Args:
        top_path: The ground-truth CSV.
        video_or_frames: The video (its frames are extracted once into ``frames_dir`` as
            ``000000.jpg``, … by :func:`~adaptrack.track.data.video.extract_frames`) or a folder of
            its frames (naturally sorted; the i-th file is frame i).
        frames_dir: Where to extract a video's frames; default :func:`default_frames_dir`.
        parts: Only the head box (``PartSpec("head")``) is annotated in this dataset.
        frame_range: ``(start, stop)``: keep frames ``start <= frame < stop`` only.
        max_outside: Tolerated overshoot of a body box beyond the frame, as a fraction of the frame size.
        min_part_inside: Smallest share of a head box inside the frame for it to count.

    Returns:
        The annotated frames in frame order, named after the ``.top`` file's stem.

    Raises:
        ConfigError: A part other than the head box, or an empty ``frame_range``.
        DataError: A bad line (see :func:`read_top`), a frame number beyond the video, or a gross body box.
    """
    top_path, source = Path(top_path), Path(video_or_frames)
    parts = tuple(parts)
    if len(parts) != 1 or not parts[0].is_head_box:
        raise ConfigError(f"Town Centre annotates head boxes only: parts must be (PartSpec('head'),), got {parts}")
    if frame_range is not None and frame_range[1] <= frame_range[0]:
        raise ConfigError(f"frame_range {frame_range} is empty: give (start, stop) with stop > start")
    rows = read_top(top_path)
    files = frame_paths(source, None if source.is_dir() else (frames_dir or default_frames_dir(source)))
    width, height = frame_size(files[0])
    by_frame: dict[int, list[PersonAnn]] = {}
    for row in rows:
        if row.frame >= len(files):
            raise DataError(f"line {row.line}: frame {row.frame} is beyond the video ({len(files)} frames, "
                            f"0-{len(files) - 1}: {source})", top_path)
        if frame_range is not None and not frame_range[0] <= row.frame < frame_range[1]:
            continue
        if row.body is None:
            continue  # bodyValid 0: no person box
        try:
            body = check_in_image(row.body, width, height, max_outside)
        except BoxError as exc:
            raise DataError(f"line {row.line}: body box: {exc}", top_path) from exc
        head = None
        if row.head is not None and inside_fraction(row.head, width, height) >= min_part_inside:
            head = check_in_image(row.head, width, height, 1.0)
            head = head if box_area(head) > 0 else None
        by_frame.setdefault(row.frame, []).append(
            PersonAnn(track_id=row.person, box=body, parts=(head,), visibility=(0.0 if head is None else 1.0,)))
    frames = tuple(FrameAnn(path=files[index], frame_index=index, width=width, height=height,
                            people=tuple(sorted(people, key=lambda p: p.track_id)))
                   for index, people in sorted(by_frame.items()))
    if not frames:
        raise DataError(f"no annotated frame{'' if frame_range is None else f' in {frame_range}'}", top_path)
    return SequenceAnn(name=top_path.stem, frames=frames, parts=parts)


def inside_shares(rows: Sequence[TopRow], width: int, height: int) -> dict[tuple[int, int], float]:
    """``{(person, frame): share of the body box inside the width × height frame}`` before clipping."""
    return {(r.person, r.frame): inside_fraction(r.body, width, height) for r in rows if r.body is not None}
