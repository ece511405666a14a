"""Reader for CrowdHuman ``.odgt`` annotations (still images with full-body, visible-body and head boxes).

Layout (as distributed at https://www.crowdhuman.org/, after accepting its licence)::

    <root>/annotation_train.odgt            one JSON object per line
    <root>/Images/<ID>.jpg                  the images (``images_root``)

Each line is ``{"ID": "273271,c9db000d5146c15", "gtboxes": [...]}``; each ``gtboxes`` entry has ``tag``
(``"person"`` or ``"mask"``), ``fbox``/``vbox``/``hbox`` (``[x, y, w, h]`` pixels: full body including
its occluded extent, visible body, head), ``head_attr`` (``ignore``/``occ``/``unsure``, 0 or 1) and
``extra`` (``ignore``, ``box_id``, ``occ``).

How the images map onto the tracker's types: every image is its own one-frame :class:`SequenceAnn`
(named by its ``ID``, ``frame_index`` 0), so images of different sizes never share a sequence and
``ClipDataset(sequences, clip_len=1)`` yields one sample per (image, person) — the way the part
detector trains. ``track_id`` is the person's index in ``gtboxes`` (stable, unique within the image).

Rules (all documented here, none silent):

- ``tag == "person"`` entries become people; the body box is ``fbox`` (or ``vbox`` with
  ``body="vbox"``). Boxes slightly outside the image are clipped, a box that does not overlap the image
  or sticks out by more than ``max_outside`` of the image size is an error (see
  :func:`geometry.check_in_image`; the default 1.0 tolerates CrowdHuman's full boxes of people cut by
  the image border, whose occluded extent is annotated beyond it).
- ``extra.ignore == 1`` persons and ``tag == "mask"`` entries (crowds, reflections, pictures of people)
  are **not** people: they are dropped from :attr:`FrameAnn.people` and returned as ignore regions by
  :func:`read_crowdhuman_ignore_regions` (the tracker's types have no ignore-region field). Any other
  tag is an error.
- The head part is ``hbox`` unless ``head_attr.ignore`` or ``head_attr.unsure`` is 1, or less than
  ``min_part_inside`` of it lies in the image: then ``None``. A missing ``head_attr`` (or key in it)
  counts as 0. A head with ``head_attr.occ == 1`` gets visibility ``occluded_head_visibility`` (the
  dataset flags occlusion without measuring it); an unoccluded one 1.
- CrowdHuman has no keypoints: only the head box part (``PartSpec("head")``) can be read.
- The image size comes from the file header (Pillow, no decode). With ``check_images`` a missing or
  unreadable image is an error; without it such images are skipped with one warning that counts them.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from adaptrack.common.errors import DataError
from adaptrack.track.data.frames import frame_size
from adaptrack.track.data.geometry import Box, BoxError, as_box, box_area, check_in_image, inside_fraction
from adaptrack.track.data.types import FrameAnn, PartSpec, PersonAnn, SequenceAnn

DEFAULT_PARTS: tuple[PartSpec, ...] = (PartSpec(),)
PERSON_TAG = "person"
MASK_TAG = "mask"
IMAGE_SUFFIX = ".jpg"


def read_crowdhuman(odgt_path: str | Path, images_root: str | Path,
                    parts: Sequence[PartSpec] = DEFAULT_PARTS, check_images: bool = True,
                    body: Literal["fbox", "vbox"] = "fbox", max_outside: float = 1.0,
                    min_part_inside: float = 0.25, occluded_head_visibility: float = 0.5) -> list[SequenceAnn]:
    """Read a CrowdHuman ``.odgt`` file: one one-frame sequence per image, in file order.

    Args:
        odgt_path: The annotation file (e.g. ``annotation_train.odgt``).
        images_root: Folder holding ``<ID>.jpg`` (CrowdHuman's ``Images/``).
        parts: Parts per person; only ``PartSpec("head")`` (the ``hbox``) exists in CrowdHuman.
        check_images: A missing or unreadable image is an error; ``False`` skips such images (one warning).
        body: Which box is the person box: ``"fbox"`` (full body, the default) or ``"vbox"`` (visible part).
        max_outside: Tolerated overshoot of a box beyond the image, as a fraction of the image size.
        min_part_inside: Smallest share of the head box's area inside the image for it to count.
        occluded_head_visibility: :attr:`PersonAnn.visibility` given to heads flagged ``occ``.

    Returns:
        One :class:`SequenceAnn` (one :class:`FrameAnn`, ``frame_index`` 0) per image line.

    Raises:
        DataError: Missing file, invalid JSON line, missing or ill-typed key, unknown tag, a gross box,
            duplicate ``ID``, keypoint parts, or (with ``check_images``) a missing/unreadable image; the
            message names the file, the line, the ``ID``/box and the key.
    """
    odgt_path = Path(odgt_path)
    reader = _Reader(odgt_path, Path(images_root), tuple(parts), body, max_outside, min_part_inside,
                     occluded_head_visibility)
    sequences: list[SequenceAnn] = []
    skipped: list[str] = []
    for line_no, record in _records(odgt_path):
        image_id, frame = reader.frame(line_no, record, check_images)
        if frame is None:
            skipped.append(image_id)
            continue
        sequences.append(SequenceAnn(name=image_id, frames=(frame,), parts=reader.parts))
    if skipped:
        warnings.warn(f"{odgt_path}: skipped {len(skipped)} image(s) whose file is missing or unreadable under "
                      f"{images_root} (first: {skipped[0]}{IMAGE_SUFFIX})", stacklevel=2)
    if not sequences:
        raise DataError("no image to read (the file has no annotated line, or every image was skipped)", odgt_path)
    return sequences


def read_crowdhuman_ignore_regions(odgt_path: str | Path) -> dict[str, tuple[Box, ...]]:
    """The ignore regions of every image: ``mask`` entries and ``extra.ignore`` persons (their body ``fbox``).

    Boxes are as annotated (not clipped: no image is opened). Images without any are absent.

    Raises:
        DataError: As :func:`read_crowdhuman` for the annotation file itself.
    """
    odgt_path = Path(odgt_path)
    reader = _Reader(odgt_path, Path("."), DEFAULT_PARTS, "fbox", 1.0, 0.0, 1.0)
    regions: dict[str, tuple[Box, ...]] = {}
    for line_no, record in _records(odgt_path):
        image_id, entries = reader.entries(line_no, record)
        boxes = tuple(box for _, kind, box, _ in entries if kind == "ignore")
        if boxes:
            regions[image_id] = boxes
    return regions


def _records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, JSON object)`` per non-blank line (1-based line numbers)."""
    if not path.is_file():
        raise DataError("annotation file is missing", path)
    try:
        with open(path, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"line {line_no}: not valid JSON ({exc})", path) from exc
                if not isinstance(record, dict):
                    raise DataError(f"line {line_no}: expected a JSON object, got {type(record).__name__}", path)
                yield line_no, record
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc})", path) from exc


