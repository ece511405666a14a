"""Batch-level augmentation of :class:`~adaptrack.track.data.types.ClipBatch` (¶50: several clips per update)."""

from __future__ import annotations

import dataclasses

import torch

from adaptrack.track.data.types import ClipBatch


def _flip_boxes(boxes: torch.Tensor, width: int) -> torch.Tensor:
    """Mirror ``(..., 4)`` x, y, w, h boxes in an image ``width`` wide (NaN stays NaN)."""
    out = boxes.clone()
    out[..., 0] = width - boxes[..., 0] - boxes[..., 2]
    return out


def flip_batch(batch: ClipBatch) -> ClipBatch:
    """Mirror every clip of the batch left-right: frames and all boxes."""
    W = int(batch.frames.shape[-1])
    return dataclasses.replace(
        batch, frames=batch.frames.flip(-1), target_box=_flip_boxes(batch.target_box, W),
        target_parts=_flip_boxes(batch.target_parts, W), other_parts=_flip_boxes(batch.other_parts, W),
        other_boxes=_flip_boxes(batch.other_boxes, W), template_box=_flip_boxes(batch.template_box, W),
        flipped=not batch.flipped)


def _shift_boxes(boxes: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor, size: int) -> torch.Tensor:
    """Shift ``(B, ..., 4)`` boxes by per-clip ``(B,)`` offsets; boxes whose centre leaves the
    ``size``-square window become NaN (absent)."""
    shape = (-1,) + (1,) * (boxes.dim() - 2)
    out = boxes.clone()
    out[..., 0] = boxes[..., 0] - dx.view(shape)
    out[..., 1] = boxes[..., 1] - dy.view(shape)
    cx, cy = out[..., 0] + out[..., 2] / 2, out[..., 1] + out[..., 3] / 2
    inside = (cx >= 0) & (cx < size) & (cy >= 0) & (cy < size)
    return out.masked_fill(~inside[..., None], float("nan"))


def random_crop_batch(batch: ClipBatch, size: int, generator: torch.Generator | None = None,
                      align: int = 8) -> ClipBatch:
    """Cut one ``size × size`` window per clip (the same in all its frames) around the template box.

    The window contains the template box centre and, where the frame allows, as much of the box as
    fits; every box is shifted into window coordinates and boxes whose centre falls outside it
    become NaN. Training on windows is cheaper; the networks are fully convolutional, so the
    scale of people stays that of the full-frame input.

    Args:
        batch: Clips with frames ``(B, T, 3, H, W)``.
        size: Window side (≤ H and W, a multiple of the network stride).
        generator: Random source.
        align: Window corners on multiples of this many pixels (the maps' stride divides it), so
            the windows' maps sit on the full frame's map grid (the region-map store relies on it).

    Returns:
        The cropped batch, frames ``(B, T, 3, size, size)``, with its :attr:`ClipBatch.crop_origin`.
    """
    B = batch.frames.shape[0]
    H, W = batch.frames.shape[-2:]
    if size > min(H, W):
        raise ValueError(f"crop size {size} exceeds the {W}x{H} frames")
    tb = batch.template_box  # (B, 4)
    starts = []
    for limit, lo_edge, extent in ((W, tb[:, 0], tb[:, 2]), (H, tb[:, 1], tb[:, 3])):
        centre = lo_edge + extent / 2  # (B,)
        lo = torch.maximum(centre - size + 1, torch.zeros(B)).clamp(max=limit - size)
        hi = torch.minimum(centre, torch.full((B,), float(limit - size))).clamp(min=0)
        hi = torch.maximum(hi, lo)
        u = torch.rand(B, generator=generator)
        start = (lo + u * (hi - lo)).floor().long()  # (B,)
        snapped = torch.div(start, align, rounding_mode="floor") * align
        snapped = torch.where(snapped < lo.ceil().long(), snapped + align, snapped)  # keep the centre inside
        starts.append(snapped.clamp(0, (limit - size) // align * align))  # (B,) on the grid
    x0, y0 = starts
    frames = torch.stack([batch.frames[b, ..., int(y0[b]):int(y0[b]) + size, int(x0[b]):int(x0[b]) + size]
                          for b in range(B)])  # (B, T, 3, size, size)
    dx, dy = x0.float(), y0.float()
    template = tb.clone()
    template[:, 0] -= dx
    template[:, 1] -= dy
    return dataclasses.replace(
        batch, frames=frames, target_box=_shift_boxes(batch.target_box, dx, dy, size),
        target_parts=_shift_boxes(batch.target_parts, dx, dy, size),
        other_parts=_shift_boxes(batch.other_parts, dx, dy, size),
        other_boxes=_shift_boxes(batch.other_boxes, dx, dy, size), template_box=template,
        frame_size=(int(H), int(W)), crop_origin=torch.stack([x0, y0], dim=1))


def augment(batch: ClipBatch, flip_prob: float, crop_size: int | None) -> ClipBatch:
    """Random left-right flip and window crop of a training batch."""
    if crop_size:
        batch = random_crop_batch(batch, crop_size)
    if torch.rand(()) < flip_prob:
        batch = flip_batch(batch)
    return batch
