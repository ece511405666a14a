"""Reading image files into uint8 tensors with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from adaptrack.common.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def read_image(path: str | Path, channels: int | None = None, size: int | tuple[int, int] | None = None) -> torch.Tensor:
    """Read one image file.

    Args:
        path: Image file (any format Pillow reads).
        channels: 1 (gray), 3 (RGB) or ``None`` to keep gray as 1 and everything else as RGB.
        size: Resize to ``size × size`` or ``(height, width)`` (bilinear); ``None`` keeps the size.

    Returns:
        ``(C, H, W)`` uint8 tensor.

    Raises:
        DataError: The file is missing, unreadable, truncated or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("image file not found", path)
    try:
        with Image.open(path) as img:
            img.load()
            mode = {1: "L", 3: "RGB"}.get(channels or 0, "L" if img.mode in ("L", "1", "I;16", "I") else "RGB")
            img = img.convert(mode)
            if size is not None:
                h, w = (size, size) if isinstance(size, int) else size
                if img.size != (w, h):
                    img = img.resize((w, h), Image.Resampling.BILINEAR)
            array = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"unreadable or corrupt image ({exc})", path) from exc
    tensor = torch.from_numpy(array.copy())
    return tensor[None] if tensor.ndim == 2 else tensor.permute(2, 0, 1).contiguous()  # (C, H, W)
