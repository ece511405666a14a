"""Scene planning and rendering: who walks where, in which order they occlude, what is annotated.

Every sequence has a designated target, track 0, that stays inside the frame. Other people are
*companions* (walking along beside the target, drifting across it: the crowded case where another
head lies inside the target's box) or *walkers* (crossing the scene near the target; ``closeness``
sets how near). A flat-ground perspective model gives the scale: apparent height is proportional to
the distance between the feet and the horizon, so people lower in the frame are nearer and larger,
and they are drawn later (in front).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from adaptrack.track.data.geometry import Box, clip_box, inside_fraction
from adaptrack.track.data.synth.backgrounds import PanningBackground, sample_background
from adaptrack.track.data.synth.drawing import camera_effects, noise_bank
from adaptrack.track.data.synth.people import (
    Appearance,
    PersonStyle,
    Pose,
    layout_person,
    lookalike,
    render_person,
    sample_appearance,
)

TARGET_TRACK = 0
"""Track id of every synthetic sequence's designated target."""


@dataclass(frozen=True)
class SceneConfig:
    """Knobs of the synthetic scenes (ranges are inclusive ``(low, high)``).

    Attributes:
        n_people: People per sequence, the target included.
        closeness: 0–1; how near walkers pass the target (1 = through it).
        lookalike: Probability that a non-target person wears the target's clothes and hair.
        companions: How many of the people walk along beside the target.
        target_height: Target's apparent height as a fraction of the frame height.
        horizon: Horizon height as a fraction of the frame height (negative = above the frame,
            a high camera with gentle perspective).
        noise_sigma: Sensor noise standard deviation in grey levels.
        blur_probability: Share of sequences that are slightly out of focus.
        blur_sigma: Blur radius of those sequences in pixels.
        jpeg_quality: JPEG quality per sequence.
        brightness_jitter: Per-frame step of the brightness random walk.
        min_head_visible: Head annotated only when at least this share of its pixels is unoccluded.
        min_person_inside: Person annotated only when this share of its box is inside the frame.
        cloth_texture: Amplitude of a fine cloth grain on every garment (0 = flat colours).
        soft_shading: Strength of the light from above over each person and of round sleeves (0 = none).
        person_blur: Range of a per-person Gaussian blur in pixels, edges included (soft silhouettes
            instead of cut-out ones); ``(0, 0)`` = sharp.
        motion_blur: Motion-blur streak of each person, in frames of its motion (1 = the distance it
            moves in one frame); 0 = none.
        backgrounds: Folder of the user's own photos to cut backgrounds from (e.g. street scenes, or
            :func:`~adaptrack.track.data.synth.backgrounds.median_background` of a video of the camera);
            ``None``: the photos bundled with scikit-image.

    The global camera blur (``blur_probability``, ``blur_sigma``) and the JPEG artefacts
    (``jpeg_quality``) were there before; the ``realistic`` preset turns everything up. With the new
    knobs at their defaults the output is bit-identical to the generator without them.
    """

    n_people: tuple[int, int] = (2, 5)
    closeness: float = 0.3
    lookalike: float = 0.25
    companions: tuple[int, int] = (0, 0)
    target_height: tuple[float, float] = (0.38, 0.5)
    horizon: tuple[float, float] = (-0.4, 0.15)
    noise_sigma: tuple[float, float] = (1.5, 6.0)
    blur_probability: float = 0.4
    blur_sigma: tuple[float, float] = (0.4, 1.1)
    jpeg_quality: tuple[int, int] = (70, 95)
    brightness_jitter: float = 0.03
    min_head_visible: float = 0.5
    min_person_inside: float = 0.4
    cloth_texture: float = 0.0
    soft_shading: float = 0.0
    person_blur: tuple[float, float] = (0.0, 0.0)
    motion_blur: float = 0.0
    backgrounds: str | None = None


REALISM: dict[str, object] = {"cloth_texture": 0.12, "soft_shading": 0.35, "person_blur": (0.35, 0.9),
                              "motion_blur": 1.0, "blur_probability": 0.7, "blur_sigma": (0.5, 1.3),
                              "jpeg_quality": (40, 85)}
"""The knobs the ``realistic`` preset and ``--realism`` set: cloth grain, soft shading, blurred and
motion-blurred people, more camera blur and stronger JPEG artefacts."""

NEW_KNOBS = ("cloth_texture", "soft_shading", "person_blur", "motion_blur", "backgrounds")
"""Knobs added after the first datasets; written into a sequence's JSON only when not at their default."""

