"""Reader for PoseTrack18 annotation JSON (COCO style), real or written by the synthetic generator.

Layout (as in PoseTrack18 and ``../shared/data/posetrack18_sample``)::

    <root>/annotations/<split>/<sequence>.json
    <root>/images/<split>/<sequence>/000000.jpg

Each image's ``file_name`` (e.g. ``images/val/003418_mpii_test/000000.jpg``) is relative to
``<root>``, which is the default ``images_root`` (the folder two levels above the JSON's folder).
Passing ``<root>/images`` instead also works: a leading ``images/`` in ``file_name`` is then dropped.

Rules (all documented here, none silent):

- Only annotated frames count: images with ``is_labeled`` true or with at least one annotation; a
  file without any is an error.
- A person without ``bbox`` gets a box derived from its visible keypoints (tight box plus 10 % on
  every side); with fewer than two visible keypoints the person is skipped. An annotation with
  neither ``bbox`` nor ``keypoints`` is an error.
- Boxes slightly outside the image are clipped; a box that does not overlap the image, or sticks out
  by more than ``max_outside`` of the image size, is an error (see :func:`geometry.check_in_image`).
- A part box that keeps less than ``min_part_inside`` of its area after clipping, an absent or empty
  ``bbox_head``, or an invisible keypoint (``v == 0``) gives ``None`` for that part.
- Keypoint parts are squares centred on the keypoint with side ``PartSpec.size`` × person box height.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adaptrack.common.errors import DataError
from adaptrack.track.data.frames import frame_size
from adaptrack.track.data.geometry import (
    Box,
    BoxError,
    as_box,
    box_area,
    box_from_points,
    check_in_image,
    inside_fraction,
    square_around,
)
from adaptrack.track.data.types import FrameAnn, PartSpec, PersonAnn, SequenceAnn

DEFAULT_PARTS: tuple[PartSpec, ...] = (PartSpec(),)
POSETRACK_KEYPOINTS: tuple[str, ...] = (
    "nose", "head_bottom", "head_top", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
    "right_knee", "left_ankle", "right_ankle",
)
"""PoseTrack18 keypoint names, in the order of the ``keypoints`` triples."""
POSETRACK_SKELETON: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9), (8, 10),
    (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)
"""PoseTrack18 skeleton (1-based keypoint pairs), as in the ``categories`` entry."""
GENERATOR_KEY = "adaptrack"
"""Top-level JSON key where the synthetic generator records its metadata (e.g. ``target_track``)."""

def posetrack_categories() -> list[dict[str, Any]]:
    """The ``categories`` entry of a PoseTrack18 file: one ``person`` category with its keypoints and skeleton."""
    return [{"supercategory": "person", "id": 1, "name": "person", "keypoints": list(POSETRACK_KEYPOINTS),
             "skeleton": [list(pair) for pair in POSETRACK_SKELETON]}]


HEAD_VISIBLE_KEY = "head_visible"
"""Optional annotation key: the share of the head's pixels that is unoccluded (synthetic scenes)."""


def read_posetrack(json_path: str | Path, images_root: str | Path | None = None,
                   parts: Sequence[PartSpec] = DEFAULT_PARTS, check_images: bool = True,
                   max_outside: float = 0.5, min_part_inside: float = 0.25) -> SequenceAnn:
    """Read one PoseTrack18 sequence file.

    Args:
        json_path: The sequence's annotation JSON.
        images_root: Folder that ``file_name`` is relative to; defaults to the dataset root two
            levels above the JSON's folder.
        parts: Parts to extract for every person, in order.
        check_images: Check that every annotated frame file exists and has a readable image header
            (and the annotated size, when given).
        max_outside: Tolerated overshoot of a box beyond the image, as a fraction of the image size.
        min_part_inside: Smallest share of a part box's area that must be inside the image for the
            part to count as visible.

    Returns:
        The annotated frames in frame order.

    Raises:
        DataError: Missing/invalid JSON, missing keys, bad boxes, duplicate or unknown image ids, unknown keypoint
            names, or (with ``check_images``) a missing or unreadable frame; the message names the
            file, the image id/frame and the key.
    """
    json_path = Path(json_path)
    parts = tuple(parts)
    if not parts:
        raise DataError("at least one PartSpec is needed", json_path)
    root = Path(images_root) if images_root is not None else json_path.parent.parent.parent
    data = _load_json(json_path)
    reader = _Reader(json_path, root, parts, check_images, max_outside, min_part_inside)
    return reader.read(data)


