"""Real target frames for adapting the part detector: windows that show people at the synthetic scale.

The part detector learns on the generator's scenes, where the typical person is
:func:`synthetic_person_height` pixels tall in the training frames. A real camera shows its people
at another size (Town Centre: ~180 px in 1920x1080 frames). A window of side
``crop_size × person_height / synthetic_height`` resized to ``crop_size`` shows them at the
synthetic scale, so the detector sees the target domain at the size it learned.

Two streams feed the adaptation (see :mod:`adaptrack.track.train.adaptation`):

* :class:`TargetFrames`: unlabeled images (any folder of frames), random windows at the
  synthetic scale with scale jitter and flips (the patent's unlabeled target, S1/S33);
* :class:`LabeledTargetCrops`: the few labeled real frames of the third embodiment, windows
  around labeled people sized from their own box heights, as single-frame
  :class:`~adaptrack.track.data.types.Clip` objects so the source loss applies to them unchanged.

Every item is drawn from ``(seed, epoch, index)`` (the indices come from
:class:`~adaptrack.common.resume.ResumableSampler`), so runs repeat and resume exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from adaptrack.common.errors import ConfigError, DataError
from adaptrack.common.images import decode_image
from adaptrack.track.data.synth.scene import PRESETS
from adaptrack.track.data.types import Clip, FrameAnn, SequenceAnn

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
"""Files :func:`list_images` picks from a folder."""


def synthetic_person_height(image_size: int, preset: str = "default") -> float:
    """Typical person height in pixels in the generator's frames resized to ``image_size``.

    The middle of the preset's ``target_height`` range (fractions of the frame height) times the
    frame side: 0.44 × 256 ≈ 113 px for the ``default`` and ``crowded`` presets.

    Raises:
        ConfigError: Unknown preset.
    """
    if preset not in PRESETS:
        raise ConfigError(f"data.synthetic_preset={preset!r} is unknown; choose one of {sorted(PRESETS)}")
    low, high = PRESETS[preset].target_height
    return float(image_size) * (low + high) / 2.0


def window_side(crop_size: int, person_height: float, synthetic_height: float) -> float:
    """Side of the real-image window that shows a ``person_height`` person at ``synthetic_height``
    once resized to ``crop_size``: ``crop_size × person_height / synthetic_height``."""
    if not (person_height > 0 and synthetic_height > 0 and crop_size > 0):
        raise ConfigError(f"window side needs positive sizes, got crop_size={crop_size}, "
                          f"person_height={person_height}, synthetic_height={synthetic_height}")
    return float(crop_size) * float(person_height) / float(synthetic_height)


def list_images(folder: str | Path) -> list[Path]:
    """The image files of ``folder`` (by suffix, see :data:`IMAGE_SUFFIXES`), sorted by name.

    Raises:
        DataError: The folder is missing or holds no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("target frame folder is missing (data.target_dir)", folder)
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise DataError(f"target frame folder holds no image ({', '.join(IMAGE_SUFFIXES)})", folder)
    return paths


def _rng(seed: int, index: int | tuple[int, int]) -> np.random.Generator:
    """The random source of item ``(epoch, index)`` (a bare index is epoch 0)."""
    epoch, i = index if isinstance(index, tuple) else (0, index)
    return np.random.default_rng((seed, epoch, i))


def _jittered(side: float, jitter: float, rng: np.random.Generator) -> float:
    """``side`` times a log-uniform factor in ``[1 / (1 + jitter), 1 + jitter]``."""
    if jitter <= 0:
        return side
    return side * math.exp(rng.uniform(-math.log1p(jitter), math.log1p(jitter)))


def _window(pixels: np.ndarray, x0: float, y0: float, side: float, size: int, flip: bool) -> torch.Tensor:
    """``(3, size, size)`` uint8 of the ``side``-square at ``(x0, y0)`` of ``pixels (H, W, 3)``,
    resized (Pillow bilinear, antialiased) and optionally mirrored."""
    image = Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR,
                                           box=(x0, y0, x0 + side, y0 + side))
    out = np.asarray(image)  # (size, size, 3)
    if flip:
        out = out[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(out.transpose(2, 0, 1)))  # (3, size, size)


