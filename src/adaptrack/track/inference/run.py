"""``adaptrack track run``: track one person through a frame folder or an animated file.

Inputs: a folder of JPEG/PNG/BMP frames (sorted by name), or a file imageio can read as frames:
GIF (and animated PNG/WebP/TIFF) through Pillow, MP4/AVI/MOV/MKV through ``imageio-ffmpeg`` (a
dependency; it bundles an ffmpeg binary).

Outputs in ``output``: ``tracks.json`` (per frame: subject box, score, ``occluded``, parts with
their ``visible`` flag), ``tracks.csv`` (one row per frame and part) and ``annotated.mp4`` or
``annotated.gif`` (subject box in green, yellow while the target is occluded and the box coasts;
visible parts in red, parts the tracker reports hidden in grey with a cross). All are written
atomically.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw

from adaptrack.common.errors import DataError
from adaptrack.common.files import atomic_path, atomic_write, check_writable_dir
from adaptrack.common.images import decode_image
from adaptrack.track.inference.tracker import TrackResult, load_tracker

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def iter_frames(source: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, (H, W, 3) uint8)`` frames of a folder or an animated/video file.

    Raises:
        DataError: The source is missing, holds no frames, or a frame cannot be decoded.
    """
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"no frames (none of {', '.join(sorted(IMAGE_SUFFIXES))}) in this folder", source)
        for f in files:
            yield str(f), decode_image(f, "RGB", what="frame file")[0]  # (H, W, 3) uint8
        return
    if not source.is_file():
        raise DataError("no such frame folder or video file", source)
    if source.stat().st_size == 0:
        raise DataError("the video has zero frames (empty file)", source)
    import imageio.v3 as iio

    n = 0
    try:
        for i, frame in enumerate(iio.imiter(source)):
            arr = np.asarray(frame)
            if arr.ndim == 2:
                arr = np.repeat(arr[..., None], 3, axis=2)
            n += 1
            yield f"{source}#{i}", arr[..., :3].astype(np.uint8, order="C")  # one writable C-contiguous copy
    except DataError:
        raise
    except Exception as exc:  # imageio raises plugin-specific errors
        raise DataError(f"cannot read frames: {type(exc).__name__}: {exc}", source) from exc
    if n == 0:
        raise DataError("the video has zero frames", source)


def draw(frame: np.ndarray, result: TrackResult | None, box: tuple[float, ...] | None = None) -> Image.Image:
    """Frame with the subject box (green; yellow while occluded) and part boxes (red; grey with a
    cross where the tracker reports the part hidden)."""
    im = Image.fromarray(frame)
    d = ImageDraw.Draw(im)
    b = result.box if result is not None else box
    if b is not None:
        colour = (255, 220, 0) if result is not None and result.occluded else (0, 255, 0)
        d.rectangle([b[0], b[1], b[0] + b[2], b[1] + b[3]], outline=colour, width=2)
    for p in result.parts if result is not None else []:
        x, y, w, h = p.box
        if p.visible:
            d.rectangle([x, y, x + w, y + h], outline=(255, 40, 40), width=2)
        else:
            d.rectangle([x, y, x + w, y + h], outline=(150, 150, 150), width=1)
            d.line([x, y, x + w, y + h], fill=(150, 150, 150), width=1)
            d.line([x, y + h, x + w, y], fill=(150, 150, 150), width=1)
    return im


def write_video(images: list[Image.Image], path: Path, fps: float) -> None:
    """Write frames as an animated GIF (Pillow) or an H.264 MP4 (imageio-ffmpeg), atomically."""
    with atomic_path(path) as tmp:
        if path.suffix == ".gif":
            images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps),
                           loop=0)
            return
        import imageio.v3 as iio

        # H.264 in yuv420p needs even sides: pad the frames by one pixel where they are odd.
        w, h = images[0].size
        even = [np.pad(np.asarray(im), ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") for im in images]
        iio.imwrite(tmp, np.stack(even), extension=".mp4", plugin="FFMPEG", fps=fps,
                    codec="libx264", macro_block_size=1)


def run(checkpoint: str, source: str, box: list[float], output: str = "runs/track/run",
        video: Literal["mp4", "gif", "none"] = "mp4", max_frames: int | None = None, fps: float = 10.0,
        threads: int = 1, settings: dict[str, Any] | None = None) -> list[dict[str, object]]:
    """Track the person in ``box`` of the first frame through ``source``.

    Args:
        checkpoint: Tracker checkpoint (``fit``) or ONNX export folder (onnxruntime).
        source: Folder of frames, or a GIF/video file.
        box: Initial box ``x, y, w, h`` in pixels of the first frame.
        output: Output folder.
        video: Annotated output: ``annotated.mp4``, ``annotated.gif``, or none.
        max_frames: Stop after this many frames.
        fps: Frame rate of the annotated video.
        threads: torch / onnxruntime intra-op threads.
        settings: :class:`~adaptrack.track.inference.decoder.TrackerSettings` fields overriding the recorded
            ones, e.g. ``'{gate: 0.3, part_gate: 0.1}'``.

    Returns:
        One record per frame (frame 0 holds the initial box).
    """
    import torch

    torch.set_num_threads(threads)
    check_writable_dir(output, "--output")  # before any frame is tracked
    if len(box) != 4:
        raise DataError(f"--box needs 4 numbers x,y,w,h, got {box}")
    tracker = load_tracker(checkpoint, threads, **(settings or {}))
    records: list[dict[str, object]] = []
    images: list[Image.Image] = []
    for i, (name, frame) in enumerate(iter_frames(source)):
        if max_frames is not None and i >= max_frames:
            break
        if i == 0:
            tracker.initialize(frame, tuple(box), frame_name=name)
            records.append({"frame": i, "name": name, "box": list(box), "score": 1.0, "occluded": False,
                            "redetected": False, "parts": []})
            result = None
        else:
            result = tracker.track(frame)
            records.append({"frame": i, "name": name, **result.as_dict()})
        if video != "none":
            images.append(draw(frame, result, tuple(box) if i == 0 else None))
    out = Path(output)
    with atomic_write(out / "tracks.json") as fh:
        json.dump({"checkpoint": checkpoint, "source": source, "parts": tracker.parts,
                   "settings": tracker.settings.as_meta(), "frames": records}, fh, indent=1)
    with atomic_write(out / "tracks.csv", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["frame", "name", "x", "y", "w", "h", "score", "occluded", "part", "part_x", "part_y",
                         "part_w", "part_h", "part_score", "part_visible"])
        for r in records:
            base = [r["frame"], r["name"], *r["box"], r["score"], int(bool(r["occluded"]))]
            parts = r["parts"] or [None]
            for p in parts:
                writer.writerow(base + ([p["name"], *p["position"], *p["size"], p["score"], int(bool(p["visible"]))]
                                        if p else [""] * 7))
    written = [out / "tracks.json", out / "tracks.csv"]
    if video != "none" and images:
        write_video(images, out / f"annotated.{video}", fps)
        written.append(out / f"annotated.{video}")
    print(f"{len(records)} frames tracked; wrote {', '.join(str(p) for p in written)}")
    return records
