"""The real-clip protocol: every visible pedestrian of an annotated clip tracked from its body box.

Protocols (:data:`PROTOCOLS`): ``dev`` starts the tracks at frame 0 and scores frames 1–62; every
choice (checkpoint, threshold, setting) is made there. ``test`` starts them at frame 63 and scores
frames 64–125; it is only reported.

Rules (all stated in the output):

- **Who starts**: every person annotated in the start frame whose body box, before clipping to the
  frame, is at least ``min_inside`` inside it (default 0.5: "at least mostly inside"; without the
  unclipped shares every annotated person starts). The tracker is initialised with that person's
  (clipped) body box on the start frame and runs on every following frame up to the last scored one;
  it is never re-initialised.
- **Scored frames**: the frames of the scored range where the target is annotated; where it is not
  (it left the scene, or has not come back yet) the frame is not scored but the tracker keeps running,
  so a track that ends and a person who comes back are both handled: the frames without the person
  count for nothing, the frames with them count again.
- **Head outcome** (:class:`~adaptrack.track.evaluation.evaluate.PartTally`): *hit* when the output head
  position is inside the target's head box, *wrong person* when it is inside another annotated person's
  head box and not the target's, *miss* otherwise (also when the tracker gives no position). Frames
  where the target's head is not annotated are not scored for the head.
- **Subject**: the share of scored frames with IoU(output box, annotated body box) ≥ 0.5.
- **Speed**: frames/s of one tracker following one person at the clip's resolution = 1 / (mean
  ``track()`` wall time + mean decode wall time of one frame), both measured here, on ``threads``
  threads (torch, OpenCV, the ffmpeg decoder). The table also gives the ``track()`` CPU time of this
  process (``time.process_time``), which a machine shared with other jobs inflates less than the wall
  time. Frames are decoded once and shared by all trackers and people: one frame is held at a time.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from typing import Protocol as TypingProtocol

import numpy as np
import torch
from PIL import Image, ImageDraw

from adaptrack.common.errors import ConfigError, DataError
from adaptrack.common.files import atomic_path, atomic_write, check_writable_dir
from adaptrack.common.report import format_table
from adaptrack.track.data.frames import load_frame
from adaptrack.track.data.types import FrameAnn, SequenceAnn
from adaptrack.track.data.video import read_video_frames
from adaptrack.track.evaluation.evaluate import PartTally, SubjectTally
from adaptrack.track.inference.tracker import TrackResult


@dataclass(frozen=True)
class ClipProtocol:
    """Where tracks start and which frames are scored.

    Attributes:
        start: Frame index the tracks are initialised on.
        first: First scored frame index (> ``start``).
        last: Last scored frame index (inclusive).
    """

    start: int
    first: int
    last: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.first <= self.last:
            raise ConfigError(f"a protocol needs 0 <= start < first <= last, got {self}")


PROTOCOLS: dict[str, ClipProtocol] = {"dev": ClipProtocol(0, 1, 62), "test": ClipProtocol(63, 64, 125)}
"""Decide on ``dev``; report ``test``. Callers may pass their own :class:`ClipProtocol`."""

COLUMNS = ["tracker", "real labels", "tracks", "person-frames", "head hit %", "wrong-person %", "miss %",
           "IoU>=0.5 %", "FPS", "track ms", "track CPU ms", "decode ms", "threads"]


class SingleTracker(TypingProtocol):
    """What the protocol needs of a tracker (the :class:`~adaptrack.track.inference.tracker.Tracker` and
    the OpenCV baselines have it)."""

    def initialize(self, frame: Any, box: tuple[float, float, float, float], frame_name: str = ...) -> None: ...

    def track(self, frame: Any) -> TrackResult: ...


TrackerSource = Callable[[], SingleTracker] | SingleTracker
"""A factory of fresh trackers, or a tracker whose ``copy()`` gives one per person."""


def _fresh(source: TrackerSource) -> SingleTracker:
    if not isinstance(source, type) and hasattr(source, "initialize"):
        copy = getattr(source, "copy", None)
        if copy is None:
            raise ConfigError(f"{type(source).__name__} has no copy(): pass a factory that builds one tracker "
                              "per person instead")
        return copy()
    return source()  # type: ignore[operator,no-any-return]


def start_people(sequence: SequenceAnn, start: int, min_inside: float = 0.5,
                 inside: Mapping[tuple[int, int], float] | None = None) -> list[int]:
    """Track ids that start at frame ``start``: annotated there, body box at least ``min_inside`` inside.

    Args:
        sequence: The annotated clip.
        start: Start frame index.
        min_inside: Smallest share of the unclipped body box inside the frame.
        inside: ``{(track id, frame index): share inside}`` before clipping
            (:func:`~adaptrack.track.data.towncentre.inside_shares`); ``None`` counts every box as inside.

    Raises:
        DataError: The start frame is not annotated.
    """
    frame = next((f for f in sequence.frames if f.frame_index == start), None)
    if frame is None:
        raise DataError(f"start frame {start} is not annotated in sequence {sequence.name!r}", sequence.name)
    return [p.track_id for p in frame.people
            if (1.0 if inside is None else inside.get((p.track_id, start), 1.0)) >= min_inside]


def _frames(sequence: SequenceAnn, video: str | Path | None, start: int, last: int,
            threads: int) -> Iterator[tuple[int, np.ndarray, float]]:
    """``(frame index, (H, W, 3) uint8, decode seconds)`` for frames ``start..last``: from the video
    (every frame), else from the annotated frames' files (annotated frames only)."""
    if video is not None:
        frames = read_video_frames(video, threads)
        while True:
            t0 = time.perf_counter()
            item = next(frames, None)
            seconds = time.perf_counter() - t0
            if item is None or item[0] > last:
                return
            if item[0] >= start:
                yield item[0], item[1], seconds
    for f in sequence.frames:
        if start <= f.frame_index <= last:
            t0 = time.perf_counter()
            image = load_frame(f.path).permute(1, 2, 0).numpy()  # (H, W, 3)
            yield f.frame_index, image, time.perf_counter() - t0


