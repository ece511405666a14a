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
