"""Batch augmentation: flips and windows keep boxes on the same pixels."""

from __future__ import annotations

import math

import torch

from adaptrack.track.data.types import ClipBatch
from adaptrack.track.train.batch import flip_batch, random_crop_batch


def _pixel(frames: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
    """Colour at a box centre; ``frames (3, H, W)``, ``box (4,)``."""
    cx, cy = int(box[0] + box[2] / 2), int(box[1] + box[3] / 2)
    return frames[:, cy, cx]


def test_flip_mirrors_frames_and_boxes(batch: ClipBatch) -> None:
    f = flip_batch(batch)
    W = batch.frames.shape[-1]
    assert torch.allclose(f.target_box[..., 0], W - batch.target_box[..., 0] - batch.target_box[..., 2])
    assert torch.equal(_pixel(f.frames[0, 1], f.target_box[0, 1]), _pixel(batch.frames[0, 1], batch.target_box[0, 1]))
    assert torch.equal(flip_batch(f).frames, batch.frames)


def test_crop_keeps_template_centre_and_content(batch: ClipBatch) -> None:
    g = torch.Generator().manual_seed(0)
    c = random_crop_batch(batch, 32, g)
    assert c.frames.shape[-2:] == (32, 32)
    for b in range(batch.frames.shape[0]):
        cx = c.template_box[b, 0] + c.template_box[b, 2] / 2
        cy = c.template_box[b, 1] + c.template_box[b, 3] / 2
        assert 0 <= cx < 32 and 0 <= cy < 32
        for t in range(batch.frames.shape[1]):
            box = c.target_box[b, t]
            if bool(torch.isfinite(box).all()):
                assert torch.equal(_pixel(c.frames[b, t], box), _pixel(batch.frames[b, t], batch.target_box[b, t]))
    # boxes whose centre left the window are marked absent
    centres = c.other_parts[..., :2] + c.other_parts[..., 2:] / 2
    finite = torch.isfinite(centres).all(-1)
    assert bool(((centres >= 0) & (centres < 32)).all(-1)[finite].all())
    assert not math.isnan(float(c.template_box.sum()))
