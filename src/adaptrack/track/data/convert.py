"""Write annotated sequences from any reader in the PoseTrack18 layout the training data module reads.

``adaptrack track fit`` and ``fit-parts`` read PoseTrack18 folders (``<root>/annotations/<split>/*.json``
and ``<root>/images/<split>/<sequence>/``). :func:`write_posetrack` writes any :class:`SequenceAnn` (a
Town Centre clip, MOT17, CrowdHuman) there, so a few labeled frames of one's own camera train with the
same commands. Frames are hard-linked where the file system allows (else copied); the JSON is written
atomically.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adaptrack.common.files import atomic_write
from adaptrack.track.data.posetrack import HEAD_VISIBLE_KEY, POSETRACK_KEYPOINTS, posetrack_categories
from adaptrack.track.data.types import SequenceAnn

__all__ = ["write_posetrack"]


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_posetrack(sequences: Sequence[SequenceAnn], out: str | Path, split: str) -> list[Path]:
    """Write ``sequences`` as PoseTrack18 JSON plus frames under ``out``.

    Only head-box parts are written (``bbox_head``; keypoints are all marked unlabeled), with each head's
    visibility under ``head_visible``.

    Args:
        sequences: Annotated sequences; their frame files must exist.
        out: Dataset root (created).
        split: Split folder name (``train``, ``val``).

    Returns:
        The JSON files written, one per sequence.

    Raises:
        ValueError: A sequence has a part other than the head box.
    """
    out = Path(out)
    written = []
    for vid, seq in enumerate(sequences):
        if any(not spec.is_head_box for spec in seq.parts):
            raise ValueError(f"sequence {seq.name}: only head-box parts can be written, got {seq.parts}")
        folder = out / "images" / split / seq.name
        folder.mkdir(parents=True, exist_ok=True)
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for frame in seq.frames:
            name = f"{frame.frame_index:06d}{frame.path.suffix.lower()}"
            _link_or_copy(frame.path, folder / name)
            image_id = int(f"1{vid:06d}{frame.frame_index:04d}")
            images.append({"file_name": f"images/{split}/{seq.name}/{name}", "nframes": len(seq.frames),
                           "frame_id": image_id, "vid_id": f"{vid:06d}", "id": image_id, "width": frame.width,
                           "height": frame.height, "is_labeled": True})
            for person in frame.people:
                ann: dict[str, Any] = {"track_id": person.track_id, "image_id": image_id,
                                       "id": image_id * 1000 + person.track_id, "category_id": 1,
                                       "bbox": [round(v, 2) for v in person.box],
                                       "keypoints": [0] * (3 * len(POSETRACK_KEYPOINTS))}
                head = person.parts[0] if person.parts else None
                if head is not None:
                    ann["bbox_head"] = [round(v, 2) for v in head]
                    ann[HEAD_VISIBLE_KEY] = round(person.visible_share(0), 3)
                annotations.append(ann)
        data = {"images": images, "annotations": annotations, "categories": posetrack_categories()}
        path = out / "annotations" / split / f"{seq.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            f.write(json.dumps(data, separators=(",", ":")))
        written.append(path)
    return written


def convert(top: str, video: str, out: str, split: str = "train", start: int = 0, stop: int | None = None,
            frames_dir: str | None = None) -> list[Path]:
    """``adaptrack track convert``: a Town Centre clip's frames ``start <= frame < stop`` with their head and
    body boxes, written as a PoseTrack18 split that ``fit`` / ``fit-parts`` read (e.g. the few labeled frames
    of one's own camera: ``--data.train_dir`` or ``--data.labeled_target``).

    Args:
        top: The clip's ``.top`` ground truth.
        video: Its video (or a folder of its frames).
        out: Dataset root to write.
        split: Split folder name.
        start: First frame kept.
        stop: One past the last frame kept (default: the end).
        frames_dir: Where the video's frames are extracted (default the user cache folder).

    Returns:
        The JSON files written.
    """
    from adaptrack.track.data.towncentre import read_towncentre

    seq = read_towncentre(top, video, frames_dir=frames_dir,
                          frame_range=None if stop is None and start == 0 else (start, 10**9 if stop is None else stop))
    written = write_posetrack([seq], out, split)
    n = sum(len(f.people) for f in seq.frames)
    print(f"wrote {len(seq.frames)} frames ({n} person-frames) of {seq.name} to {written[0]}")
    return written