class TargetFrames(Dataset[torch.Tensor]):
    """Unlabeled real frames as random square windows at the synthetic scale.

    Item ``(epoch, i)``: a random frame, a window of side
    ``window_side(crop_size, person_height, synthetic_height)`` times a log-uniform jitter in
    ``[1/(1+scale_jitter), 1+scale_jitter]`` (at most the frame's shorter side), at a uniform
    position inside the frame, resized to ``crop_size`` and mirrored with ``flip_prob``.

    Args:
        paths: Image files (a folder's, see :func:`list_images`, or any list).
        crop_size: Side of the returned windows (the part detector's ``crop_size``).
        person_height: Typical person height in pixels in these frames.
        synthetic_height: Typical person height of the source (:func:`synthetic_person_height`).
        samples_per_epoch: Windows per epoch.
        scale_jitter: Relative scale jitter.
        flip_prob: Probability of a left-right flip.
        seed: Seed of the draw.

    Raises:
        DataError: No paths.
    """

    def __init__(self, paths: Sequence[str | Path], crop_size: int = 128, person_height: float = 180.0,
                 synthetic_height: float = 112.64, samples_per_epoch: int = 256, scale_jitter: float = 0.25,
                 flip_prob: float = 0.5, seed: int = 0) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise DataError("no target frames given (data.target_dir / data.target_frames is empty)", ".")
        self.crop_size = int(crop_size)
        self.side = window_side(crop_size, person_height, synthetic_height)
        self.samples = int(samples_per_epoch)
        self.scale_jitter = float(scale_jitter)
        self.flip_prob = float(flip_prob)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int | tuple[int, int]) -> torch.Tensor:
        """``(3, crop_size, crop_size)`` uint8 window of item ``index`` (int or ``(epoch, index)``)."""
        rng = _rng(self.seed, index)
        path = self.paths[int(rng.integers(len(self.paths)))]
        pixels, _ = decode_image(path, "RGB", what="target frame")  # (H, W, 3)
        H, W = pixels.shape[:2]
        side = min(_jittered(self.side, self.scale_jitter, rng), float(min(H, W)))
        x0 = rng.uniform(0.0, W - side)
        y0 = rng.uniform(0.0, H - side)
        return _window(pixels, x0, y0, side, self.crop_size, bool(rng.random() < self.flip_prob))