PRESETS: dict[str, SceneConfig] = {
    "default": SceneConfig(),
    "crowded": SceneConfig(n_people=(4, 6), closeness=0.5, lookalike=0.5, companions=(1, 2)),
    "realistic": replace(SceneConfig(), **REALISM),  # type: ignore[arg-type]
}
"""Named configurations. Measured share of target frames with another head inside the target's box
(:func:`geometry.head_in_box`): about 0.25 for ``default`` (walkers crossing only) and 0.75 for
``crowded`` (one or two companions beside the target; ≥ 0.3 required)."""


@dataclass
class PlannedPerson:
    """One person's appearance and trajectory over the sequence.

    Attributes:
        track_id: Track id (0 is the target).
        role: ``"target"``, ``"companion"`` or ``"walker"``.
        look: Appearance.
        is_lookalike: Whether ``look`` copies the target's.
        fx: ``(T,)`` feet x per frame.
        fy: ``(T,)`` feet y per frame.
        phase: ``(T,)`` walking phase per frame.
        facing: ``(T,)`` -1, 0 or +1 per frame.
    """

    track_id: int
    role: str
    look: Appearance
    is_lookalike: bool
    fx: np.ndarray
    fy: np.ndarray
    phase: np.ndarray
    facing: np.ndarray


@dataclass
class ScenePlan:
    """Everything needed to render a sequence deterministically.

    Attributes:
        width: Frame width.
        height: Frame height.
        n_frames: Sequence length.
        horizon_y: Horizon row in pixels.
        gain: Apparent height per pixel of feet-to-horizon distance for a reference person.
        people: Planned people, target first.
        background: Panned background.
        noise_sigma: Sensor noise of the sequence.
        blur_sigma: Blur of the sequence (0 = sharp).
        jpeg_quality: JPEG quality of the sequence.
        brightness: ``(T,)`` per-frame gain.
        noise: Sensor noise bank (:func:`drawing.noise_bank`).
        noise_offsets: ``(T, 2)`` per-frame window offsets into ``noise``.
        person_blur: Gaussian blur per person (by track id) in pixels; empty: none.
    """

    width: int
    height: int
    n_frames: int
    horizon_y: float
    gain: float
    people: list[PlannedPerson]
    background: PanningBackground
    noise_sigma: float
    blur_sigma: float
    jpeg_quality: int
    brightness: np.ndarray
    noise: np.ndarray
    noise_offsets: np.ndarray
    person_blur: dict[int, float] = field(default_factory=dict)

    def apparent_height(self, person: PlannedPerson, t: int) -> float:
        """Apparent height in pixels of ``person`` in frame ``t``."""
        return self.gain * person.look.height_factor * max(float(person.fy[t]) - self.horizon_y, 1.0)


@dataclass(frozen=True)
class PersonRecord:
    """Annotation of one person in one rendered frame.

    Attributes:
        track_id: Track id.
        box: Person box clipped to the frame.
        head_box: Head box clipped to the frame; ``None`` when the head is hidden or out of frame.
        head_visible: Share of the head's pixels left unoccluded.
        keypoints: 17 PoseTrack18 ``(x, y, v)`` triples; ``(0, 0, 0)`` when out of frame, ``v = 0``
            when occluded.
    """

    track_id: int
    box: Box
    head_box: Box | None
    head_visible: float
    keypoints: tuple[tuple[float, float, int], ...]


@dataclass
class RenderedFrame:
    """One rendered frame and its annotations.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB after camera effects (before JPEG).
        people: Annotated people, sorted by track id.
    """

    image: np.ndarray
    people: list[PersonRecord]


def reflect(start: float, velocity: float, n: int, low: float, high: float) -> np.ndarray:
    """Positions of a point moving at constant velocity and bouncing between ``low`` and ``high``.

    Args:
        start: Position at t = 0 (clamped into the interval).
        velocity: Displacement per frame.
        n: Number of frames.
        low: Lower bound.
        high: Upper bound (> ``low``).

    Returns:
        ``(n,)`` float64 positions, all within ``[low, high]``.
    """
    span = high - low
    free = min(max(start, low), high) - low + velocity * np.arange(n, dtype=np.float64)
    folded = np.mod(free, 2 * span)
    return low + np.where(folded > span, 2 * span - folded, folded)


def _walk_phase(rng: np.random.Generator, speed: np.ndarray) -> np.ndarray:
    """Walking phase: advances faster when the person moves faster; standing people barely move."""
    rate = np.clip(speed * rng.uniform(0.25, 0.4), 0.02, 0.6)
    return rng.uniform(0, 2 * math.pi) + np.cumsum(rate)