@dataclass
class _Run:
    """One tracker's state and tallies over the clip."""

    name: str
    source: TrackerSource
    labels: str
    live: dict[int, SingleTracker] = field(default_factory=dict)
    head: PartTally = field(default_factory=PartTally)
    subject: SubjectTally = field(default_factory=SubjectTally)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    calls: int = 0
    last: dict[int, TrackResult] = field(default_factory=dict)


def evaluate_clip(sequence: SequenceAnn, trackers: Mapping[str, TrackerSource],
                  protocol: str | ClipProtocol = "dev", labels: Mapping[str, str] | None = None,
                  video: str | Path | None = None, min_inside: float = 0.5,
                  inside: Mapping[tuple[int, int], float] | None = None, threads: int = 1,
                  still: str | Path | None = None) -> list[dict[str, object]]:
    """Run every tracker on every starting person of the clip and score the head and the box.

    Args:
        sequence: The annotated clip (one head part).
        trackers: ``{name: factory or tracker}``.
        protocol: A name in :data:`PROTOCOLS` or a :class:`ClipProtocol`.
        labels: Per tracker, the real labels used in its training (a free string; default ``"none"``).
        video: Decode the frames from this video (what the FPS counts); ``None`` reads the annotated
            frames' files.
        min_inside: See :func:`start_people`.
        inside: See :func:`start_people`.
        threads: Threads for torch, OpenCV and the decoder (recorded in the rows).
        still: Write an annotated still of the last scored frame here (:func:`draw_still`).

    Returns:
        One row per tracker with the :data:`COLUMNS` keys plus ``"started"`` (track ids) and
        ``"timelines"`` (per track, one letter per frame: ``h``/``W``/``m``, ``-`` not scored).

    Raises:
        ConfigError: Unknown protocol, no tracker, or a sequence without exactly one (head) part.
        DataError: The start frame is not annotated, or no person starts.
    """
    proto = protocol if isinstance(protocol, ClipProtocol) else PROTOCOLS.get(protocol)
    if proto is None:
        raise ConfigError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)} or give a ClipProtocol")
    if not trackers:
        raise ConfigError("no tracker to evaluate")
    if len(sequence.parts) != 1:
        raise ConfigError(f"the real-clip protocol scores one part (the head); the sequence has {sequence.parts}")
    _set_threads(threads)
    ids = start_people(sequence, proto.start, min_inside, inside)
    if not ids:
        raise DataError(f"no person starts at frame {proto.start} (none annotated with at least {min_inside:.0%} "
                        "of the body box inside the frame)", sequence.name)
    by_index = {f.frame_index: f for f in sequence.frames}
    runs = [_Run(name, source, (labels or {}).get(name, "none")) for name, source in trackers.items()]
    decode_seconds, decoded, still_frame = 0.0, 0, None
    for index, image, seconds in _frames(sequence, video, proto.start, proto.last, threads):
        decode_seconds += seconds
        decoded += 1
        ann = by_index.get(index)
        if index == proto.start:
            assert ann is not None
            for run in runs:
                for tid in ids:
                    person = ann.person(tid)
                    assert person is not None
                    tracker = _fresh(run.source)
                    tracker.initialize(image, person.box, frame_name=f"{sequence.name} frame {index}")
                    run.live[tid] = tracker
            continue
        if not run_started(runs):
            continue
        for run in runs:
            for tid, tracker in run.live.items():
                t0, c0 = time.perf_counter(), time.process_time()
                result = tracker.track(image)
                run.seconds += time.perf_counter() - t0
                run.cpu_seconds += time.process_time() - c0
                run.calls += 1
                run.last[tid] = result
                if index >= proto.first:
                    _score(run, tid, result, ann)
        if index >= proto.first and ann is not None:
            still_frame = (index, image, ann, {run.name: dict(run.last) for run in runs})
    if not run_started(runs):
        raise DataError(f"frame {proto.start} was never decoded (the video is shorter)", str(video or sequence.name))
    decode = decode_seconds / max(decoded, 1)
    rows = [_row(run, decode, threads) | {"started": ids} for run in runs]
    if still is not None and still_frame is not None:
        index, image, ann, results = still_frame
        draw_still(image, ann, results, still)
    return rows


