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


WIDE_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
"""Pillow modes of gray-scale files with more than 8 bits per pixel (16-bit PNG and TIFF, 32-bit TIFF)."""


def _to_8_bit(image: Image.Image, path: Path, what: str) -> Image.Image:
    """A 16-bit gray image scaled to 8 bits (0..65535 onto 0..255, rounded), as an ``"L"`` image.

    Pillow's own ``convert("L")`` clips such values at 255, which turns a 16-bit image near-white.

    Raises:
        DataError: A floating-point image, or 32-bit integer values outside 0..65535 (no known range).
    """
    if image.mode == "F":
        raise DataError(f"{what} holds floating-point pixels (mode F), which have no fixed range; save it "
                        "with 8 or 16 bits per channel", path)
    values = np.asarray(image).astype(np.int64)  # (H, W)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise DataError(f"{what} holds 32-bit pixel values {values.min()}..{values.max()} outside the 16-bit "
                        "range 0..65535; save it with 8 or 16 bits per channel", path)
    scaled = (values * 255 + 32767) // 65535  # round(v * 255 / 65535)
    return Image.fromarray(scaled.astype(np.uint8), mode="L")


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
        mode: ``"RGB"`` (gray, palette, RGBA and CMYK are converted) or ``"L"`` (luminance). 16-bit
            gray files are scaled to 8 bits (not clipped).
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
        if image.mode in WIDE_MODES:
            image = _to_8_bit(image, Path(path), what)
        image = image.convert(mode)  # CMYK, palette, RGBA, gray: Pillow's conversions
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
