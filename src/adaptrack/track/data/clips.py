"""Clip sampling: T frames of one sequence and one target track, its frame-0 box as the template."""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from adaptrack.common.errors import DataError
from adaptrack.track.data.frames import crop_frame, frame_size, load_frame
from adaptrack.track.data.geometry import box_area, box_centre, scale_boxes
from adaptrack.track.data.types import Box, Clip, ClipBatch, FrameAnn, SequenceAnn
from adaptrack.track.geometry import Window, jittered_window

NAN_BOX = (math.nan, math.nan, math.nan, math.nan)


@dataclass(frozen=True)
class SearchCrop:
    """Training clips cut as the search-region tracker cuts frames
    (:attr:`~adaptrack.track.inference.decoder.TrackerSettings.search_factor`).

    Each clip gets one square region around its template box (frame 0), of side ``factor`` × the box's
    longer side, scaled by ``exp(scale_jitter × u)`` and moved by ``shift_jitter × u' ×`` the side
    (``u, u'`` uniform in [-1, 1], drawn per clip); every frame of the clip is cut there and resized
    to the input size, and every box follows. Evaluation clips (the enumerating mode) are cut
    without jitter.

    Attributes:
        factor: Region side over the target's longer side (the tracker's ``search_factor``).
        scale_jitter: Log-scale jitter of the side.
        shift_jitter: Centre jitter as a fraction of the side.
    """

    factor: float = 2.3
    scale_jitter: float = 0.25
    shift_jitter: float = 0.15

    def __post_init__(self) -> None:
        if not (math.isfinite(self.factor) and self.factor >= 1):
            raise ValueError(f"search crop factor must be >= 1, got {self.factor}")
        if not (0 <= self.scale_jitter <= 1 and 0 <= self.shift_jitter <= 0.5):
            raise ValueError(f"search crop jitters must be in [0, 1] (scale) and [0, 0.5] (shift), got "
                             f"{self.scale_jitter} and {self.shift_jitter}")


@dataclass(frozen=True)
class _Item:
    sequence: int
    start: int
    track_id: int