def run_started(runs: Sequence[_Run]) -> bool:
    """True once the trackers were initialised (the start frame has been seen)."""
    return bool(runs and runs[0].live)


def _set_threads(threads: int) -> None:
    torch.set_num_threads(threads)
    try:
        import cv2
    except ImportError:  # pragma: no cover - only the OpenCV baselines need it
        return
    cv2.setNumThreads(threads)


def _score(run: _Run, tid: int, result: TrackResult, ann: FrameAnn | None) -> None:
    track = str(tid)
    person = None if ann is None else ann.person(tid)
    if person is None or ann is None:
        run.head.skip(track)  # the target is not annotated here: not scored
        return
    run.subject.add(torch.tensor(result.box, dtype=torch.float32), torch.tensor(person.box, dtype=torch.float32))
    head = person.parts[0]
    if head is None:
        run.head.skip(track)
        return
    others = torch.tensor([p.parts[0] for p in ann.people if p.track_id != tid and p.parts[0] is not None],
                          dtype=torch.float32).reshape(-1, 4)  # (M, 4)
    part = result.parts[0] if result.parts else None
    position = torch.tensor(part.position if part is not None else (math.nan, math.nan), dtype=torch.float32)
    run.head.add(position, torch.tensor(head, dtype=torch.float32), others, track)


def _row(run: _Run, decode: float, threads: int) -> dict[str, object]:
    n = run.head.hit + run.head.wrong + run.head.miss
    share = 100 / n if n else math.nan
    ious = np.nan_to_num(np.asarray(run.subject.ious, dtype=float), nan=0.0)
    per_call = run.seconds / run.calls if run.calls else math.nan
    return {"tracker": run.name, "real labels": run.labels, "tracks": len(run.live), "person-frames": n,
            "head hit %": run.head.hit * share, "wrong-person %": run.head.wrong * share,
            "miss %": run.head.miss * share,
            "IoU>=0.5 %": 100 * float((ious >= 0.5).mean()) if ious.size else math.nan,
            "FPS": 1 / (per_call + decode) if run.calls else math.nan, "threads": threads,
            "track ms": 1000 * per_call,
            "track CPU ms": 1000 * run.cpu_seconds / run.calls if run.calls else math.nan,
            "decode ms": 1000 * decode, "timelines": run.head.timelines()}


COLOURS = ((0, 200, 0), (255, 140, 0), (0, 160, 255), (220, 0, 220), (255, 230, 0))
"""Box colour per tracker, in order."""


