"""Synthetic dataset writer: JPEG frames plus one PoseTrack18 JSON per sequence.

Output layout, identical to the real PoseTrack18 sample so :func:`read_posetrack_dir` reads it::

    <out>/annotations/<split>/<sequence>.json
    <out>/images/<split>/<sequence>/000000.jpg ...
    <out>/generation-<split>.json          # the GenerationReport

Each JSON carries an extra top-level ``"adaptrack"`` object with the generator settings and
``"target_track": 0``, the designated target whose frames the crowded share counts. Everything is
first written into a hidden staging folder inside ``<out>`` and moved into place only when the whole
split is complete, so an interrupted run leaves nothing half-written behind.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from adaptrack.common.files import atomic_write
from adaptrack.track.data.geometry import head_in_box
from adaptrack.track.data.posetrack import (
    GENERATOR_KEY,
    HEAD_VISIBLE_KEY,
    posetrack_categories,
)
from adaptrack.track.data.synth.backgrounds import background_files
from adaptrack.track.data.synth.drawing import encode_jpeg
from adaptrack.track.data.synth.scene import (
    NEW_KNOBS,
    PRESETS,
    REALISM,
    TARGET_TRACK,
    RenderedFrame,
    SceneConfig,
    plan_scene,
    render_frame,
)

MAX_FRAMES = 9999  # PoseTrack18 frame ids hold the frame number in four digits


@dataclass
class GenerationReport:
    """What :func:`generate_dataset` wrote and how crowded it is.

    Attributes:
        out_dir: Dataset root.
        split: Split folder name.
        preset: Preset name.
        seed: Base seed.
        n_sequences: Sequences written.
        n_frames: Frames per sequence.
        width: Frame width.
        height: Frame height.
        crowded_share: Share of the designated targets' frames in which another person's visible
            head lies inside the target's person box (:func:`geometry.head_in_box`).
        target_head_hidden_share: Share of target frames whose head is occluded or out of frame.
        mean_people: Annotated people per frame.
        lookalike_share: Share of non-target people dressed like their sequence's target.
        mean_scale_change: Mean over sequences of the target's largest / smallest box height.
        seconds: Wall time.
        frames_per_second: Frames rendered, encoded and written per second.
    """

    out_dir: str
    split: str
    preset: str
    seed: int
    n_sequences: int
    n_frames: int
    width: int
    height: int
    crowded_share: float
    target_head_hidden_share: float
    mean_people: float
    lookalike_share: float
    mean_scale_change: float
    seconds: float
    frames_per_second: float

    def summary(self) -> str:
        """Human-readable multi-line summary."""
        return (
            f"generated {self.n_sequences} sequences x {self.n_frames} frames ({self.width}x{self.height}, "
            f"preset {self.preset!r}, seed {self.seed}) into {self.out_dir} (split {self.split!r})\n"
            f"  crowded share (another head inside the target's box): {self.crowded_share:.3f}\n"
            f"  target head hidden: {self.target_head_hidden_share:.3f}"
            f"   people/frame: {self.mean_people:.2f}   look-alikes: {self.lookalike_share:.3f}"
            f"   target scale change: {self.mean_scale_change:.2f}x\n"
            f"  {self.seconds:.1f} s, {self.frames_per_second:.0f} frames/s"
        )


@dataclass
class _Stats:
    target_frames: int = 0
    crowded_frames: int = 0
    target_head_hidden: int = 0
    people: int = 0
    frames: int = 0
    others: int = 0
    lookalikes: int = 0
    scale_changes: float = 0.0

    def add_frame(self, frame: RenderedFrame) -> tuple[bool, bool]:
        self.frames += 1
        self.people += len(frame.people)
        target = next((p for p in frame.people if p.track_id == TARGET_TRACK), None)
        if target is None:
            return False, False
        self.target_frames += 1
        crowded = any(p.head_box is not None and head_in_box(p.head_box, target.box)
                      for p in frame.people if p.track_id != TARGET_TRACK)
        self.crowded_frames += int(crowded)
        self.target_head_hidden += int(target.head_box is None)
        return True, crowded


def scene_config(preset: str, n_people: tuple[int, int] | None = None, closeness: float | None = None,
                 lookalike: float | None = None, backgrounds: str | Path | None = None,
                 realism: bool = False) -> SceneConfig:
    """A preset with optional overrides of the main knobs.

    Args:
        preset: A name of :data:`~adaptrack.track.data.synth.scene.PRESETS`.
        n_people: ``(min, max)`` people per sequence, target included.
        closeness: How near walkers pass the target (0–1).
        lookalike: Probability that a person dresses like the target (0–1).
        backgrounds: Folder of photos to cut backgrounds from (checked here).
        realism: Turn on the :data:`~adaptrack.track.data.synth.scene.REALISM` knobs over ``preset``
            (e.g. a realistic ``crowded``).

    Raises:
        ValueError: Unknown preset or out-of-range knob.
        DataError: The background folder is missing or holds no photo (names the folder).
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    config = PRESETS[preset]
    if realism:
        config = replace(config, **REALISM)  # type: ignore[arg-type]
    if backgrounds is not None:
        background_files(str(backgrounds))  # fail before any sequence is drawn
        config = replace(config, backgrounds=str(backgrounds))
    if n_people is not None:
        if not 1 <= n_people[0] <= n_people[1]:
            raise ValueError(f"n_people must satisfy 1 <= min <= max, got {n_people}")
        config = replace(config, n_people=n_people)
    for name, value in (("closeness", closeness), ("lookalike", lookalike)):
        if value is not None:
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
            config = replace(config, **{name: value})
    return config


