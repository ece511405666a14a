"""Frame files: decoding into tensors and cheap header checks, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from adaptrack.common.images import decode_image, image_size


def load_frame(path: str | Path, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Decode an image file into an RGB tensor.

    Args:
        path: JPEG/PNG (anything Pillow reads); greyscale and RGBA are converted to RGB.
        size: ``(H, W)`` to resize to (bilinear, antialiased, as :func:`resize_frame`); ``None`` keeps
            the file's size.

    Returns:
        ``(3, H, W)`` uint8 tensor.

    Raises:
        DataError: The file is missing, not an image, or truncated.
    """
    pixels, _ = decode_image(path, "RGB", size, what="frame file")  # (H, W, 3) uint8
    # Transposed in numpy: a single-threaded copy, immune to torch thread oversubscription.
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))  # (3, H, W) uint8


def resize_frame(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a ``(3, h, w)`` uint8 frame to ``size = (H, W)``.

    Uses Pillow's bilinear filter (antialiased when shrinking), the same resampling as
    ``load_frame(path, size)``, so frames resized at training and at inference match.

    Returns:
        ``(3, H, W)`` uint8.
    """
    if tuple(image.shape[1:]) == tuple(size):
        return image
    pil = Image.fromarray(np.ascontiguousarray(image.numpy().transpose(1, 2, 0)))
    pixels = np.asarray(pil.resize((size[1], size[0]), Image.BILINEAR))  # (H, W, 3)
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))  # (3, H, W)


def frame_size(path: str | Path) -> tuple[int, int]:
    """Read an image's ``(width, height)`` from its header without decoding the pixels.

    Raises:
        DataError: The file is missing or not an image.
    """
    return image_size(path, what="frame file")


PAD_VALUE = 128  # grey: where a search region reaches past the frame (0 after the backbones' centring)


def crop_frame(image: torch.Tensor | np.ndarray, window: tuple[int, int, int], size: int) -> torch.Tensor:
    """The square region ``window = (x0, y0, side)`` of a frame, resized to ``size × size``.

    The part of the region outside the frame is grey (:data:`PAD_VALUE`); only the region is
    resampled (Pillow bilinear, antialiased when shrinking, as :func:`resize_frame`), so a 1920×1080
    frame costs no more than its region. Training crops and the tracker's crops both come from here.

    Args:
        image: ``(3, H, W)`` uint8 tensor or ``(H, W, 3)`` uint8 array.
        window: Region in frame pixels (see :func:`adaptrack.track.geometry.search_window`).
        size: Output side.

    Returns:
        ``(3, size, size)`` uint8.
    """
    hwc = image if isinstance(image, np.ndarray) else image.permute(1, 2, 0).numpy()  # (H, W, 3), a view
    H, W = hwc.shape[:2]
    x0, y0, side = window
    region = np.full((side, side, 3), PAD_VALUE, dtype=np.uint8)  # (side, side, 3)
    ax0, ay0, ax1, ay1 = max(x0, 0), max(y0, 0), min(x0 + side, W), min(y0 + side, H)
    if ax1 > ax0 and ay1 > ay0:
        region[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0] = hwc[ay0:ay1, ax0:ax1, :3]
    if side != size:
        region = np.asarray(Image.fromarray(region).resize((size, size), Image.BILINEAR))  # (size, size, 3)
    return torch.from_numpy(np.ascontiguousarray(region.transpose(2, 0, 1)))  # (3, size, size)
