"""Decoding image files (png/jpg/jpeg/bmp) into one uint8 tensor, with clear per-file errors."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from adaptrack.common.errors import DataError
from adaptrack.common.images import decode_image

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp")
"""File name endings (case-insensitive) recognised as images."""

Channels = Literal[1, 3]
Size = tuple[int, int]


def is_image_file(path: Path) -> bool:
    """Whether ``path`` is a visible file with an image suffix."""
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def read_image(path: Path, channels: Channels | None = None,
               size: Size | None = None) -> tuple[np.ndarray, bool]:
    """Decode one image file.

    Args:
        path: Image file.
        channels: 1 (luminance) or 3 (RGB); ``None`` decodes to RGB and reports whether the file is gray.
        size: ``(H, W)`` to resize to (bilinear, antialiased); ``None`` keeps the file's size.

    Returns:
        The ``(H, W, C)`` uint8 array and whether the file itself is a gray-scale image.

    Raises:
        DataError: The file is missing, unreadable, truncated or not an image.
    """
    array, gray = decode_image(path, "L" if channels == 1 else "RGB", size)
    if array.ndim == 2:
        array = array[:, :, None]  # (H, W, 1)
    return array, gray


def read_images(paths: Sequence[Path], *, channels: Channels | None = None, size: Size | None = None,
                skip_bad: bool = False, what: str = "images") -> tuple[torch.Tensor, list[int]]:
    """Decode many image files into one tensor.

    Args:
        paths: Image files, in the order wanted.
        channels: 1 or 3; ``None`` gives 1 when every file is gray-scale, else 3.
        size: ``(H, W)`` to resize every image to; ``None`` requires all images to share one size.
        skip_bad: Skip unreadable files with one warning giving the count, instead of raising.
        what: Name of the set, used in messages (e.g. the folder).

    Returns:
        ``(N, C, H, W)`` uint8 images and, for each, its index into ``paths`` (files skipped are absent).

    Raises:
        DataError: A file is unreadable (``skip_bad=False``), an image has another size while
            ``size`` is ``None``, or no readable image is left.
    """
    arrays: list[np.ndarray] = []
    kept: list[int] = []
    all_gray = True
    bad: list[tuple[Path, str]] = []
    for index, path in enumerate(paths):
        try:
            array, gray = read_image(path, channels, size)
        except DataError as exc:
            if not skip_bad:
                raise
            bad.append((path, str(exc)))
            continue
        if arrays and array.shape[:2] != arrays[0].shape[:2]:
            h0, w0 = arrays[0].shape[:2]
            h, w = array.shape[:2]
            raise DataError(f"image is {h}x{w} but the first image of {what} ({paths[kept[0]].name}) is "
                            f"{h0}x{w0}; set the size option (H, W) to resize all images to one size", path)
        arrays.append(array)
        kept.append(index)
        all_gray = all_gray and gray
    if bad:
        warnings.warn(f"{what}: skipped {len(bad)} unreadable image(s) of {len(paths)}; first: {bad[0][1]}",
                      UserWarning, stacklevel=2)
    if not arrays:
        raise DataError(f"{what}: no readable image among {len(paths)} file(s)")
    stacked = np.stack(arrays)  # (N, H, W, C)
    if channels is None and all_gray:
        stacked = stacked[..., :1]  # (N, H, W, 1): gray files were expanded to equal R, G, B
    images = torch.from_numpy(stacked).permute(0, 3, 1, 2).contiguous()  # (N, C, H, W)
    return images, kept