class ClipDataset(Dataset[Clip]):
    """Clips of ``clip_len`` annotated frames with one target track visible in the first frame.

    Without ``samples_per_epoch`` the dataset enumerates every (sequence, start frame, track visible at
    the start) once, with the fixed ``stride``. With ``samples_per_epoch`` it has that many items, each
    drawn from the same pool by a generator seeded from ``(seed, epoch, index)``, so a run is
    reproducible while :meth:`set_epoch` changes the draw; ``max_stride`` then draws a stride per item.

    Args:
        sequences: Annotated sequences (from :func:`read_posetrack` or the generator).
        clip_len: T, frames per clip (≥ 1).
        stride: Step between consecutive clip frames, in annotated-frame positions.
        max_stride: When set (≥ ``stride``), each item draws a stride in ``[stride, max_stride]``,
            reduced when the window would run past the sequence end or a ``max_frame_gap``.
        max_frame_gap: Largest allowed jump in video frame index between consecutive clip frames
            (guards against holes in sparse annotations); ``None`` allows any.
        size: ``(H, W)`` to resize every frame to (e.g. ``(256, 256)``), scaling all boxes; ``None``
            keeps the original size (all frames of a clip must then share one size).
        targets: ``"all"`` tracks any person; ``"designated"`` only each sequence's
            ``target_track`` (falling back to all tracks when a sequence names none).
        samples_per_epoch: Random-sampling mode with this many items; ``None`` enumerates.
        seed: Seed of the random-sampling mode.
        require_template_part: Only start clips where the target's first part is visible in frame 0.
        hard_share: In the random-sampling mode, the share of draws taken from *hard* clips only
            (:func:`is_crowded_frame`: in some frame of the clip's window the target's part is
            hidden, or another person's part centre lies within ``hard_radius`` target part sizes
            of it); the rest are drawn from all clips. 0 draws uniformly.
        hard_radius: Distance, in target part sizes (geometric-mean side), under which another
            person's part makes a frame hard.
        search: Cut every clip as the search-region tracker does (:class:`SearchCrop`): frames of
            any size give ``size`` inputs with the target at the tracker's scale; needs a square ``size``.

    Raises:
        DataError: No clip can be formed (sequences too short, no visible targets).
    """

    def __init__(self, sequences: Sequence[SequenceAnn], clip_len: int, stride: int = 1,
                 max_stride: int | None = None, max_frame_gap: int | None = None,
                 size: tuple[int, int] | None = None, targets: Literal["all", "designated"] = "all",
                 samples_per_epoch: int | None = None, seed: int = 0,
                 require_template_part: bool = False, hard_share: float = 0.0, hard_radius: float = 0.75,
                 search: SearchCrop | None = None) -> None:
        if clip_len < 1 or stride < 1:
            raise ValueError(f"clip_len and stride must be ≥ 1, got {clip_len} and {stride}")
        if max_stride is not None and max_stride < stride:
            raise ValueError(f"max_stride ({max_stride}) must be ≥ stride ({stride})")
        if targets not in ("all", "designated"):
            raise ValueError(f"targets must be 'all' or 'designated', got {targets!r}")
        if not 0.0 <= hard_share <= 1.0:
            raise ValueError(f"hard_share must be in [0, 1], got {hard_share}")
        if not hard_radius > 0:
            raise ValueError(f"hard_radius must be > 0, got {hard_radius}")
        if search is not None and (size is None or size[0] != size[1]):
            raise ValueError(f"search crops need a square size, got {size}")
        self.search = search
        self.sequences = list(sequences)
        self.clip_len = clip_len
        self.stride = stride
        self.max_stride = max_stride
        self.max_frame_gap = max_frame_gap
        self.size = size
        self.samples_per_epoch = samples_per_epoch
        self.seed = seed
        self.epoch = 0
        self.items = self._index(targets, require_template_part)
        if not self.items:
            names = ", ".join(s.name for s in self.sequences[:5]) or "(none)"
            raise DataError(
                f"no clip of {clip_len} frames (stride {stride}) with a visible target can be formed from "
                f"{len(self.sequences)} sequence(s): {names}; use shorter clips or longer sequences"
            )
        self.hard_share = hard_share
        self.hard_items = [i for i, item in enumerate(self.items) if self._is_hard(item, hard_radius)] \
            if hard_share > 0 else []
        if hard_share > 0 and not self.hard_items:
            warnings.warn(f"hard_share={hard_share}: no clip of {len(self.sequences)} sequence(s) is crowded at "
                          f"hard_radius={hard_radius}; drawing uniformly", stacklevel=2)

    def _fits(self, seq: SequenceAnn, start: int, stride: int) -> bool:
        last = start + (self.clip_len - 1) * stride
        if last >= len(seq.frames):
            return False
        if self.max_frame_gap is None:
            return True
        idx = [seq.frames[p].frame_index for p in range(start, last + 1, stride)]
        return all(b - a <= self.max_frame_gap for a, b in itertools.pairwise(idx))

    def _index(self, targets: str, require_part: bool) -> list[_Item]:
        items: list[_Item] = []
        for s, seq in enumerate(self.sequences):
            wanted = None
            if targets == "designated" and seq.target_track is not None:
                wanted = seq.target_track
            for start, frame in enumerate(seq.frames):
                if not self._fits(seq, start, self.stride):
                    continue
                for person in frame.people:
                    if wanted is not None and person.track_id != wanted:
                        continue
                    if require_part and (not person.parts or person.parts[0] is None):
                        continue
                    items.append(_Item(s, start, person.track_id))
        return items

    def _is_hard(self, item: _Item, radius: float) -> bool:
        """Whether any frame the item's clip can span (up to ``max_stride``) is crowded for its target."""
        seq = self.sequences[item.sequence]
        span = (self.clip_len - 1) * (self.max_stride or self.stride)
        frames = seq.frames[item.start:item.start + span + 1]
        return any(is_crowded_frame(frame, item.track_id, radius) for frame in frames)

    def set_epoch(self, epoch: int) -> None:
        """Change the random draw of the sampling mode (no effect when enumerating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples_per_epoch if self.samples_per_epoch is not None else len(self.items)

    def __getitem__(self, index: int | tuple[int, int]) -> Clip:
        """Clip ``index`` of the current epoch, or of ``epoch`` for an ``(epoch, index)`` pair
        (:class:`~adaptrack.common.resume.ResumableSampler`'s indices: no :meth:`set_epoch` needed)."""
        epoch, index = index if isinstance(index, tuple) else (self.epoch, index)
        if not 0 <= index < len(self):
            raise IndexError(f"clip index {index} out of range for {len(self)} clips")
        stride = self.stride
        jitter = None
        if self.samples_per_epoch is None:
            item = self.items[index]
        else:
            rng = np.random.default_rng([self.seed, epoch, index])
            if self.hard_items and rng.random() < self.hard_share:
                item = self.items[self.hard_items[int(rng.integers(len(self.hard_items)))]]
            else:
                item = self.items[int(rng.integers(len(self.items)))]
            if self.max_stride is not None:
                stride = int(rng.integers(self.stride, self.max_stride + 1))
                seq = self.sequences[item.sequence]
                while stride > self.stride and not self._fits(seq, item.start, stride):
                    stride -= 1
            if self.search is not None:  # drawn last: the clips drawn are those of the full-frame mode
                jitter = tuple(float(u) for u in rng.uniform(-1.0, 1.0, 3))
        return self.make_clip(item.sequence, item.start, item.track_id, stride, jitter)

    def make_clip(self, sequence: int, start: int, track_id: int, stride: int = 1,
                  jitter: tuple[float, float, float] | None = None) -> Clip:
        """Build the clip of ``sequences[sequence]`` from annotated position ``start``.

        Args:
            sequence: Index into the dataset's sequences.
            start: Position of the first frame in ``SequenceAnn.frames``.
            track_id: Target track; must be visible in the first frame.
            stride: Step between clip frames in annotated positions.
            jitter: With :attr:`search`, the three ``[-1, 1]`` draws of the region's scale and shift
                (:func:`~adaptrack.track.geometry.jittered_window`); ``None`` cuts it without jitter.

        Returns:
            The clip, frames resized to ``size`` (or cut at the search region) when set.
        """
        seq = self.sequences[sequence]
        frames = [seq.frames[start + t * stride] for t in range(self.clip_len)]
        target = frames[0].person(track_id)
        if target is None:
            raise DataError(f"track {track_id} is not in frame {frames[0].frame_index} of {seq.name}",
                            frames[0].path)
        if self.search is not None:
            assert self.size is not None
            c = self.search
            window = jittered_window(torch.tensor(target.box), c.factor, c.scale_jitter, c.shift_jitter,
                                     jitter or (0.0, 0.0, 0.0))
            images = [self._window_image(f, window) for f in frames]
            k = self.size[0] / window[2]
            clip = build_clip_targets(seq, frames, track_id, [(k, k)] * len(frames),
                                      [(float(window[0]), float(window[1]))] * len(frames))
            clip.frames = torch.stack(images)  # (T, 3, S, S) uint8
            return clip
        images = [self._image(f) for f in frames]
        scales = [self._scale(f) for f in frames]
        clip = build_clip_targets(seq, frames, track_id, scales)
        clip.frames = torch.from_numpy(np.stack([im.numpy() for im in images]))  # (T, 3, H, W) uint8
        return clip

    def _scale(self, frame: FrameAnn) -> tuple[float, float]:
        if self.size is None:
            return (1.0, 1.0)
        return (self.size[1] / frame.width, self.size[0] / frame.height)

    @staticmethod
    def _check_size(frame: FrameAnn) -> None:
        """The frame file's header size must be the annotated one."""
        width, height = frame_size(frame.path)
        if (height, width) != (frame.height, frame.width):
            raise DataError(f"frame {frame.frame_index}: file is {width}x{height}, "
                            f"annotations say {frame.width}x{frame.height}", frame.path)

    def _image(self, frame: FrameAnn) -> torch.Tensor:
        self._check_size(frame)
        return load_frame(frame.path, self.size)  # (3, H, W) uint8

    def _window_image(self, frame: FrameAnn, window: Window) -> torch.Tensor:
        """The frame's search region resized to ``size``; ``(3, S, S)`` uint8."""
        assert self.size is not None
        self._check_size(frame)
        return crop_frame(load_frame(frame.path), window, self.size[0])


class SequentialClips(Dataset[Clip]):
    """An in-order pass over the sequences: ``streams`` tracks walked side by side, clip after clip.

    Item ``i`` is step ``i // streams`` of stream slot ``i % streams``, so a loader with
    ``batch_size = streams`` and no shuffling gives batches whose row b continues row b of the
    previous batch: clip k + 1 of a stream starts ``stride`` frames after clip k's last frame. This is
    the order the third embodiment's region-map store needs (¶63–70): maps stored while training on
    one batch are the past of the next batch's frames. A stream is a (sequence, track) drawn at
    random, walked from the first frame it can start at with one stride drawn in
    ``[1, max_stride]``; when the next clip would not fit (the sequence ends, or the target is not
    visible at its start), the slot starts a new stream. :meth:`set_epoch` redraws the streams.

    Args:
        clips: The clip pool (its items, clip length and resizing are used).
        streams: Parallel streams (the batch size).
        length: Items per epoch (rounded down to a multiple of ``streams``, at least ``streams``).
        max_stride: Largest stride of a stream.
        seed: Seed of the stream draw.
    """

    def __init__(self, clips: ClipDataset, streams: int, length: int, max_stride: int = 1, seed: int = 0) -> None:
        if streams < 1 or max_stride < 1:
            raise ValueError(f"streams and max_stride must be >= 1, got {streams} and {max_stride}")
        self.clips = clips
        self.streams = streams
        self.length = max(streams, length - length % streams)
        self.max_stride = max_stride
        self.seed = seed
        self.startable = {(it.sequence, it.start, it.track_id) for it in clips.items}
        self.first_start: dict[tuple[int, int], int] = {}
        for it in clips.items:
            key = (it.sequence, it.track_id)
            self.first_start[key] = min(self.first_start.get(key, it.start), it.start)
        self.pairs = sorted(self.first_start)
        self.plan: list[tuple[int, int, int, int]] = []
        self.epoch = 0
        self.set_epoch(0)

    def _fits(self, sequence: int, start: int, track: int, stride: int) -> bool:
        return (sequence, start, track) in self.startable and self.clips._fits(self.clips.sequences[sequence],
                                                                             start, stride)

    def _new_stream(self, rng: np.random.Generator) -> list[int]:
        for _ in range(100):
            sequence, track = self.pairs[int(rng.integers(len(self.pairs)))]
            start = self.first_start[(sequence, track)]
            stride = int(rng.integers(1, self.max_stride + 1))
            while stride > 1 and not self._fits(sequence, start, track, stride):
                stride -= 1
            if self._fits(sequence, start, track, stride):
                return [sequence, start, track, stride]
        raise DataError(f"no stream of {self.clips.clip_len}-frame clips can be formed from the sequences")

    def set_epoch(self, epoch: int) -> None:
        """Draw this epoch's streams (deterministic by ``(seed, epoch)``)."""
        self.epoch = epoch
        rng = np.random.default_rng([self.seed, epoch])
        slots = [self._new_stream(rng) for _ in range(self.streams)]
        plan = []
        for _ in range(self.length // self.streams):
            for slot, (sequence, start, track, stride) in enumerate(slots):
                plan.append((sequence, start, track, stride))
                nxt = start + self.clips.clip_len * stride
                slots[slot] = ([sequence, nxt, track, stride] if self._fits(sequence, nxt, track, stride)
                               else self._new_stream(rng))
        self.plan = plan

    def __len__(self) -> int:
        return len(self.plan)

    def shard(self, rank: int, world: int) -> list[int]:
        """Rank ``rank``'s items: its ``streams // world`` stream slots, step after step.

        Each rank walks its own streams, so the row order the region-map store needs holds on every
        rank; the ranks' items partition the epoch.

        Raises:
            ValueError: ``streams`` is not a multiple of ``world``.
        """
        if self.streams % world:
            raise ValueError(f"{self.streams} streams cannot be split among {world} processes")
        per = self.streams // world
        return [step * self.streams + rank * per + j for step in range(len(self) // self.streams) for j in range(per)]

    def __getitem__(self, index: int | tuple[int, int]) -> Clip:
        """Item ``index`` of the current epoch's plan, or of ``epoch``'s for an ``(epoch, index)`` pair."""
        if isinstance(index, tuple):
            epoch, index = index
            if epoch != self.epoch:
                self.set_epoch(epoch)
        sequence, start, track, stride = self.plan[index]
        return self.clips.make_clip(sequence, start, track, stride)


def is_crowded_frame(frame: FrameAnn, track_id: int, radius: float) -> bool:
    """Whether the target's first part is hard to tell apart in ``frame``.

    True when the target is annotated but its part is not (hidden), or when another person's part
    centre lies within ``radius`` × the target part's geometric-mean side of the target part's
    centre. False when the target is absent from the frame.
    """
    target = frame.person(track_id)
    if target is None:
        return False
    if not target.parts or target.parts[0] is None:
        return True
    centre, reach = box_centre(target.parts[0]), radius * math.sqrt(box_area(target.parts[0]))
    return any(math.dist(box_centre(person.parts[0]), centre) <= reach for person in frame.people
               if person.track_id != track_id and person.parts and person.parts[0] is not None)


def build_clip_targets(seq: SequenceAnn, frames: Sequence[FrameAnn], track_id: int,
                       scales: Sequence[tuple[float, float]],
                       origins: Sequence[tuple[float, float]] | None = None) -> Clip:
    """Box tensors of a clip (everything except the pixels, which are left empty).

    Args:
        seq: The sequence the frames belong to.
        frames: The T clip frames.
        track_id: Target track.
        scales: Per frame ``(sx, sy)`` applied to every box.
        origins: Per frame ``(x0, y0)`` subtracted from every box before the scale (a cut-out
            region's corner); ``None``: ``(0, 0)``.

    Returns:
        A :class:`Clip` whose ``frames`` is an empty ``(0, 3, 0, 0)`` tensor.
    """
    K = len(seq.parts)
    others = sorted({p.track_id for f in frames for p in f.people if p.track_id != track_id})
    slot = {tid: m for m, tid in enumerate(others)}
    T, M = len(frames), len(others)
    target_box = torch.full((T, 4), math.nan)
    target_parts = torch.full((T, K, 4), math.nan)
    other_parts = torch.full((T, M, K, 4), math.nan)
    other_boxes = torch.full((T, M, 4), math.nan)
    origins = origins or [(0.0, 0.0)] * T
    for t, (frame, (sx, sy), (ox, oy)) in enumerate(zip(frames, scales, origins, strict=True)):
        for person in frame.people:
            box = torch.tensor(scale_boxes(_shift(person.box, ox, oy), sx, sy))  # (4,)
            parts = torch.tensor([_part(_shift(b, ox, oy), sx, sy) for b in person.parts]).reshape(K, 4)  # (K, 4)
            if person.track_id == track_id:
                target_box[t], target_parts[t] = box, parts
            else:
                m = slot[person.track_id]
                other_boxes[t, m], other_parts[t, m] = box, parts
    return Clip(frames=torch.empty(0, 3, 0, 0, dtype=torch.uint8), target_box=target_box,
                target_parts=target_parts, other_parts=other_parts, template_box=target_box[0].clone(),
                sequence=seq.name, track_id=track_id, frame_indices=[f.frame_index for f in frames],
                other_boxes=other_boxes)


def _shift(box: Box | None, ox: float, oy: float) -> Box | None:
    return None if box is None else (box[0] - ox, box[1] - oy, box[2], box[3])


def _part(box: Box | None, sx: float, sy: float) -> Box:
    return NAN_BOX if box is None else scale_boxes(box, sx, sy)


def collate_clips(clips: Sequence[Clip]) -> ClipBatch:
    """Stack clips of equal length and frame size into a :class:`ClipBatch`, NaN-padding M.

    Raises:
        ValueError: The clips differ in T, frame size or number of parts.
    """
    if not clips:
        raise ValueError("cannot collate an empty list of clips")
    first = clips[0]
    for clip in clips[1:]:
        if clip.frames.shape != first.frames.shape or clip.target_parts.shape != first.target_parts.shape:
            raise ValueError(
                f"clips differ in shape: {tuple(first.frames.shape)} vs {tuple(clip.frames.shape)} "
                f"({first.sequence} vs {clip.sequence}); use ClipDataset(size=...) for a common frame size"
            )
    T, K = first.target_parts.shape[:2]
    M = max(c.other_parts.shape[1] for c in clips)
    other_parts = torch.full((len(clips), T, M, K, 4), math.nan)
    other_boxes = torch.full((len(clips), T, M, 4), math.nan)
    for b, clip in enumerate(clips):
        m = clip.other_parts.shape[1]
        other_parts[b, :, :m] = clip.other_parts
        if clip.other_boxes.shape[:2] == (T, m):
            other_boxes[b, :, :m] = clip.other_boxes
    return ClipBatch(
        frames=torch.from_numpy(np.stack([c.frames.numpy() for c in clips])),  # (B, T, 3, H, W)
        target_box=torch.stack([c.target_box for c in clips]),  # (B, T, 4)
        target_parts=torch.stack([c.target_parts for c in clips]),  # (B, T, K, 4)
        other_parts=other_parts,  # (B, T, M, K, 4)
        other_boxes=other_boxes,  # (B, T, M, 4)
        template_box=torch.stack([c.template_box for c in clips]),  # (B, 4)
        track_ids=torch.tensor([c.track_id for c in clips], dtype=torch.int64),  # (B,)
        sequences=[c.sequence for c in clips],
        frame_indices=[list(c.frame_indices) for c in clips],
    )