def read_posetrack_dir(annotations_dir: str | Path, images_root: str | Path | None = None,
                       parts: Sequence[PartSpec] = DEFAULT_PARTS,
                       check_images: bool = True) -> list[SequenceAnn]:
    """Read every ``*.json`` sequence file in a folder (sorted by name).

    Args:
        annotations_dir: e.g. ``<root>/annotations/val``.
        images_root: As in :func:`read_posetrack`; defaults to ``annotations_dir/../..``.
        parts: Parts to extract.
        check_images: As in :func:`read_posetrack`.

    Returns:
        One :class:`SequenceAnn` per file.

    Raises:
        DataError: The folder is missing or holds no JSON file, or any file is bad.
    """
    annotations_dir = Path(annotations_dir)
    if not annotations_dir.is_dir():
        raise DataError("annotation folder is missing", annotations_dir)
    files = sorted(annotations_dir.glob("*.json"))
    if not files:
        raise DataError("no *.json annotation files in this folder", annotations_dir)
    root = Path(images_root) if images_root is not None else annotations_dir.parent.parent
    return [read_posetrack(f, root, parts, check_images) for f in files]


def _load_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError("annotation file is missing", path)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"not valid JSON ({exc})", path) from exc
    if not isinstance(data, dict):
        raise DataError(f"expected a JSON object at the top level, got {type(data).__name__}", path)
    return data


def _frame_index(file_name: str, frame_id: int) -> int:
    """Frame position in the video: the numeric file stem, else PoseTrack's ``frame_id % 10000``."""
    stem = Path(file_name).stem
    return int(stem) if stem.isdigit() else int(frame_id) % 10000


def _resolve(root: Path, file_name: str) -> Path:
    direct = root / file_name
    pieces = Path(file_name).parts
    if not direct.exists() and len(pieces) > 1 and pieces[0] == "images":
        alternative = root.joinpath(*pieces[1:])
        if alternative.exists():
            return alternative
    return direct


