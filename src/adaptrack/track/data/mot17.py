"""Reader for MOT17 sequences (https://motchallenge.net/data/MOT17/, after registration).

Layout of one sequence folder (e.g. ``MOT17/train/MOT17-02-FRCNN``)::

    seqinfo.ini        [Sequence] name, imDir, frameRate, seqLength, imWidth, imHeight, imExt
    gt/gt.txt          frame, id, left, top, width, height, conf, class, visibility   (one row per box)
    img1/000001.jpg    frames numbered from 1 (``imDir``/``imExt`` say where and what)

What the reader gives: **bodies and identities only**. MOT17 has no head (or any part) labels, so
every part of every person is ``None`` (visibility 0): the tracking-subject model and identity-level
evaluation can use these sequences, the part detector cannot learn from them.

Rules (all documented here, none silent):

- ``FrameAnn.frame_index`` is the MOT frame number minus 1 (0-based, like the other readers); every
  frame ``1..seqLength`` is listed, also those where nobody is annotated (MOT17 annotates every frame
  exhaustively, so an empty frame is a real observation, not a missing label).
- A row is kept when its ``conf`` (MOT's *consider* flag, 0 or 1) is 1, its ``class`` is in ``classes``
  (1: pedestrian; 2 person on vehicle, 7 static person, 8 distractor, 12 occluder, … are left out by
  default) and its ``visibility`` is at least ``min_visibility``. MOT17's per-box ``visibility`` is
  the share of the *body* that is visible; it is used only for this filter (``PersonAnn.visibility``
  is per part).
- Boxes slightly outside the image are clipped; a box that does not overlap the image or sticks out
  by more than ``max_outside`` of the image size is an error (``drop_outside=True`` drops such boxes
  instead, with one warning that counts them).
- A malformed row (not 9 numbers, non-integer frame/id/class, ``conf`` not 0/1, visibility outside
  [0, 1], frame outside ``1..seqLength``; a zero-size box in a kept row) or the same id twice in a frame is an error
  naming ``gt.txt`` and the line.
"""

from __future__ import annotations

import configparser
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

from adaptrack.common.errors import DataError
from adaptrack.track.data.frames import frame_size
from adaptrack.track.data.geometry import Box, BoxError, as_box, check_in_image
from adaptrack.track.data.types import FrameAnn, PartSpec, PersonAnn, SequenceAnn

DEFAULT_PARTS: tuple[PartSpec, ...] = (PartSpec(),)
PEDESTRIAN = 1
"""MOT17 ``class`` of pedestrians."""
DETECTORS: tuple[str, ...] = ("DPM", "FRCNN", "SDP")
"""The public-detection variants MOT17 ships each sequence in (identical images and ground truth)."""
_SEQINFO_KEYS: tuple[str, ...] = ("imDir", "frameRate", "seqLength", "imWidth", "imHeight", "imExt")
_VARIANT = re.compile(rf"^(?P<base>.+)-(?P<detector>{'|'.join(DETECTORS)})$")


