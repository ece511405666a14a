"""Video frames: decode a video file, extract its frames as JPEG files once, list a frame folder.

:func:`read_video_frames` decodes through imageio's ffmpeg plugin (``imageio-ffmpeg`` bundles the
ffmpeg binary) one frame at a time, so a 1080p clip never sits in memory whole.
:func:`extract_frames` writes ``000000.jpg``, ``000001.jpg``, … (named by the frame's index in the
video, JPEG quality 95) plus ``frames.json``, a manifest of the video's size and modification time
and the options; a second call with the same video and options finds the manifest and does nothing.
:func:`frame_paths` takes either a video (extracted into a cache folder) or a folder of images.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from adaptrack.common.errors import ConfigError, DataError
from adaptrack.common.files import atomic_path, atomic_write

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
"""Frame files :func:`frame_paths` lists in a folder."""
MANIFEST = "frames.json"
"""Name of the manifest :func:`extract_frames` writes into its folder."""
JPEG_QUALITY = 95


def read_video_frames(path: str | Path, threads: int | None = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Decode a video file frame by frame.

    Args:
        path: Any file ffmpeg reads (MP4/AVI/MOV/MKV, …).
        threads: ffmpeg decoder threads (``-threads``; default 1, single-threaded, so decoding does not
            compete with the tracker for cores); ``None`` lets ffmpeg choose.

    Yields:
        ``(index, frame)``: the 0-based frame index and an ``(H, W, 3)`` uint8 RGB array.

    Raises:
        DataError: The file is missing, empty, not a video, or has zero frames.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no such video file", path)
    if path.stat().st_size == 0:
        raise DataError("the video has zero frames (empty file)", path)
    import imageio.v3 as iio

    params = {} if threads is None else {"input_params": ["-threads", str(threads)]}
    n = 0
    try:
        for index, frame in enumerate(iio.imiter(path, plugin="FFMPEG", **params)):
            arr = np.asarray(frame)
            if arr.ndim == 2:
                arr = np.repeat(arr[..., None], 3, axis=2)  # (H, W, 3)
            n += 1
            yield index, np.ascontiguousarray(arr[..., :3], dtype=np.uint8)  # (H, W, 3)
    except (OSError, RuntimeError, ValueError, StopIteration) as exc:  # ffmpeg errors vary by plugin version
        raise DataError(f"cannot decode the video ({exc})", path) from exc
    if n == 0:
        raise DataError("the video has zero frames", path)


def _natural_key(path: Path) -> list[object]:
    """Sort key putting ``frame2`` before ``frame10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


def _signature(video: Path, every: int, start: int, stop: int | None) -> dict[str, object]:
    stat = video.stat()
    return {"video": str(video.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
            "every": every, "start": start, "stop": stop, "quality": JPEG_QUALITY}


def extract_frames(video: str | Path, out_dir: str | Path, every: int = 1, start: int = 0,
                   stop: int | None = None) -> list[Path]:
    """Write the video's frames ``start, start + every, …`` (before ``stop``) as JPEG files.

    Files are named by the frame's index in the video (``000063.jpg`` is frame 63, whatever
    ``every``/``start``), so annotations that count frames from 0 find them by number. A manifest
    (``frames.json``) records the video's size, modification time and the options; when it matches
    and every listed file exists, nothing is decoded again.

    Args:
        video: The video file.
        out_dir: Folder for the frames (created).
        every: Keep every ``every``-th frame (≥ 1).
        start: First frame index to keep (≥ 0).
        stop: Frame index to stop before; ``None`` for the end of the video.

    Returns:
        The written (or already present) frame files, in frame order.

    Raises:
        ConfigError: ``every < 1``, ``start < 0`` or ``stop <= start``.
        DataError: The video cannot be decoded, or no frame falls in the range.
    """
    video, out = Path(video), Path(out_dir)
    if every < 1 or start < 0 or (stop is not None and stop <= start):
        raise ConfigError(f"extract_frames needs every >= 1, start >= 0 and stop > start; got every={every}, "
                          f"start={start}, stop={stop}")
    if not video.is_file():
        raise DataError("no such video file", video)
    signature = _signature(video, every, start, stop)
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            recorded = json.loads(manifest.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            recorded = {}
        files = [out / name for name in recorded.get("files", [])]
        if recorded.get("signature") == signature and files and all(f.is_file() for f in files):
            return files
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for index, frame in read_video_frames(video):
        if stop is not None and index >= stop:
            break
        if index < start or (index - start) % every:
            continue
        target = out / f"{index:06d}.jpg"
        with atomic_path(target) as tmp:
            Image.fromarray(frame).save(tmp, format="JPEG", quality=JPEG_QUALITY)
        files.append(target)
    if not files:
        raise DataError(f"no frame in the range start={start}, stop={stop} (the video is shorter)", video)
    with atomic_write(manifest) as fh:
        json.dump({"signature": signature, "files": [f.name for f in files]}, fh, indent=1)
    return files


def frame_paths(source: str | Path, cache_dir: str | Path | None = None) -> list[Path]:
    """The frame files of a video or a folder of images.

    Args:
        source: A video file (its frames are extracted into ``cache_dir`` by :func:`extract_frames`,
            once) or a folder of ``.jpg``/``.jpeg``/``.png`` files (naturally sorted: ``2.jpg``
            before ``10.jpg``).
        cache_dir: Where a video's frames go; required for a video.

    Returns:
        Frame files in frame order.

    Raises:
        ConfigError: ``source`` is a video and ``cache_dir`` is not given.
        DataError: ``source`` is missing, or the folder holds no image file.
    """
    source = Path(source)
    if source.is_dir():
        files = sorted((p for p in source.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
                       key=_natural_key)
        if not files:
            raise DataError(f"no frame files ({', '.join(IMAGE_SUFFIXES)}) in this folder", source)
        return files
    if not source.is_file():
        raise DataError("no such video file or frame folder", source)
    if cache_dir is None:
        raise ConfigError(f"{source} is a video: give a cache folder to extract its frames into")
    return extract_frames(source, cache_dir)
