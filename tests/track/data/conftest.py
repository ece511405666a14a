"""Helpers of the data-layer tests: tiny PoseTrack18 files written on the fly."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from adaptrack.track.data.posetrack import POSETRACK_KEYPOINTS

WIDTH, HEIGHT = 64, 48


def keypoints(points: dict[str, tuple[float, float]]) -> list[float]:
    """A flat PoseTrack18 keypoint list with the named points visible and the rest (0, 0, 0)."""
    flat: list[float] = []
    for name in POSETRACK_KEYPOINTS:
        x, y = points.get(name, (0.0, 0.0))
        flat += [x, y, 1 if name in points else 0]
    return flat


def good_posetrack() -> dict[str, Any]:
    """Three frames (the middle one unlabeled), two people, head boxes and a few keypoints."""
    images = []
    for t in range(3):
        image_id = 10000010000 + t
        images.append({"id": image_id, "file_name": f"images/val/seq/{t:06d}.jpg", "frame_id": image_id,
                       "vid_id": "000001", "nframes": 3, "is_labeled": t != 1, "width": WIDTH, "height": HEIGHT})
    annotations = []
    for t in (0, 2):
        image_id = 10000010000 + t
        annotations.append({"image_id": image_id, "track_id": 0, "bbox": [5.0 + t, 10.0, 12.0, 30.0],
                            "bbox_head": [8.0 + t, 10.0, 6.0, 6.0],
                            "keypoints": keypoints({"nose": (11.0 + t, 14.0), "left_ankle": (8.0 + t, 39.0)})})
        annotations.append({"image_id": image_id, "track_id": 3, "bbox": [30.0, 8.0, 14.0, 32.0],
                            "bbox_head": [33.0, 8.0, 7.0, 7.0], "keypoints": keypoints({})})
    categories = [{"id": 1, "name": "person", "keypoints": list(POSETRACK_KEYPOINTS), "skeleton": []}]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_dataset(root: Path, data: dict[str, Any], name: str = "seq", frames: bool = True) -> Path:
    """Write ``data`` as ``root/annotations/val/<name>.json`` and its frames as small JPEGs."""
    if frames:
        for image in data.get("images", []):
            if "file_name" not in image:
                continue
            path = root / image["file_name"]
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
            Image.fromarray(pixels).save(path)
    path = root / "annotations" / "val" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def good() -> dict[str, Any]:
    """A fresh copy of :func:`good_posetrack` to modify."""
    return copy.deepcopy(good_posetrack())