def read_mot17(sequence_dir: str | Path, parts: Sequence[PartSpec] = DEFAULT_PARTS, min_visibility: float = 0.0,
               classes: Sequence[int] = (PEDESTRIAN,), check_images: bool = True, max_outside: float = 0.5,
               drop_outside: bool = False) -> SequenceAnn:
    """Read one MOT17 sequence folder (bodies and identities; every part is ``None``).

    Args:
        sequence_dir: Folder holding ``seqinfo.ini``, ``gt/gt.txt`` and the frames.
        parts: Part specifications the sequence carries (all ``None``: MOT17 has no part labels).
        min_visibility: Keep boxes whose annotated visibility is at least this (0 keeps all).
        classes: MOT17 classes to keep (1 = pedestrian).
        check_images: Check that every frame file exists with the size ``seqinfo.ini`` gives (header only).
        max_outside: Tolerated overshoot of a box beyond the image, as a fraction of the image size.
        drop_outside: Drop (with one warning) instead of refusing boxes beyond ``max_outside``.

    Returns:
        The sequence, named after its folder, with frames ``0..seqLength-1``.

    Raises:
        DataError: Missing folder/``seqinfo.ini``/``gt.txt`` (a test-split sequence has no ground truth),
            a missing or bad ``seqinfo.ini`` key, a bad ``gt.txt`` row, or (with ``check_images``) a
            missing, unreadable or wrongly sized frame; the message names the file, the line and the key.
    """
    sequence_dir = Path(sequence_dir)
    parts = tuple(parts)
    if not parts:
        raise DataError("at least one PartSpec is needed", sequence_dir)
    if not 0.0 <= min_visibility <= 1.0:
        raise DataError(f"min_visibility must be in [0, 1], got {min_visibility}", sequence_dir)
    if not sequence_dir.is_dir():
        raise DataError("MOT17 sequence folder is missing", sequence_dir)
    info = _seqinfo(sequence_dir / "seqinfo.ini")
    length, width, height = info["seqLength"], info["imWidth"], info["imHeight"]
    gt_path = sequence_dir / "gt" / "gt.txt"
    if not gt_path.is_file():
        raise DataError("ground truth is missing (MOT17 test sequences have none; use a train sequence)", gt_path)

    people: dict[int, dict[int, PersonAnn]] = {}
    lines: dict[tuple[int, int], int] = {}
    dropped = 0
    wanted = {int(c) for c in classes}
    none_parts = (None,) * len(parts)
    no_visibility = (0.0,) * len(parts)
    with open(gt_path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            frame, track, raw_box, consider, cls, visibility = _row(gt_path, line_no, line, length)
            if not consider or cls not in wanted or visibility < min_visibility:
                continue
            try:
                box = as_box(raw_box)
            except BoxError as exc:
                raise DataError(f"line {line_no} (frame {frame}, id {track}): {exc}", gt_path) from exc
            try:
                box = check_in_image(box, width, height, max_outside)
            except BoxError as exc:
                if drop_outside:
                    dropped += 1
                    continue
                raise DataError(f"line {line_no} (frame {frame}, id {track}): {exc}", gt_path) from exc
            if (frame, track) in lines:
                raise DataError(f"line {line_no}: id {track} appears twice in frame {frame} "
                                f"(also line {lines[frame, track]})", gt_path)
            lines[frame, track] = line_no
            people.setdefault(frame, {})[track] = PersonAnn(track_id=track, box=box, parts=none_parts,
                                                            visibility=no_visibility)
    if dropped:
        warnings.warn(f"{gt_path}: dropped {dropped} box(es) outside the {width}x{height} image", stacklevel=2)

    image_dir = sequence_dir / info["imDir"]
    frames: list[FrameAnn] = []
    for number in range(1, length + 1):
        path = image_dir / f"{number:06d}{info['imExt']}"
        if check_images:
            size = frame_size(path)
            if size != (width, height):
                raise DataError(f"frame is {size[0]}x{size[1]}, seqinfo.ini says imWidth={width}, "
                                f"imHeight={height}", path)
        in_frame = people.get(number, {})
        frames.append(FrameAnn(path=path, frame_index=number - 1, width=width, height=height,
                               people=tuple(in_frame[t] for t in sorted(in_frame))))
    return SequenceAnn(name=sequence_dir.name, frames=tuple(frames), parts=parts)


def read_mot17_dir(root: str | Path, parts: Sequence[PartSpec] = DEFAULT_PARTS, min_visibility: float = 0.0,
                   classes: Sequence[int] = (PEDESTRIAN,), detector: str | None = "FRCNN",
                   check_images: bool = True) -> list[SequenceAnn]:
    """Read every sequence of a MOT17 split folder, one detector variant of each.

    MOT17 ships every sequence three times (``-DPM``, ``-FRCNN``, ``-SDP``) with the same frames and the
    same ground truth; reading all three would triple every identity. Of each sequence the ``detector``
    variant is read, or, where that one is absent, the first variant present in name order.

    Args:
        root: A split folder, e.g. ``MOT17/train``, holding sequence folders with a ``seqinfo.ini``.
        parts: As in :func:`read_mot17`.
        min_visibility: As in :func:`read_mot17`.
        classes: As in :func:`read_mot17`.
        detector: The variant to prefer (one of :data:`DETECTORS`); ``None`` reads every folder.
        check_images: As in :func:`read_mot17`.

    Returns:
        One :class:`SequenceAnn` per sequence, sorted by folder name.

    Raises:
        DataError: The folder is missing or holds no sequence, ``detector`` is unknown, or any sequence is bad.
    """
    root = Path(root)
    if detector is not None and detector not in DETECTORS:
        raise DataError(f"detector must be one of {', '.join(DETECTORS)} or None, got {detector!r}", root)
    if not root.is_dir():
        raise DataError("MOT17 split folder is missing", root)
    folders = sorted(p for p in root.iterdir() if (p / "seqinfo.ini").is_file())
    if not folders:
        raise DataError("no sequence folder (with a seqinfo.ini) in this folder; expected e.g. MOT17/train", root)
    chosen = folders if detector is None else select_variants(folders, detector)
    return [read_mot17(f, parts, min_visibility, classes, check_images) for f in chosen]


def select_variants(folders: Sequence[Path], detector: str = "FRCNN") -> list[Path]:
    """One folder per sequence: the ``detector`` variant, else the first in name order (see :func:`read_mot17_dir`).

    Folders whose names carry no detector suffix are each their own sequence.
    """
    groups: dict[str, list[Path]] = {}
    for folder in sorted(folders):
        match = _VARIANT.match(folder.name)
        groups.setdefault(match["base"] if match else folder.name, []).append(folder)
    chosen: list[Path] = []
    for variants in groups.values():
        preferred = [f for f in variants if f.name.endswith(f"-{detector}")]
        chosen.append(preferred[0] if preferred else variants[0])
    return sorted(chosen)


def _seqinfo(path: Path) -> dict[str, str | int]:
    """``imDir``, ``imExt`` (strings) and ``frameRate``, ``seqLength``, ``imWidth``, ``imHeight`` (positive ints)."""
    if not path.is_file():
        raise DataError("seqinfo.ini is missing (every MOT17 sequence folder has one)", path)
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keep the camelCase keys
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise DataError(f"not a valid INI file ({exc})", path) from exc
    if not parser.has_section("Sequence"):
        raise DataError("section [Sequence] is missing", path)
    section = parser["Sequence"]
    info: dict[str, str | int] = {}
    for key in _SEQINFO_KEYS:
        if key not in section or not section[key].strip():
            raise DataError(f"[Sequence] key '{key}': missing", path)
        value = section[key].strip()
        if key in ("imDir", "imExt"):
            info[key] = value
            continue
        try:
            number = int(value)
        except ValueError:
            number = 0
        if number <= 0:
            raise DataError(f"[Sequence] key '{key}': expected a positive integer, got {value!r}", path)
        info[key] = number
    return info


def _row(path: Path, line_no: int, line: str, length: int) -> tuple[int, int, Box, bool, int, float]:
    """``(frame, id, (left, top, width, height), consider, class, visibility)`` of one ``gt.txt`` row (the box
    is checked by the caller, only for rows it keeps)."""
    fields = [f.strip() for f in line.split(",")]
    if len(fields) != 9:
        raise DataError(f"line {line_no}: expected 9 comma-separated values (frame, id, left, top, width, "
                        f"height, conf, class, visibility), got {len(fields)}: {line.strip()!r}", path)
    try:
        values = [float(f) for f in fields]
    except ValueError as exc:
        raise DataError(f"line {line_no}: non-numeric value ({exc}): {line.strip()!r}", path) from exc
    names = ("frame", "id", "left", "top", "width", "height", "conf", "class", "visibility")
    for name, value in zip(names, values, strict=True):
        if not math.isfinite(value):
            raise DataError(f"line {line_no}: {name} is not finite ({value})", path)
    for name, value in (("frame", values[0]), ("id", values[1]), ("class", values[7])):
        if not value.is_integer():
            raise DataError(f"line {line_no}: {name} must be an integer, got {value:g}", path)
    frame, track, cls = int(values[0]), int(values[1]), int(values[7])
    if not 1 <= frame <= length:
        raise DataError(f"line {line_no}: frame {frame} outside 1..{length} (seqLength of seqinfo.ini)", path)
    if values[6] not in (0.0, 1.0):
        raise DataError(f"line {line_no}: conf (the consider flag) must be 0 or 1, got {values[6]:g}", path)
    visibility = values[8]
    if not 0.0 <= visibility <= 1.0:
        raise DataError(f"line {line_no}: visibility must be in [0, 1], got {visibility:g}", path)
    box = (values[2], values[3], values[4], values[5])
    return frame, track, box, values[6] == 1.0, cls, visibility
