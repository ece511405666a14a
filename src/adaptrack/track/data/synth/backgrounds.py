"""Scene backgrounds cut from the photos bundled with scikit-image (no download).

Only images shipped inside the scikit-image wheel are used (verified offline with scikit-image
0.26: each loads from ``skimage/data`` without network access). A sequence picks one, zooms into a
random window, optionally mirrors it, lowers its contrast a little so people stand out, and pans
slowly across it. With a folder of the user's own photos (``--backgrounds DIR``) the windows are cut
from those instead, the same way; :func:`median_background` makes such a photo from a video of the
user's own camera (the per-pixel median over its frames removes the people walking by).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from adaptrack.common.errors import DataError
from adaptrack.common.images import decode_image

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
"""Files of a background folder that are used (case-insensitive); others are ignored."""

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


@functools.cache
def background_files(folder: str) -> tuple[Path, ...]:
    """The photos of a background folder, sorted by name (the order seeds refer to).

    Raises:
        DataError: ``folder`` is not a directory or holds no photo; the message names it.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataError("background folder not found (give a folder of photos, e.g. street scenes)", root)
    files = tuple(sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES))
    if not files:
        raise DataError(f"background folder holds no photo ({', '.join(PHOTO_SUFFIXES)})", root)
    return files


@functools.cache
def load_photo(path: Path) -> np.ndarray:
    """A background photo as read-only ``(h, w, 3)`` uint8 RGB.

    Raises:
        DataError: Unreadable or smaller than 16×16 pixels; the message names the file.
    """
    image, _ = decode_image(path, "RGB", what="background photo")
    if min(image.shape[:2]) < 16:
        raise DataError(f"background photo is too small ({image.shape[1]}x{image.shape[0]}; at least 16x16)", path)
    image.setflags(write=False)
    return image


def median_background(video_or_frames: str | Path | Iterable[np.ndarray], out_path: str | Path | None = None,
                      max_frames: int = 48) -> np.ndarray:
    """Per-pixel median of a video's frames: the static scene without the people moving through it.

    A clean background from the user's own camera, without labels, for ``--backgrounds`` (people
    who stand still for most of the frames stay in it).

    Args:
        video_or_frames: A video file or a folder of frames (read as ``adaptrack track run`` reads
            them), or ``(H, W, 3)`` uint8 arrays.
        out_path: Where to write the result (PNG or JPEG by suffix); ``None`` writes nothing.
        max_frames: At most this many frames, evenly spaced over the source, enter the median.

    Returns:
        ``(H, W, 3)`` uint8 median image.

    Raises:
        DataError: Unreadable source, no frames, or frames of different sizes (names the source).
    """
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    name = str(video_or_frames) if isinstance(video_or_frames, str | Path) else "<frames>"
    if isinstance(video_or_frames, str | Path):
        from adaptrack.track.inference.run import iter_frames

        source: Iterable[np.ndarray] = (f for _, f in iter_frames(video_or_frames))
    else:
        source = video_or_frames
    # every stride-th frame, the stride doubling whenever 2 * max_frames are kept: evenly spaced
    # frames of a source of unknown length, never more than 2 * max_frames in memory
    picked: list[np.ndarray] = []
    stride = 1
    for i, frame in enumerate(source):
        if i % stride == 0:
            picked.append(np.asarray(frame))
            if len(picked) >= 2 * max_frames:
                picked, stride = picked[::2], 2 * stride
    if not picked:
        raise DataError("no frames to take the median of", name)
    picked = [picked[int(i)] for i in np.unique(np.linspace(0, len(picked) - 1, min(max_frames, len(picked))))]
    shapes = {f.shape for f in picked}
    if len(shapes) != 1 or picked[0].ndim != 3 or picked[0].shape[2] != 3:
        raise DataError(f"frames must all be (H, W, 3) of one size, got {sorted(shapes)}", name)
    stack = np.stack(picked)  # (N, H, W, 3) uint8
    out = np.empty(stack.shape[1:], np.uint8)
    rows = max(1, 2_000_000 // max(stack.shape[0] * stack.shape[2] * 3, 1))  # bounded float memory per chunk
    for y in range(0, stack.shape[1], rows):
        out[y:y + rows] = np.median(stack[:, y:y + rows], axis=0).round().astype(np.uint8)  # (rows, W, 3)
    if out_path is not None:
        from adaptrack.common.files import atomic_path

        out_path = Path(out_path)
        with atomic_path(out_path) as tmp:
            Image.fromarray(out).save(tmp, format="JPEG" if out_path.suffix.lower() in (".jpg", ".jpeg") else "PNG")
    return out


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
                      max_pan: float = 0.12, folder: str | Path | None = None) -> PanningBackground:
    """Draw a background for one sequence.

    Args:
        rng: Sequence random generator.
        width: Frame width.
        height: Frame height.
        n_frames: Sequence length.
        max_pan: Largest pan over the sequence, as a fraction of the frame size.
        folder: Folder of photos to cut the background from (:func:`background_files`); ``None``:
            scikit-image's bundled photos. The same random draws either way.

    Returns:
        The prepared background.

    Raises:
        DataError: The folder is missing or empty, or a photo is unreadable (names it).
    """
    if folder is None:
        name = BACKGROUND_NAMES[int(rng.integers(len(BACKGROUND_NAMES)))]
        photo = load_background(name)
    else:
        files = background_files(str(folder))
        path = files[int(rng.integers(len(files)))]
        name, photo = path.name, load_photo(path)
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