class _Reader:
    """One pass over one file; holds the context used in error messages."""

    def __init__(self, path: Path, root: Path, parts: tuple[PartSpec, ...], check_images: bool,
                 max_outside: float, min_part_inside: float) -> None:
        self.path = path
        self.root = root
        self.parts = parts
        self.check_images = check_images
        self.max_outside = max_outside
        self.min_part_inside = min_part_inside

    def fail(self, where: str, key: str, reason: str) -> DataError:
        return DataError(f"{where}: key '{key}': {reason}", self.path)

    def require(self, obj: Any, key: str, where: str) -> Any:
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}", self.path)
        if key not in obj:
            raise self.fail(where, key, "missing")
        return obj[key]

    def read(self, data: dict[str, Any]) -> SequenceAnn:
        images = self.require(data, "images", "top level")
        annotations = self.require(data, "annotations", "top level")
        for key, value in (("images", images), ("annotations", annotations)):
            if not isinstance(value, list):
                raise self.fail("top level", key, f"expected a list, got {type(value).__name__}")
        keypoint_names = self._keypoint_names(data)

        by_image: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        image_ids: dict[int, int] = {}  # image id -> its index in images
        for i, im in enumerate(images):
            image_id = self._int(self.require(im, "id", f"images[{i}]"), f"images[{i}]", "id")
            if image_id in image_ids:
                first = image_ids[image_id]
                raise self.fail(f"images[{i}]", "id",
                                f"duplicate image id {image_id} (also images[{first}]); every image needs its own id")
            image_ids[image_id] = i
        for j, ann in enumerate(annotations):
            where = f"annotations[{j}]"
            image_id = self._int(self.require(ann, "image_id", where), where, "image_id")
            if image_id not in image_ids:
                raise self.fail(where, "image_id", f"refers to unknown image id {image_id}")
            by_image.setdefault(image_id, []).append((j, ann))
        if (any(p.is_head_box for p in self.parts) and annotations
                and not any(isinstance(a, dict) and a.get("bbox_head") for a in annotations)):
            raise self.fail("annotations", "bbox_head",
                            "no annotation has a head box, but a head part is requested")

        frames: list[FrameAnn] = []
        seen: dict[int, int] = {}
        for i, image in enumerate(images):
            image_id = int(image["id"])
            anns = by_image.get(image_id, [])
            if not (bool(image.get("is_labeled", False)) or anns):
                continue
            frame = self._frame(i, image, anns, keypoint_names)
            if frame.frame_index in seen:
                first = seen[frame.frame_index]
                raise self.fail(f"images[{i}] (image id {image_id})", "file_name",
                                f"frame {frame.frame_index} appears twice (also images[{first}])")
            seen[frame.frame_index] = i
            frames.append(frame)
        if not frames:
            raise self.fail("images", "is_labeled", f"no annotated frame among {len(images)} image(s): "
                            "nothing to read (a video with zero annotated frames)")
        frames.sort(key=lambda f: f.frame_index)
        meta = data.get(GENERATOR_KEY)
        target = meta.get("target_track") if isinstance(meta, dict) else None
        return SequenceAnn(name=self.path.stem, frames=tuple(frames), parts=self.parts,
                           target_track=int(target) if isinstance(target, int) else None)

    def _keypoint_names(self, data: dict[str, Any]) -> list[str] | None:
        needed = [p for p in self.parts if not p.is_head_box]
        categories = data.get("categories")
        names: list[str] | None = None
        if isinstance(categories, list) and categories and isinstance(categories[0], dict):
            raw = categories[0].get("keypoints")
            names = [str(n) for n in raw] if isinstance(raw, list) else None
        if needed and names is None:
            raise self.fail("categories[0]", "keypoints", "missing, but keypoint parts are requested")
        for spec in needed:
            if names is not None and spec.keypoint_name not in names:
                raise self.fail("categories[0]", "keypoints",
                                f"no keypoint named {spec.keypoint_name!r} (part {spec.name!r}); "
                                f"available: {', '.join(names)}")
            if spec.size <= 0:
                raise DataError(f"part {spec.name!r}: size must be positive, got {spec.size}", self.path)
        return names

    def _int(self, value: Any, where: str, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise self.fail(where, key, f"expected an integer, got {value!r}")
        return int(value)

    def _frame(self, i: int, image: dict[str, Any], anns: list[tuple[int, dict[str, Any]]],
               keypoint_names: list[str] | None) -> FrameAnn:
        image_id = int(image["id"])
        where = f"images[{i}] (image id {image_id})"
        file_name = self.require(image, "file_name", where)
        if not isinstance(file_name, str) or not file_name:
            raise self.fail(where, "file_name", f"expected a non-empty string, got {file_name!r}")
        frame_id = self._int(self.require(image, "frame_id", where), where, "frame_id")
        index = _frame_index(file_name, frame_id)
        where = f"images[{i}] (image id {image_id}, frame {index})"
        path = _resolve(self.root, file_name)

        width, height = image.get("width"), image.get("height")
        header: tuple[int, int] | None = None
        if self.check_images or width is None or height is None:
            try:
                header = frame_size(path)
            except DataError as exc:
                key = "file_name" if self.check_images else ("width" if width is None else "height")
                raise self.fail(where, key, str(exc)) from exc
        if (width is None or height is None) and header is not None:
            width, height = header
        width = self._int(width, where, "width")
        height = self._int(height, where, "height")
        if width <= 0 or height <= 0:
            raise self.fail(where, "width", f"image size must be positive, got {width}x{height}")
        if header is not None and header != (width, height):
            raise self.fail(where, "width", f"annotated size {width}x{height} differs from the file's "
                                            f"{header[0]}x{header[1]} ({path})")

        people: list[PersonAnn] = []
        tracks: set[int] = set()
        for j, ann in anns:
            person = self._person(j, image_id, index, ann, width, height, keypoint_names)
            if person is None:
                continue
            if person.track_id in tracks:
                raise self.fail(f"annotations[{j}] (image id {image_id}, frame {index})", "track_id",
                                f"track {person.track_id} appears twice in this frame")
            tracks.add(person.track_id)
            people.append(person)
        people.sort(key=lambda p: p.track_id)
        return FrameAnn(path=path, frame_index=index, width=width, height=height, people=tuple(people))

    def _parse(self, value: Any, where: str, key: str) -> Box:
        try:
            return as_box(value)
        except BoxError as exc:
            raise self.fail(where, key, str(exc)) from exc

    def _box(self, value: Any, where: str, key: str, width: int, height: int) -> Box:
        box = self._parse(value, where, key)
        try:
            return check_in_image(box, width, height, self.max_outside)
        except BoxError as exc:
            raise self.fail(where, key, str(exc)) from exc

    def _keypoints(self, ann: dict[str, Any], where: str,
                   names: list[str] | None) -> list[tuple[float, float, bool]] | None:
        raw = ann.get("keypoints")
        if raw is None or (isinstance(raw, list) and not raw):
            return None
        if not isinstance(raw, list) or len(raw) % 3 != 0:
            raise self.fail(where, "keypoints", "expected a flat list of (x, y, v) triples")
        if names is not None and len(raw) != 3 * len(names):
            raise self.fail(where, "keypoints", f"has {len(raw) // 3} triples, categories name {len(names)}")
        try:
            triples = [(float(raw[k]), float(raw[k + 1]), float(raw[k + 2]) > 0)
                       for k in range(0, len(raw), 3)]
        except (TypeError, ValueError) as exc:
            raise self.fail(where, "keypoints", f"non-numeric value ({exc})") from exc
        return triples

    def _person(self, j: int, image_id: int, index: int, ann: dict[str, Any], width: int, height: int,
                keypoint_names: list[str] | None) -> PersonAnn | None:
        where = f"annotations[{j}] (image id {image_id}, frame {index})"
        track_id = self._int(self.require(ann, "track_id", where), where, "track_id")
        where = f"annotations[{j}] (image id {image_id}, frame {index}, track {track_id})"
        keypoints = self._keypoints(ann, where, keypoint_names)
        raw_box = ann.get("bbox")
        if raw_box is not None and raw_box != []:
            box = self._box(raw_box, where, "bbox", width, height)
            person_height = self._parse(raw_box, where, "bbox")[3]
        elif "bbox" not in ann and "keypoints" not in ann:
            raise self.fail(where, "bbox", "missing (and no keypoints to derive it from)")
        else:
            visible = [(x, y) for x, y, v in (keypoints or []) if v]
            if len(visible) < 2:
                return None  # no box and too few keypoints: the person cannot be placed
            try:
                derived = box_from_points([p[0] for p in visible], [p[1] for p in visible])
            except BoxError:
                return None
            box = self._box(derived, where, "keypoints", width, height)
            person_height = derived[3]

        part_boxes = tuple(self._part(spec, ann, keypoints, keypoint_names, person_height, where, width, height)
                           for spec in self.parts)
        visibility = tuple(0.0 if part is None else self._visibility(spec, ann, where)
                           for spec, part in zip(self.parts, part_boxes, strict=True))
        return PersonAnn(track_id=track_id, box=box, parts=part_boxes, visibility=visibility)

    def _visibility(self, spec: PartSpec, ann: dict[str, Any], where: str) -> float:
        """Visible share of an annotated part: the optional ``head_visible`` for head boxes (written by
        the synthetic generator), else 1."""
        if not spec.is_head_box or ann.get(HEAD_VISIBLE_KEY) is None:
            return 1.0
        value = ann[HEAD_VISIBLE_KEY]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise self.fail(where, HEAD_VISIBLE_KEY, f"expected a share between 0 and 1, got {value!r}")
        return float(value)

    def _part(self, spec: PartSpec, ann: dict[str, Any], keypoints: list[tuple[float, float, bool]] | None,
              names: list[str] | None, person_height: float, where: str,
              width: int, height: int) -> Box | None:
        if spec.is_head_box:
            raw = ann.get("bbox_head")
            if raw is None or raw == []:
                return None
            key, original = "bbox_head", self._parse(raw, where, "bbox_head")
        else:
            if keypoints is None or names is None:
                return None
            x, y, visible = keypoints[names.index(spec.keypoint_name)]
            if not visible:
                return None
            key, original = "keypoints", square_around(x, y, spec.size * person_height)
        if inside_fraction(original, width, height) < self.min_part_inside:
            self._box(original, where, key, width, height)  # gross boxes are still errors
            return None
        clipped = self._box(original, where, key, width, height)
        return clipped if box_area(clipped) > 0 else None