class _Reader:
    """Parses the lines of one file; holds the context used in error messages."""

    def __init__(self, path: Path, root: Path, parts: tuple[PartSpec, ...], body: str, max_outside: float,
                 min_part_inside: float, occluded_head_visibility: float) -> None:
        if not parts:
            raise DataError("at least one PartSpec is needed", path)
        for spec in parts:
            if not spec.is_head_box:
                raise DataError(f"part {spec.name!r}: CrowdHuman annotates only head boxes (PartSpec('head')), "
                                "no keypoints", path)
        if body not in ("fbox", "vbox"):
            raise DataError(f"body must be 'fbox' or 'vbox', got {body!r}", path)
        if not 0.0 <= occluded_head_visibility <= 1.0:
            raise DataError(f"occluded_head_visibility must be in [0, 1], got {occluded_head_visibility}", path)
        self.path = path
        self.root = root
        self.parts = parts
        self.body = body
        self.max_outside = max_outside
        self.min_part_inside = min_part_inside
        self.occluded_head_visibility = occluded_head_visibility
        self.seen: dict[str, int] = {}

    def fail(self, where: str, key: str, reason: str) -> DataError:
        return DataError(f"{where}: key '{key}': {reason}", self.path)

    def require(self, obj: dict[str, Any], key: str, where: str) -> Any:
        if key not in obj:
            raise self.fail(where, key, "missing")
        return obj[key]

    def entries(self, line_no: int, record: dict[str, Any]) -> tuple[str, list[tuple[int, str, Box, dict]]]:
        """The image ``ID`` and its ``(index, "person" | "ignore", body box, entry)`` list (boxes unchecked)."""
        where = f"line {line_no}"
        image_id = self.require(record, "ID", where)
        if not isinstance(image_id, str) or not image_id:
            raise self.fail(where, "ID", f"expected a non-empty string, got {image_id!r}")
        where = f"line {line_no} (ID {image_id})"
        if image_id in self.seen:
            raise self.fail(where, "ID", f"duplicate image ID (also line {self.seen[image_id]})")
        self.seen[image_id] = line_no
        gtboxes = self.require(record, "gtboxes", where)
        if not isinstance(gtboxes, list):
            raise self.fail(where, "gtboxes", f"expected a list, got {type(gtboxes).__name__}")
        out: list[tuple[int, str, Box, dict]] = []
        for j, entry in enumerate(gtboxes):
            at = f"{where}, gtboxes[{j}]"
            if not isinstance(entry, dict):
                raise DataError(f"{at}: expected a JSON object, got {type(entry).__name__}", self.path)
            tag = self.require(entry, "tag", at)
            if tag not in (PERSON_TAG, MASK_TAG):
                raise self.fail(at, "tag", f"expected 'person' or 'mask', got {tag!r}")
            key = self.body if tag == PERSON_TAG else "fbox"
            box = self._parse(self.require(entry, key, at), at, key)
            ignored = tag == MASK_TAG or self._flag(entry, "extra", "ignore", at)
            out.append((j, "ignore" if ignored else "person", box, entry))
        return image_id, out

    def frame(self, line_no: int, record: dict[str, Any], check_images: bool) -> tuple[str, FrameAnn | None]:
        """The image ``ID`` and its frame, or ``None`` when the image is unreadable and not checked."""
        image_id, entries = self.entries(line_no, record)
        where = f"line {line_no} (ID {image_id})"
        path = self.root / f"{image_id}{IMAGE_SUFFIX}"
        try:
            width, height = frame_size(path)
        except DataError as exc:
            if not check_images:
                return image_id, None
            raise self.fail(where, "ID", str(exc)) from exc
        people: list[PersonAnn] = []
        for j, kind, box, entry in entries:
            if kind != "person":
                continue
            at = f"{where}, gtboxes[{j}]"
            body = self._check(box, at, self.body, width, height)
            head, visibility = self._head(entry, at, width, height)
            people.append(PersonAnn(track_id=j, box=body, parts=(head,) * len(self.parts),
                                    visibility=(visibility,) * len(self.parts)))
        frame = FrameAnn(path=path, frame_index=0, width=width, height=height, people=tuple(people))
        return image_id, frame

    def _flag(self, entry: dict[str, Any], group: str, key: str, where: str) -> bool:
        attrs = entry.get(group, {})
        if not isinstance(attrs, dict):
            raise self.fail(where, group, f"expected a JSON object, got {type(attrs).__name__}")
        value = attrs.get(key, 0)
        if value not in (0, 1):
            raise self.fail(where, f"{group}.{key}", f"expected 0 or 1, got {value!r}")
        return bool(value)

    def _parse(self, value: Any, where: str, key: str) -> Box:
        try:
            return as_box(value)
        except BoxError as exc:
            raise self.fail(where, key, str(exc)) from exc

    def _check(self, box: Box, where: str, key: str, width: int, height: int) -> Box:
        try:
            return check_in_image(box, width, height, self.max_outside)
        except BoxError as exc:
            raise self.fail(where, key, str(exc)) from exc

    def _head(self, entry: dict[str, Any], where: str, width: int, height: int) -> tuple[Box | None, float]:
        if self._flag(entry, "head_attr", "ignore", where) or self._flag(entry, "head_attr", "unsure", where):
            return None, 0.0  # checked first: an ignored head's hbox may be absent or degenerate
        head = self._parse(self.require(entry, "hbox", where), where, "hbox")
        if inside_fraction(head, width, height) < self.min_part_inside:
            self._check(head, where, "hbox", width, height)  # gross boxes are still errors
            return None, 0.0
        clipped = self._check(head, where, "hbox", width, height)
        if box_area(clipped) <= 0:
            return None, 0.0
        occluded = self._flag(entry, "head_attr", "occ", where)
        return clipped, self.occluded_head_visibility if occluded else 1.0