def _posetrack_json(name: str, vid: int, split: str, frames: list[RenderedFrame], width: int, height: int,
                    meta: dict[str, Any], lookalikes: set[int]) -> dict[str, Any]:
    vid_id = f"{vid:06d}"
    images, annotations = [], []
    for t, frame in enumerate(frames):
        image_id = int(f"1{vid_id}{t:04d}")
        images.append({
            "has_no_densepose": True, "is_labeled": True,
            "file_name": f"images/{split}/{name}/{t:06d}.jpg", "nframes": len(frames),
            "frame_id": image_id, "vid_id": vid_id, "id": image_id, "width": width, "height": height,
            "ignore_regions_x": [], "ignore_regions_y": [],
        })
        for person in frame.people:
            keypoints = [round(v, 2) if i % 3 != 2 else int(v)
                         for i, v in enumerate(c for kp in person.keypoints for c in kp)]
            ann: dict[str, Any] = {}
            if person.head_box is not None:
                ann["bbox_head"] = [round(v, 2) for v in person.head_box]
            ann.update({
                "keypoints": keypoints, "track_id": person.track_id, "image_id": image_id,
                "bbox": [round(v, 2) for v in person.box], "scores": [], "category_id": 1,
                "id": image_id * 100 + person.track_id, "iscrowd": False,
                "num_keypoints": sum(kp[2] for kp in person.keypoints),
                HEAD_VISIBLE_KEY: round(person.head_visible, 3),
                "lookalike": person.track_id in lookalikes,
            })
            annotations.append(ann)
    return {"categories": posetrack_categories(), "images": images, "annotations": annotations, GENERATOR_KEY: meta}