def draw_still(image: np.ndarray, annotation: FrameAnn, results: Mapping[str, Mapping[int, TrackResult]],
               path: str | Path) -> Path:
    """Draw one frame: ground-truth head boxes (white), each tracker's boxes and head points (one colour
    per tracker, a legend top-left), written atomically (PNG/JPEG by suffix).

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame.
        annotation: The frame's annotation (its head boxes are drawn).
        results: ``{tracker name: {track id: result}}``.
        path: Output image file.

    Returns:
        ``path``.
    """
    canvas = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(canvas)
    line = max(2, canvas.width // 640)
    for person in annotation.people:
        if person.parts[0] is not None:
            x, y, w, h = person.parts[0]
            draw.rectangle([x, y, x + w, y + h], outline=(255, 255, 255), width=line)
    for i, (name, per_track) in enumerate(results.items()):
        colour = COLOURS[i % len(COLOURS)]
        for result in per_track.values():
            x, y, w, h = result.box
            draw.rectangle([x, y, x + w, y + h], outline=colour, width=line)
            for part in result.parts:
                px, py = part.position
                r = 3 * line
                draw.ellipse([px - r, py - r, px + r, py + r], fill=colour)
        draw.rectangle([8, 8 + 22 * i, 26, 26 + 22 * i], fill=colour)
        draw.text((32, 10 + 22 * i), name, fill=colour)
    draw.text((8, 12 + 22 * len(results)), f"frame {annotation.frame_index}; white: annotated heads",
              fill=(255, 255, 255))
    path = Path(path)
    with atomic_path(path) as tmp:
        canvas.save(tmp)
    return path


BASELINES: dict[str, Callable[[], SingleTracker]] = {}
"""Built-in tracker names for :func:`evaluate_real` (filled lazily by :func:`_baselines`)."""


def _baselines() -> dict[str, Callable[[], SingleTracker]]:
    if not BASELINES:
        from adaptrack.track.baselines import HOGBaseline, MILBaseline

        BASELINES.update({"opencv-mil": MILBaseline, "opencv-hog": HOGBaseline})
    return BASELINES


def protocol_text(proto: ClipProtocol, min_inside: float) -> str:
    """One sentence stating the protocol."""
    return (f"tracks start at frame {proto.start} on every person annotated there with at least {min_inside:.0%} of "
            f"the body box inside the frame; scored on frames {proto.first}-{proto.last} where the target is "
            "annotated (a track keeps running when its person leaves; those frames are not scored); head hit: "
            "output inside the target's head box, wrong person: inside another's and not the target's, miss: "
            "otherwise; FPS = 1 / (track() time + decode time) per frame, one person")


def evaluate_real(top: str, video: str, trackers: list[str], protocol: str = "dev", output: str | None = None,
                  labels: list[str] | None = None, frames_dir: str | None = None, min_inside: float = 0.5,
                  threads: int = 1, still: bool = True) -> list[dict[str, object]]:
    """Evaluate trackers on a Town Centre clip under the ``dev`` or ``test`` protocol; print the table.

    Args:
        top: The clip's ``.top`` ground truth.
        video: The clip's video (decoded once; its frames are also extracted, once, for the annotations).
        trackers: Checkpoints or ONNX export folders (:func:`~adaptrack.track.inference.tracker.load_tracker`)
            and the built-in names ``opencv-mil``, ``opencv-hog``.
        protocol: ``dev`` (start 0, score 1-62; decide here) or ``test`` (start 63, score 64-125; report).
        output: Folder for ``metrics.json``, ``metrics.md`` and ``still.jpg``; nothing written when unset.
        labels: Per tracker, the real labels used in its training (default ``none``).
        frames_dir: Where the video's frames are extracted (default a user cache folder).
        min_inside: Smallest share of a body box inside the frame for its person to start.
        threads: torch / OpenCV / decoder threads.
        still: Also write ``still.jpg`` (the last scored frame, annotated) into ``output``.

    Returns:
        The table rows.
    """
    from adaptrack.track.data.towncentre import inside_shares, read_top, read_towncentre
    from adaptrack.track.inference.tracker import load_tracker

    if output is not None:
        check_writable_dir(output, "--output")
    if labels is not None and len(labels) != len(trackers):
        raise ConfigError(f"{len(labels)} --labels for {len(trackers)} --trackers")
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown --protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    builtin = _baselines()
    sources: dict[str, TrackerSource] = {}
    for spec in trackers:
        name = spec if spec in builtin else (Path(spec).parent.name if Path(spec).is_file() else Path(spec).name)
        if name in sources:
            name = spec
        sources[name] = builtin[spec] if spec in builtin else load_tracker(spec, threads)
    label_map = dict(zip(sources, labels, strict=True)) if labels else {}
    sequence = read_towncentre(top, video, frames_dir)
    first = sequence.frames[0]
    inside = inside_shares(read_top(top), first.width, first.height)
    proto = PROTOCOLS[protocol]
    rows = evaluate_clip(sequence, sources, proto, label_map, video, min_inside, inside, threads,
                         still=Path(output) / "still.jpg" if output and still else None)
    title = (f"{sequence.name}, protocol {protocol} ({first.width}x{first.height}, "
             f"{rows[0]['tracks']} tracks: {rows[0]['started']})")
    table = format_table(rows, COLUMNS, precision=1, title=title) + "\n" + protocol_text(proto, min_inside)
    print(table)
    if output:
        out = Path(output)
        with atomic_write(out / "metrics.json") as fh:
            json.dump({"top": top, "video": video, "protocol": protocol, "start": proto.start,
                       "scored": [proto.first, proto.last], "min_inside": min_inside, "rows": rows}, fh,
                      indent=2, default=str)
        with atomic_write(out / "metrics.md") as fh:
            fh.write(table + "\n")
    return rows