def collate_windows(windows: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack ``(3, S, S)`` windows into ``(B, 3, S, S)`` uint8."""
    return torch.stack(list(windows))


def _box_array(box: tuple[float, float, float, float] | None) -> np.ndarray:
    return np.full(4, np.nan) if box is None else np.asarray(box, dtype=np.float64)


class LabeledTargetCrops(Dataset[Clip]):
    """The few labeled real frames (third embodiment) as windows around labeled people.

    Item ``(epoch, i)``: a random labeled person (with at least one part box) of a random
    annotated frame; a window of side ``window_side(crop_size, box height, synthetic_height)``
    times the scale jitter (so that person appears at the synthetic scale), placed so the centre
    of the person's first annotated part lies in its middle half, clamped to the frame; resized
    to ``crop_size`` and mirrored with ``flip_prob``. Every person's part boxes are mapped into
    the window; boxes whose centre falls outside it become NaN. The result is a one-frame
    :class:`Clip` (the drawn person as the target, the others as ``other_parts``), so
    :func:`~adaptrack.track.data.clips.collate_clips` batches it and the part detector's source
    loss applies unchanged.

    Args:
        sequences: Labeled real frames (e.g. frames 0–62 of the user's camera).
        crop_size: Side of the returned windows.
        synthetic_height: Typical source person height (:func:`synthetic_person_height`).
        samples_per_epoch: Crops per epoch.
        scale_jitter: Relative scale jitter.
        flip_prob: Probability of a left-right flip.
        seed: Seed of the draw.

    Raises:
        DataError: No labeled person with a part box.
    """

    def __init__(self, sequences: Sequence[SequenceAnn], crop_size: int = 128, synthetic_height: float = 112.64,
                 samples_per_epoch: int = 64, scale_jitter: float = 0.15, flip_prob: float = 0.5,
                 seed: int = 0) -> None:
        self.frames: list[FrameAnn] = [f for s in sequences for f in s.frames]
        self.names = [s.name for s in sequences for _ in s.frames]
        self.items = [(i, j) for i, f in enumerate(self.frames) for j, p in enumerate(f.people)
                      if p.box[3] > 0 and any(b is not None for b in p.parts)]
        if not self.items:
            raise DataError("the labeled target frames hold no person with a part box (data.labeled_target)",
                            self.frames[0].path if self.frames else ".")
        self.num_parts = len(sequences[0].parts)
        self.crop_size = int(crop_size)
        self.synthetic_height = float(synthetic_height)
        self.samples = int(samples_per_epoch)
        self.scale_jitter = float(scale_jitter)
        self.flip_prob = float(flip_prob)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int | tuple[int, int]) -> Clip:
        rng = _rng(self.seed, index)
        f_idx, p_idx = self.items[int(rng.integers(len(self.items)))]
        frame = self.frames[f_idx]
        pixels, _ = decode_image(frame.path, "RGB", what="labeled target frame")  # (H, W, 3)
        H, W = pixels.shape[:2]
        person = frame.people[p_idx]
        base = window_side(self.crop_size, person.box[3], self.synthetic_height)
        side = min(_jittered(base, self.scale_jitter, rng), float(min(H, W)))
        anchor = next(b for b in person.parts if b is not None)  # the part to detect lies in the middle half
        cx, cy = anchor[0] + anchor[2] / 2, anchor[1] + anchor[3] / 2
        x0 = float(np.clip(cx - side * rng.uniform(0.25, 0.75), 0.0, W - side))
        y0 = float(np.clip(cy - side * rng.uniform(0.25, 0.75), 0.0, H - side))
        flip = bool(rng.random() < self.flip_prob)
        image = _window(pixels, x0, y0, side, self.crop_size, flip)  # (3, S, S)
        scale = self.crop_size / side
        order = [p_idx] + [j for j in range(len(frame.people)) if j != p_idx]
        parts = np.stack([np.stack([_box_array(frame.people[j].parts[k]) for k in range(self.num_parts)])
                          for j in order])  # (P, K, 4)
        bodies = np.stack([_box_array(frame.people[j].box) for j in order])  # (P, 4)
        parts, bodies = (self._to_window(b, x0, y0, scale, flip) for b in (parts, bodies))
        t = torch.from_numpy
        return Clip(frames=image[None], target_box=t(bodies[:1]).float(), target_parts=t(parts[:1]).float(),
                    other_parts=t(parts[None, 1:]).float(), template_box=t(bodies[0]).float(),
                    sequence=self.names[f_idx], track_id=int(person.track_id),
                    frame_indices=[frame.frame_index], other_boxes=t(bodies[None, 1:]).float())

    def _to_window(self, boxes: np.ndarray, x0: float, y0: float, scale: float, flip: bool) -> np.ndarray:
        """``(..., 4)`` frame boxes into window pixels; NaN where the centre is outside the window."""
        out = boxes.copy()
        out[..., 0] = (boxes[..., 0] - x0) * scale
        out[..., 1] = (boxes[..., 1] - y0) * scale
        out[..., 2:] = boxes[..., 2:] * scale
        if flip:
            out[..., 0] = self.crop_size - out[..., 0] - out[..., 2]
        cx, cy = out[..., 0] + out[..., 2] / 2, out[..., 1] + out[..., 3] / 2
        with np.errstate(invalid="ignore"):
            inside = (cx >= 0) & (cx < self.crop_size) & (cy >= 0) & (cy < self.crop_size)
        out[~inside] = np.nan
        return out
