"""Tiny Town Centre style data written by the tests: a video of a coloured square moving right, and its .top."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from adaptrack.track.data.towncentre import TOP_COLUMNS

WIDTH, HEIGHT, FRAMES = 128, 96, 12
SIDE = 32
STEP = 3


def square_at(i: int) -> tuple[float, float, float, float]:
    """The moving square's body box ``(x, y, w, h)`` in frame ``i``."""
    return (10.0 + STEP * i, 20.0, float(SIDE), float(SIDE))


def write_video(path: Path, frames: int = FRAMES) -> Path:
    """An MP4 with a textured red-blue square moving ``STEP`` px right each frame on a still, grey, faintly
    textured background (MIL's Haar features need some texture around the target)."""
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    texture = np.kron(rng.integers(120, 255, size=(SIDE // 4, SIDE // 4)), np.ones((4, 4))).astype(np.uint8)
    grey = np.kron(rng.integers(40, 80, size=(HEIGHT // 8, WIDTH // 8)), np.ones((8, 8))).astype(np.uint8)
    background = np.repeat(grey[..., None], 3, axis=2)  # (H, W, 3)
    images = []
    for i in range(frames):
        image = background.copy()  # (H, W, 3)
        x, y, w, h = (int(v) for v in square_at(i))
        image[y:y + h, x:x + w, 0] = texture
        image[y:y + h, x:x + w, 1] = 20
        image[y:y + h, x:x + w, 2] = 255 - texture
        images.append(image)
    iio.imwrite(path, np.stack(images), extension=".mp4", plugin="FFMPEG", fps=10, codec="libx264",
                macro_block_size=16, output_params=["-crf", "10"])
    return path


def top_line(person: int, frame: int, head: tuple[float, float, float, float],
             body: tuple[float, float, float, float], head_valid: int = 1) -> str:
    """One .top line from ``(x, y, w, h)`` boxes."""
    def corners(b: tuple[float, float, float, float]) -> list[float]:
        return [b[0], b[1], b[0] + b[2], b[1] + b[3]]

    values = [person, frame, head_valid, 1, *corners(head), *corners(body)]
    return ",".join(f"{v:g}" for v in values)


def write_top(path: Path, lines: list[str], header: bool = True) -> Path:
    """A .top file with the given lines (and the header line)."""
    path.write_text("\n".join(([",".join(TOP_COLUMNS)] if header else []) + lines) + "\n", encoding="utf-8")
    return path


def square_top_lines(frames: int = FRAMES) -> list[str]:
    """Person 1 is the square (head: its top 4 px), person 2 a still person (never drawn) at the
    bottom right whose body box pokes out of the frame: 14 of its 24 rows are inside."""
    lines = []
    for i in range(frames):
        x, y, w, h = square_at(i)
        lines.append(top_line(1, i, (x + 8, y, 16, 8), (x, y, w, h)))
        lines.append(top_line(2, i, (100, 84, 8, 8), (96, 82, 16, 24)))
    return lines