def _write_sequence(staging: Path, split: str, index: int, seed: int, preset: str, config: SceneConfig,
                    n_frames: int, width: int, height: int, stats: _Stats) -> None:
    rng = np.random.default_rng([seed, index])
    plan = plan_scene(rng, config, n_frames, width, height)
    name = f"{index:06d}_synth_s{seed}"
    folder = staging / "images" / split / name
    folder.mkdir(parents=True)
    frames, crowded = [], 0
    target_heights = []
    for t in range(n_frames):
        frame = render_frame(plan, t, config)
        (folder / f"{t:06d}.jpg").write_bytes(encode_jpeg(frame.image, plan.jpeg_quality))
        has_target, is_crowded = stats.add_frame(frame)
        crowded += int(is_crowded)
        if has_target:
            target_heights.append(next(p.box[3] for p in frame.people if p.track_id == TARGET_TRACK))
        frame.image = np.empty((0, 0, 3), np.uint8)  # the pixels are on disk; keep only annotations
        frames.append(frame)
    lookalikes = {p.track_id for p in plan.people if p.is_lookalike}
    stats.others += len(plan.people) - 1
    stats.lookalikes += len(lookalikes)
    stats.scale_changes += max(target_heights) / min(target_heights) if target_heights else 1.0
    meta = {"generator": "adaptrack.track.data.synth", "preset": preset, "seed": seed,
            "sequence_index": index, "target_track": TARGET_TRACK, "background": plan.background.name,
            "crowded_frames": crowded, "config": _config_meta(config)}
    data = _posetrack_json(name, index, split, frames, width, height, meta, lookalikes)
    path = staging / "annotations" / split / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")


def _config_meta(config: SceneConfig) -> dict[str, Any]:
    """The config as JSON, without the later knobs left at their default (older datasets stay byte-identical)."""
    default = SceneConfig()
    return {k: v for k, v in _jsonable(asdict(config)).items()
            if k not in NEW_KNOBS or getattr(config, k) != getattr(default, k)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return value


def generate_dataset(out_dir: str | Path, n_sequences: int, n_frames: int, preset: str = "default",
                     seed: int = 0, width: int = 256, height: int = 256, split: str = "train",
                     n_people: tuple[int, int] | None = None, closeness: float | None = None,
                     lookalike: float | None = None, overwrite: bool = False,
                     backgrounds: str | Path | None = None, realism: bool = False) -> GenerationReport:
    """Write a synthetic PoseTrack18-format dataset split; deterministic by ``seed``.

    Sequence ``i`` draws everything from ``numpy.random.default_rng([seed, i])``, so the same seed
    gives byte-identical JSON and identical pixels, and the first sequences of a larger run equal
    those of a smaller one.

    Args:
        out_dir: Dataset root (created if needed).
        n_sequences: Number of sequences.
        n_frames: Frames per sequence (1–9999).
        preset: ``"default"``, ``"crowded"`` or ``"realistic"``.
        seed: Base seed; use seeds never used in training for held-out sets.
        width: Frame width (≥ 32).
        height: Frame height (≥ 32).
        split: Split folder name (e.g. ``"train"``, ``"val"``).
        n_people: Override the preset's ``(min, max)`` people per sequence, target included.
        closeness: Override how near walkers pass the target (0–1).
        lookalike: Override the probability that a person dresses like the target (0–1).
        overwrite: Replace an existing split; otherwise an existing split is an error.
        backgrounds: Folder of photos to cut the backgrounds from (random crops, resized and
            panned); deterministic for the same folder content.
        realism: Cloth grain, soft shading, blurred people, more camera blur and JPEG artefacts
            over ``preset`` (:data:`~adaptrack.track.data.synth.scene.REALISM`).

    Returns:
        The report (also written to ``<out_dir>/generation-<split>.json``).

    Raises:
        DataError: The background folder is missing or empty, or a photo in it is unreadable.
        ValueError: Invalid sizes, preset or knobs.
        FileExistsError: The split exists and ``overwrite`` is false.
    """
    out_dir = Path(out_dir)
    if n_sequences < 1 or not 1 <= n_frames <= MAX_FRAMES:
        raise ValueError(f"need n_sequences >= 1 and 1 <= n_frames <= {MAX_FRAMES}, "
                         f"got {n_sequences} and {n_frames}")
    if width < 32 or height < 32:
        raise ValueError(f"frames must be at least 32x32, got {width}x{height}")
    if not split or Path(split).name != split or split.startswith("."):
        raise ValueError(f"split must be a plain folder name, got {split!r}")
    config = scene_config(preset, n_people, closeness, lookalike, backgrounds, realism)
    targets = [out_dir / "images" / split, out_dir / "annotations" / split]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist; pass overwrite=True (--overwrite) "
                              "to replace this split or choose another output folder or split")

    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".generate-{split}-", dir=out_dir))
    start = time.perf_counter()
    stats = _Stats()
    try:
        for index in range(n_sequences):
            _write_sequence(staging, split, index, seed, preset, config, n_frames, width, height, stats)
        for target in targets:  # images first: annotations without their frames never appear
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / target.parent.name / split, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.perf_counter() - start
    report = GenerationReport(
        out_dir=str(out_dir), split=split, preset=preset, seed=seed, n_sequences=n_sequences,
        n_frames=n_frames, width=width, height=height,
        crowded_share=stats.crowded_frames / max(stats.target_frames, 1),
        target_head_hidden_share=stats.target_head_hidden / max(stats.target_frames, 1),
        mean_people=stats.people / max(stats.frames, 1),
        lookalike_share=stats.lookalikes / max(stats.others, 1),
        mean_scale_change=stats.scale_changes / n_sequences,
        seconds=seconds, frames_per_second=n_sequences * n_frames / max(seconds, 1e-9),
    )
    with atomic_write(out_dir / f"generation-{split}.json") as handle:
        json.dump(asdict(report), handle, indent=2)
    return report