def _facing(vx: np.ndarray) -> np.ndarray:
    return np.where(vx > 0.15, 1, np.where(vx < -0.15, -1, 0)).astype(np.int64)


def plan_scene(rng: np.random.Generator, config: SceneConfig, n_frames: int, width: int,
               height: int) -> ScenePlan:
    """Draw one sequence's people, trajectories, background and camera.

    Args:
        rng: The sequence's generator (the only source of randomness).
        config: Scene knobs.
        n_frames: Sequence length T.
        width: Frame width W.
        height: Frame height H.

    Returns:
        The plan; :func:`render_frame` turns it into frames.
    """
    W, H, T = float(width), float(height), n_frames
    unit = W / 256.0  # speeds are tuned for 256-pixel frames
    horizon_y = H * rng.uniform(*config.horizon)
    target_look = sample_appearance(rng)
    y_mid = H * rng.uniform(0.62, 0.82)
    gain = H * rng.uniform(*config.target_height) / (y_mid - horizon_y) / target_look.height_factor

    vx = rng.choice([-1, 1]) * rng.uniform(0.2, 1.4) * unit
    vy = rng.choice([-1, 1]) * rng.uniform(0.2, 1.3) * unit
    t = np.arange(T, dtype=np.float64)
    wander = rng.uniform(0, 6 * unit) * np.sin(rng.uniform(0.05, 0.25) * t + rng.uniform(0, 2 * math.pi))
    tfx = np.clip(reflect(rng.uniform(0.3, 0.7) * W, vx, T, 0.2 * W, 0.8 * W) + wander, 0.15 * W, 0.85 * W)
    tfy = reflect(y_mid, vy, T, 0.55 * H, 0.9 * H)
    target_vx = np.gradient(tfx) if T > 1 else np.zeros(T)
    people = [PlannedPerson(TARGET_TRACK, "target", target_look, False, tfx, tfy,
                            _walk_phase(rng, np.hypot(target_vx, vy)), _facing(target_vx))]
    target_h = gain * target_look.height_factor * (tfy - horizon_y)  # (T,)

    n_people = int(rng.integers(config.n_people[0], config.n_people[1] + 1))
    n_comp = min(n_people - 1, int(rng.integers(config.companions[0], config.companions[1] + 1)))
    for track in range(1, n_people):
        copy = rng.uniform() < config.lookalike
        look = lookalike(target_look, rng) if copy else sample_appearance(rng)
        if track <= n_comp:
            # Beside the target, swaying across it; in front (lower, shorter) or just behind.
            in_front = track == 1 or rng.uniform() < 0.5  # the first companion is always in front
            amp, omega = rng.uniform(0.1, 0.3), rng.uniform(0.6, 2.0) * 2 * math.pi / max(T, 8)
            side = rng.choice([-1, 1]) * rng.uniform(0.08, 0.3)
            dx = side + amp * np.cos(omega * t + rng.uniform(0, 2 * math.pi))
            dy = rng.uniform(0.06, 0.28) if in_front else rng.uniform(-0.1, -0.03)
            shorter = rng.uniform(0.78, 0.95) if in_front else rng.uniform(0.7, 0.85)
            look = _with_height(look, target_look.height_factor * shorter)
            fx = tfx + dx * target_h
            fy = tfy + dy * target_h
            role = "companion"
        else:
            spread = 1.0 - 0.85 * min(max(config.closeness, 0.0), 1.0)
            tc = int(rng.integers(0, T))
            speed = rng.choice([-1, 1]) * rng.uniform(0.5, 2.2) * unit
            fx = tfx[tc] + rng.normal(0, 0.4 * W * spread) + speed * (t - tc)
            fy = tfy[tc] + rng.normal(0, 0.18 * H * spread) + rng.uniform(-0.4, 0.4) * unit * (t - tc)
            role = "walker"
        fy = np.clip(fy, max(0.35 * H, horizon_y + 0.25 * H), 1.02 * H)
        vxs = np.gradient(fx) if T > 1 else np.zeros(T)
        people.append(PlannedPerson(track, role, look, copy, fx, fy,
                                    _walk_phase(rng, np.abs(vxs)), _facing(vxs)))

    background = sample_background(rng, width, height, n_frames, folder=config.backgrounds)
    blur = rng.uniform(*config.blur_sigma) if rng.uniform() < config.blur_probability else 0.0
    steps = rng.normal(0, config.brightness_jitter, size=T)
    noise_sigma = float(rng.uniform(*config.noise_sigma))
    brightness = np.clip(rng.uniform(0.85, 1.15) + np.cumsum(steps) - steps[0], 0.7, 1.3)
    plan = ScenePlan(width=width, height=height, n_frames=n_frames, horizon_y=float(horizon_y),
                     gain=float(gain), people=people, background=background,
                     noise_sigma=noise_sigma, blur_sigma=float(blur),
                     jpeg_quality=int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1)),
                     brightness=brightness, noise=noise_bank(rng, width, height, noise_sigma),
                     noise_offsets=np.stack([rng.integers(0, height, T), rng.integers(0, width, T)], axis=1))
    if config.person_blur[1] > 0:  # drawn last, so the plan of the other knobs stays that of the plain generator
        plan.person_blur = {p.track_id: float(rng.uniform(*config.person_blur)) for p in people}
    return plan


