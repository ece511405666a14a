"""The one image decoder of the project (Pillow), with errors that name the file."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from adaptrack.common.errors import DataError

GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"})
"""Pillow modes of gray-scale files."""


@contextmanager
def _opened(path: Path, what: str) -> Iterator[Image.Image]:
    """The Pillow image of ``path``; a missing file or any decoding error becomes a :class:`DataError`."""
    if not path.is_file():
        raise DataError(f"{what} is missing", path)
    try:
        with Image.open(path) as image:
            yield image
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise DataError(f"{what} is unreadable ({type(exc).__name__}: {exc})", path) from exc


def decode_image(path: str | Path, mode: Literal["RGB", "L"] = "RGB", size: tuple[int, int] | None = None,
                 what: str = "image file") -> tuple[np.ndarray, bool]:
    """Decode an image file into a uint8 array.

    Args:
        path: Any file Pillow reads (PNG, JPEG, BMP, …).
        mode: ``"RGB"`` (gray and RGBA are converted) or ``"L"`` (luminance).
        size: ``(H, W)`` to resize to (Pillow bilinear, antialiased when shrinking); ``None`` keeps
            the file's size.
        what: How messages call the file (``"frame file"``, ``"image file"``).

    Returns:
        ``(H, W, 3)`` or ``(H, W)`` uint8 array, and whether the file itself is gray-scale.

    Raises:
        DataError: ``"<what> is missing"`` or ``"<what> is unreadable (<reason>)"``, naming the file.
    """
    with _opened(Path(path), what) as image:
        image.load()
        gray = image.mode in GRAY_MODES
        image = image.convert(mode)
        if size is not None and image.size != (size[1], size[0]):
            image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return np.asarray(image), gray


def image_size(path: str | Path, what: str = "image file") -> tuple[int, int]:
    """An image's ``(width, height)`` from its header, without decoding the pixels.

    Raises:
        DataError: As :func:`decode_image`.
    """
    with _opened(Path(path), what) as image:
        return int(image.width), int(image.height)