def generate(out: Path, preset: Literal["default", "crowded", "realistic"] = "default", n_sequences: int = 200,
             n_frames: int = 30, seed: int = 0, width: int = 256, height: int = 256, split: str = "train",
             n_people_min: int | None = None, n_people_max: int | None = None, closeness: float | None = None,
             lookalike: float | None = None, overwrite: bool = False, backgrounds: Path | None = None,
             realism: bool = False) -> GenerationReport:
    """Generate synthetic crowd sequences in PoseTrack18 format and print the report.

    Meant as ``adaptrack track generate``. Writes ``<out>/annotations/<split>/*.json``,
    ``<out>/images/<split>/<sequence>/%06d.jpg`` and ``<out>/generation-<split>.json``.

    Args:
        out: Dataset root.
        preset: ``default``, ``crowded`` (another head inside the target's box in ≥ 30 % of frames) or
            ``realistic`` (``default`` with the realism knobs on).
        n_sequences: Number of sequences.
        n_frames: Frames per sequence (1–9999).
        seed: Base seed; same seed, same bytes. Use unseen seeds for held-out sets.
        width: Frame width in pixels.
        height: Frame height in pixels.
        split: Split folder name (``train``, ``val``, ``test``...).
        n_people_min: Override the preset's fewest people per sequence (target included).
        n_people_max: Override the preset's most people per sequence.
        closeness: Override how near other people pass the target (0–1).
        lookalike: Override the probability that a person dresses like the target (0–1).
        overwrite: Replace an existing split.
        backgrounds: Folder of your own photos (e.g. street scenes, or a median of your camera's
            video, see ``median_background``) to cut the backgrounds from.
        realism: Less cartoon-like people over any preset: cloth grain, soft shading, blur, motion
            blur, more camera blur and JPEG artefacts.

    Returns:
        The generation report.
    """
    n_people = None
    if n_people_min is not None or n_people_max is not None:
        low, high = scene_config(preset).n_people
        n_people = (low if n_people_min is None else n_people_min,
                    high if n_people_max is None else n_people_max)
    report = generate_dataset(out, n_sequences, n_frames, preset, seed, width, height, split, n_people,
                              closeness, lookalike, overwrite, backgrounds, realism)
    print(report.summary())
    return report