def _with_height(look: Appearance, height_factor: float) -> Appearance:
    return replace(look, height_factor=float(height_factor))


def _person_style(plan: ScenePlan, person: PlannedPerson, t: int, config: SceneConfig) -> PersonStyle:
    """The realism knobs for ``person`` in frame ``t`` (motion from its planned feet positions)."""
    motion = (0.0, 0.0)
    if config.motion_blur > 0 and plan.n_frames > 1:
        a, b = max(t - 1, 0), min(t + 1, plan.n_frames - 1)  # central difference, one-sided at the ends
        dx, dy = float(person.fx[b] - person.fx[a]) / (b - a), float(person.fy[b] - person.fy[a]) / (b - a)
        # a short exposure: the streak is at most a tenth of the person's height (swaying companions of
        # short sequences move fast; longer streaks leave see-through ghosts)
        cap = 0.1 * plan.apparent_height(person, t) / max(math.hypot(dx, dy) * config.motion_blur, 1e-6)
        scale = config.motion_blur * min(1.0, cap)
        motion = (scale * dx, scale * dy)
    return PersonStyle(cloth_texture=config.cloth_texture, shading=config.soft_shading,
                       blur_sigma=plan.person_blur.get(person.track_id, 0.0), motion=motion)


def render_frame(plan: ScenePlan, t: int, config: SceneConfig) -> RenderedFrame:
    """Render frame ``t``: background, people far to near, camera effects, and the annotations.

    Args:
        plan: From :func:`plan_scene`.
        t: Frame index.
        config: The knobs the plan was drawn with (visibility thresholds).

    Returns:
        The frame and the annotation of every person sufficiently inside it.
    """
    W, H = plan.width, plan.height
    image = plan.background.frame(t, W, H)  # (H, W, 3) float32
    styled = config.cloth_texture > 0 or config.soft_shading > 0 or config.motion_blur > 0 or bool(plan.person_blur)
    owner = np.full((H, W), -1, dtype=np.int16)
    order = sorted(plan.people, key=lambda p: (float(p.fy[t]), p.track_id))
    drawn = []
    for person in order:
        pose = Pose(fx=float(person.fx[t]), fy=float(person.fy[t]), height=plan.apparent_height(person, t),
                    phase=float(person.phase[t]), facing=int(person.facing[t]))
        layout = layout_person(pose, person.look)
        if inside_fraction(layout.box, W, H) <= 0:
            continue
        style = _person_style(plan, person, t, config) if styled else None
        drawn.append((person, layout, render_person(image, owner, layout, person.look, person.track_id, style)))

    records = []
    for person, layout, head in drawn:
        if inside_fraction(layout.box, W, H) < config.min_person_inside:
            continue
        visible = head.visible_fraction(owner, person.track_id)
        head_box = None
        if visible >= config.min_head_visible and inside_fraction(layout.head_box, W, H) >= 0.5:
            head_box = clip_box(layout.head_box, W, H)
        keypoints = []
        for k, (x, y) in enumerate(layout.keypoints):
            if not (0 <= x < W and 0 <= y < H):
                keypoints.append((0.0, 0.0, 0))
                continue
            seen = visible >= config.min_head_visible if k < 5 else owner[int(y), int(x)] == person.track_id
            keypoints.append((float(x), float(y), int(bool(seen))))
        records.append(PersonRecord(person.track_id, clip_box(layout.box, W, H), head_box, visible,
                                    tuple(keypoints)))
    records.sort(key=lambda r: r.track_id)
    offset = (int(plan.noise_offsets[t, 0]), int(plan.noise_offsets[t, 1]))
    frame = camera_effects(image, plan.noise, offset, float(plan.brightness[t]), plan.blur_sigma)
    return RenderedFrame(image=frame, people=records)
