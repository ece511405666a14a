"""Scene backgrounds cut from the photos bundled with scikit-image (no download).

Only images shipped inside the scikit-image wheel are used (verified offline with scikit-image
0.26: each loads from ``skimage/data`` without network access). A sequence picks one, zooms into a
random window, optionally mirrors it, lowers its contrast a little so people stand out, and pans
slowly across it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

BACKGROUND_NAMES: tuple[str, ...] = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "retina", "rocket", "stereo_motorcycle",
)
"""scikit-image ``data`` loaders whose files are bundled with the package."""


@functools.cache
def load_background(name: str) -> np.ndarray:
    """One bundled photo as RGB.

    Args:
        name: One of :data:`BACKGROUND_NAMES`.

    Returns:
        ``(h, w, 3)`` uint8 (greyscale photos are repeated over the three channels). Read-only.

    Raises:
        ValueError: Unknown name.
        RuntimeError: scikit-image cannot load the photo (e.g. a stripped installation).
    """
    if name not in BACKGROUND_NAMES:
        raise ValueError(f"unknown background {name!r}; known: {', '.join(BACKGROUND_NAMES)}")
    from skimage import data

    try:
        image = getattr(data, name)()
    except Exception as exc:  # scikit-image raises several types for missing data files
        raise RuntimeError(f"scikit-image could not load its bundled photo {name!r}: {exc}") from exc
    if isinstance(image, tuple):  # stereo_motorcycle returns (left, right, disparity)
        image = image[0]
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image[..., :3].astype(np.uint8))  # (h, w, 3)
    image.setflags(write=False)
    return image


@dataclass
class PanningBackground:
    """A background window larger than the frame, panned linearly over the sequence.

    Attributes:
        name: Source photo.
        canvas: ``(H + pan_y, W + pan_x, 3)`` float32 prepared background.
        pan: Total pan ``(dx, dy)`` in pixels over the sequence (signs give the direction).
        n_frames: Sequence length.
    """

    name: str
    canvas: np.ndarray
    pan: tuple[int, int]
    n_frames: int

    def frame(self, t: int, width: int, height: int) -> np.ndarray:
        """The ``(height, width, 3)`` float32 background of frame ``t`` (a copy, safe to draw on)."""
        f = t / max(self.n_frames - 1, 1)
        ox = round(abs(self.pan[0]) * (f if self.pan[0] >= 0 else 1 - f))
        oy = round(abs(self.pan[1]) * (f if self.pan[1] >= 0 else 1 - f))
        return self.canvas[oy:oy + height, ox:ox + width].copy()


def sample_background(rng: np.random.Generator, width: int, height: int, n_frames: int,
                      max_pan: float = 0.12) -> PanningBackground:
    """Draw a background for one sequence.

    Args:
        rng: Sequence random generator.
        width: Frame width.
        height: Frame height.
        n_frames: Sequence length.
        max_pan: Largest pan over the sequence, as a fraction of the frame size.

    Returns:
        The prepared background.
    """
    name = BACKGROUND_NAMES[int(rng.integers(len(BACKGROUND_NAMES)))]
    photo = load_background(name)
    pan = (int(rng.integers(-int(max_pan * width), int(max_pan * width) + 1)),
           int(rng.integers(-int(max_pan * height / 2), int(max_pan * height / 2) + 1)))
    out_w, out_h = width + abs(pan[0]), height + abs(pan[1])
    ph, pw = photo.shape[:2]
    zoom = rng.uniform(0.45, 1.0)  # share of the photo's limiting side that the window covers
    scale = min(pw / out_w, ph / out_h) * zoom
    win_w, win_h = max(8, int(out_w * scale)), max(8, int(out_h * scale))
    x0 = int(rng.integers(0, pw - win_w + 1))
    y0 = int(rng.integers(0, ph - win_h + 1))
    window = Image.fromarray(photo[y0:y0 + win_h, x0:x0 + win_w]).resize((out_w, out_h), Image.BILINEAR)
    canvas = np.asarray(window, dtype=np.float32)  # (out_h, out_w, 3)
    if rng.uniform() < 0.5:
        canvas = canvas[:, ::-1]
    contrast = rng.uniform(0.55, 0.9)
    tint = rng.uniform(-12, 12, size=3).astype(np.float32)
    canvas = canvas.mean() + (canvas - canvas.mean()) * contrast + tint
    return PanningBackground(name=name, canvas=np.ascontiguousarray(canvas, dtype=np.float32), pan=pan,
                             n_frames=n_frames)
