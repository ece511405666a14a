"""Synthetic people: appearance sampling, body layout (pure geometry) and rendering.

A person is described by an :class:`Appearance` (fixed for the sequence) and a :class:`Pose` (per
frame: where the feet are, how tall the person appears, the walking phase). :func:`layout_person`
turns both into pixel geometry, boxes and PoseTrack18 keypoints; :func:`render_person` paints it.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from adaptrack.track.data.geometry import Box, clip_box
from adaptrack.track.data.synth.drawing import (
    TEXTURES,
    blend,
    capsule_mask,
    composite,
    ellipse_mask,
    fabric,
    grid,
    paint,
    shade,
    soften,
    texture,
    trapezoid_mask,
    vertical_shade,
)

SKIN_TONES = np.array([(255, 224, 196), (241, 194, 125), (224, 172, 105), (198, 134, 66), (141, 85, 36),
                       (92, 56, 32)], dtype=np.float32)
HAIR_COLOURS = np.array([(20, 15, 10), (60, 40, 25), (110, 75, 40), (170, 130, 80), (205, 185, 140),
                         (125, 125, 125), (95, 25, 20)], dtype=np.float32)
HAIR_STYLES: tuple[str, ...] = ("short", "long", "cap", "bald")
EYE_COLOUR = np.array([25.0, 20.0, 20.0], dtype=np.float32)


@dataclass(frozen=True)
class Appearance:
    """How one person looks for a whole sequence.

    Attributes:
        skin: RGB skin colour.
        hair: RGB hair (or cap) colour.
        hair_style: One of :data:`HAIR_STYLES`.
        shirt: RGB base colour of the top.
        shirt_second: RGB second colour for patterned tops.
        shirt_texture: One of :data:`drawing.TEXTURES`.
        shirt_period: Pattern period as a fraction of the torso width.
        trousers: RGB trousers colour.
        shoes: RGB shoe colour.
        height_factor: Body height relative to the perspective model's reference person.
        width_factor: Body width relative to the standard build.
        head_scale: Head size relative to the standard head.
        noise_tile: ``(16, 16)`` values in [-1, 1] for the noise texture.
    """

    skin: np.ndarray
    hair: np.ndarray
    hair_style: str
    shirt: np.ndarray
    shirt_second: np.ndarray
    shirt_texture: str
    shirt_period: float
    trousers: np.ndarray
    shoes: np.ndarray
    height_factor: float
    width_factor: float
    head_scale: float
    noise_tile: np.ndarray


@dataclass(frozen=True)
class Pose:
    """Where a person is in one frame.

    Attributes:
        fx: Feet centre x in pixels.
        fy: Feet (ground contact) y in pixels.
        height: Apparent height in pixels, feet to top of head.
        phase: Walking cycle phase in radians.
        facing: -1 walking left, +1 walking right, 0 facing the camera.
    """

    fx: float
    fy: float
    height: float
    phase: float
    facing: int


@dataclass(frozen=True)
class BodyLayout:
    """Pixel geometry of one person in one frame (not clipped to the image).

    Attributes:
        head: ``(cx, cy, rx, ry)`` head ellipse.
        torso: ``(top, bottom, cx, top_half, bottom_half)`` trapezoid.
        limbs: ``(name, (x0, y0), (x1, y1), radius)`` capsules: legs then arms.
        hands: ``((x, y), radius)`` per hand.
        shoes: ``(cx, cy, rx, ry)`` per shoe.
        box: Person box ``(x, y, w, h)`` around every drawn component.
        head_box: Head box around face and hair.
        keypoints: PoseTrack18 keypoints ``(x, y)``, in :data:`POSETRACK_KEYPOINTS` order.
    """

    head: tuple[float, float, float, float]
    torso: tuple[float, float, float, float, float]
    limbs: tuple[tuple[str, tuple[float, float], tuple[float, float], float], ...]
    hands: tuple[tuple[tuple[float, float], float], ...]
    shoes: tuple[tuple[float, float, float, float], ...]
    box: Box
    head_box: Box
    keypoints: tuple[tuple[float, float], ...]


def _colour(rng: np.random.Generator, saturation: tuple[float, float] = (0.25, 0.95),
            value: tuple[float, float] = (0.2, 0.95)) -> np.ndarray:
    h, s, v = rng.uniform(0, 1), rng.uniform(*saturation), rng.uniform(*value)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32) * 255.0


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Draw a random appearance (clothing colours and textures, skin, hair, build)."""
    return Appearance(
        skin=SKIN_TONES[rng.integers(len(SKIN_TONES))].copy(),
        hair=HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))].copy(),
        hair_style=HAIR_STYLES[int(rng.choice(len(HAIR_STYLES), p=[0.45, 0.3, 0.15, 0.1]))],
        shirt=_colour(rng),
        shirt_second=_colour(rng),
        shirt_texture=TEXTURES[rng.integers(len(TEXTURES))],
        shirt_period=float(rng.uniform(0.12, 0.3)),
        trousers=_colour(rng, saturation=(0.05, 0.7), value=(0.1, 0.7)),
        shoes=_colour(rng, saturation=(0.0, 0.4), value=(0.05, 0.4)),
        height_factor=float(rng.uniform(0.9, 1.08)),
        width_factor=float(rng.uniform(0.85, 1.2)),
        head_scale=float(rng.uniform(0.92, 1.1)),
        noise_tile=rng.uniform(-1, 1, size=(16, 16)).astype(np.float32),
    )


def lookalike(original: Appearance, rng: np.random.Generator, jitter: float = 10.0) -> Appearance:
    """A near copy of ``original``: same clothes, texture and hair, colours jittered by ± ``jitter``."""

    def near(c: np.ndarray) -> np.ndarray:
        return np.clip(c + rng.uniform(-jitter, jitter, size=3).astype(np.float32), 0, 255)

    return replace(
        original, skin=near(original.skin), hair=near(original.hair), shirt=near(original.shirt),
        shirt_second=near(original.shirt_second), trousers=near(original.trousers),
        height_factor=float(original.height_factor * rng.uniform(0.95, 1.05)),
        width_factor=float(original.width_factor * rng.uniform(0.95, 1.05)),
    )


def layout_person(pose: Pose, look: Appearance) -> BodyLayout:
    """Pixel geometry, person box, head box and keypoints of a person.

    Proportions are fractions of the apparent height ``H``: head ≈ 0.17 H tall, shoulders at
    0.80 H above the feet, hips at 0.47 H; legs and arms swing with the walking phase.
    """
    H, fx, fy = pose.height, pose.fx, pose.fy
    wf, hs = look.width_factor, look.head_scale
    ry, rx = 0.085 * H * hs, 0.068 * H * hs
    cx = fx + 0.01 * H * pose.facing
    cy = fy - H + ry
    top, bottom = fy - 0.80 * H, fy - 0.45 * H
    sw, hw = 0.125 * H * wf, 0.10 * H * wf
    swing = 0.10 * H * math.sin(pose.phase)
    hip_y = fy - 0.47 * H
    leg_r, arm_r = 0.042 * H * wf, 0.03 * H * wf
    # Person's left is on the image right (people are drawn facing the camera).
    hips = ((fx + 0.05 * H * wf, hip_y), (fx - 0.05 * H * wf, hip_y))
    feet = ((fx + 0.04 * H + swing, fy - 0.03 * H), (fx - 0.04 * H - swing, fy - 0.03 * H))
    shoulders = ((fx + sw - 0.025 * H, top + 0.03 * H), (fx - sw + 0.025 * H, top + 0.03 * H))
    wrists = ((fx + sw + 0.015 * H - 0.7 * swing, fy - 0.45 * H),
              (fx - sw - 0.015 * H + 0.7 * swing, fy - 0.45 * H))
    elbows = tuple((s[0] + (w[0] - s[0]) / 2 + side * 0.02 * H, (s[1] + w[1]) / 2)
                   for s, w, side in zip(shoulders, wrists, (1, -1), strict=True))
    knees = tuple(((h[0] + f[0]) / 2, (h[1] + f[1]) / 2) for h, f in zip(hips, feet, strict=True))
    limbs = (("left_leg", hips[0], feet[0], leg_r), ("right_leg", hips[1], feet[1], leg_r),
             ("left_arm", shoulders[0], wrists[0], arm_r), ("right_arm", shoulders[1], wrists[1], arm_r))
    hand_r = 0.028 * H
    shoes = tuple((f[0] + 0.012 * H * pose.facing, fy - 0.012 * H, 0.05 * H, 0.025 * H) for f in feet)

    xs = [cx - rx, cx + rx, fx - sw, fx + sw]
    xs += [p[0] + sign * r for _, a, b, r in limbs for p in (a, b) for sign in (-1, 1)]
    xs += [s[0] - s[2] for s in shoes] + [s[0] + s[2] for s in shoes]
    xs += [w[0] - hand_r for w in wrists] + [w[0] + hand_r for w in wrists]
    x0, x1 = min(xs), max(xs)
    y0, y1 = cy - ry * 1.08, max(fy, *(s[1] + s[3] for s in shoes))
    hair_pad = 1.08
    head_box = (cx - rx * hair_pad, cy - ry * hair_pad, 2 * rx * hair_pad, 2 * ry * hair_pad)
    nose = (cx + 0.4 * rx * pose.facing, cy + 0.2 * ry)
    keypoints = (nose, (cx, cy + ry), (cx, cy - ry), (cx + rx, cy), (cx - rx, cy), *shoulders, *elbows,
                 *wrists, *hips, *knees, *feet)
    return BodyLayout(head=(cx, cy, rx, ry), torso=(top, bottom, fx, sw, hw), limbs=limbs,
                      hands=((wrists[0], hand_r), (wrists[1], hand_r)), shoes=shoes,
                      box=(x0, y0, x1 - x0, y1 - y0), head_box=head_box, keypoints=keypoints)


@dataclass
class HeadPixels:
    """Where a rendered head is, to measure later how much of it stays visible.

    Attributes:
        region: ``(y0, y1, x0, x1)`` of ``mask`` in the frame.
        mask: Bool mask of face and hair pixels.
    """

    region: tuple[int, int, int, int]
    mask: np.ndarray

    def visible_fraction(self, owner: np.ndarray, owner_id: int) -> float:
        """Share of head pixels still owned by ``owner_id`` after every person was drawn."""
        total = int(self.mask.sum())
        if total == 0:
            return 0.0
        y0, y1, x0, x1 = self.region
        return float((owner[y0:y1, x0:x1][self.mask] == owner_id).sum()) / total


Colour = np.ndarray | Callable[[np.ndarray, np.ndarray], np.ndarray]
"""A ``(3,)`` RGB colour, or a function of the pixel grid ``(yy, xx)`` giving ``(h, w, 3)`` colours."""


class _Patch:
    """A person's own canvas over its box; components are drawn only inside their own bounds."""

    def __init__(self, region: tuple[int, int, int, int]) -> None:
        y0, y1, x0, x1 = region
        self.region = region
        self.yy, self.xx = grid(y0, y1, x0, x1)
        self.canvas = np.zeros((y1 - y0, x1 - x0, 3), np.float32)
        self.cover = np.zeros((y1 - y0, x1 - x0), bool)
        self.head = np.zeros((y1 - y0, x1 - x0), bool)

    def draw(self, bounds: tuple[float, float, float, float],
             mask_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], colour: Colour,
             head: bool = False) -> None:
        """Paint one component whose pixels all lie in ``bounds = (x0, y0, x1, y1)`` (frame pixels)."""
        y0, y1, x0, x1 = self.region
        r0, r1 = max(int(bounds[1]) - y0, 0), min(math.ceil(bounds[3]) + 1 - y0, y1 - y0)
        c0, c1 = max(int(bounds[0]) - x0, 0), min(math.ceil(bounds[2]) + 1 - x0, x1 - x0)
        if r1 <= r0 or c1 <= c0:
            return
        yy, xx = self.yy[r0:r1, c0:c1], self.xx[r0:r1, c0:c1]
        mask = mask_fn(yy, xx)
        paint(self.canvas[r0:r1, c0:c1], self.cover[r0:r1, c0:c1], mask,
              colour(yy, xx) if callable(colour) else colour)
        if head:
            self.head[r0:r1, c0:c1] |= mask

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, colour: Colour, head: bool = False,
                above: float | None = None) -> None:
        """Paint an ellipse, optionally only the rows above ``y = above``."""

        def mask(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
            inside = ellipse_mask(yy, xx, cy, cx, ry, rx)
            return inside if above is None else inside & (yy < above)

        self.draw((cx - rx, cy - ry, cx + rx, cy + ry), mask, colour, head)

    def capsule(self, a: tuple[float, float], b: tuple[float, float], r: float, colour: Colour) -> None:
        """Paint a limb from ``a`` to ``b`` (``(x, y)`` points) of radius ``r``."""
        bounds = (min(a[0], b[0]) - r, min(a[1], b[1]) - r, max(a[0], b[0]) + r, max(a[1], b[1]) + r)
        self.draw(bounds, lambda yy, xx: capsule_mask(yy, xx, a, b, r), colour)


@dataclass(frozen=True)
class PersonStyle:
    """Less cartoon-like rendering of one person in one frame (all 0: the plain flat drawing).

    Attributes:
        cloth_texture: Amplitude of the fine cloth grain (:func:`drawing.fabric`) on every garment.
        shading: Strength of the light from above (:func:`drawing.vertical_shade`) over the body,
            and of the cylinder shading of the sleeves.
        blur_sigma: Gaussian blur of the person, edges included, in pixels.
        motion: Motion-blur streak ``(dx, dy)`` in pixels.
    """

    cloth_texture: float = 0.0
    shading: float = 0.0
    blur_sigma: float = 0.0
    motion: tuple[float, float] = (0.0, 0.0)

    @property
    def plain(self) -> bool:
        """Whether nothing of the style applies."""
        return self == PersonStyle()


def render_person(image: np.ndarray, owner: np.ndarray, layout: BodyLayout, look: Appearance,
                  owner_id: int, style: PersonStyle | None = None) -> HeadPixels:
    """Paint one person over ``image`` (everything drawn earlier is behind it).

    Args:
        image: ``(H, W, 3)`` float32 frame, in place.
        owner: ``(H, W)`` int16 person id per pixel, in place.
        layout: From :func:`layout_person`.
        look: The person's appearance.
        owner_id: Id recorded in ``owner``.
        style: Textures, shading and blur (:class:`PersonStyle`); ``None``: the plain drawing. The
            owner map (what the annotations see) is the unblurred shape either way.

    Returns:
        The head's pixels (empty when the head is outside the image).
    """
    height, width = owner.shape
    x, y, w, h = clip_box(layout.box, width, height)
    y0, y1, x0, x1 = int(y), min(height, math.ceil(y + h)), int(x), min(width, math.ceil(x + w))
    if y1 <= y0 or x1 <= x0:
        return HeadPixels((y0, y0, x0, x0), np.zeros((0, 0), bool))
    patch = _Patch((y0, y1, x0, x1))
    top, bottom, tcx, sw, hw = layout.torso
    style = style or PersonStyle()
    box_top, box_bottom = layout.box[1], layout.box[1] + layout.box[3]

    def finish(colour: Colour, garment: bool = True) -> Colour:
        """``colour`` with the style's cloth grain (garments) and light from above; as is when plain."""
        if style.cloth_texture == 0 and style.shading == 0:
            return colour

        def styled(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
            base = colour(yy, xx) if callable(colour) else colour  # (h, w, 3) or (3,)
            factor = vertical_shade(yy, box_top, box_bottom, style.shading)  # (h, w, 1)
            if garment and style.cloth_texture > 0:
                factor = factor * fabric((xx - (tcx - sw)) / (2 * sw), (yy - top) / (2 * sw), look.noise_tile,
                                         style.cloth_texture)
            return base * factor  # (h, w, 3)

        return styled

    for _, a, b, r in layout.limbs[:2]:
        mid = (a[0] + b[0]) / 2
        patch.capsule(a, b, r, finish(lambda yy, xx, mid=mid, r=r: look.trousers * shade(xx, mid, r * 2)))
    for scx, scy, srx, sry in layout.shoes:
        patch.ellipse(scx, scy, srx, sry, finish(look.shoes, garment=False))

    def cloth(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        u, v = (xx - (tcx - sw)) / (2 * sw), (yy - top) / (2 * sw)
        pattern = texture(look.shirt_texture, u, v, look.shirt, look.shirt_second, look.shirt_period,
                          look.noise_tile)  # (h, w, 3)
        return pattern * shade(xx, tcx, sw, 0.35)

    half = max(sw, hw)
    patch.draw((tcx - half, top, tcx + half, bottom),
               lambda yy, xx: trapezoid_mask(yy, xx, top, bottom, tcx, sw, hw), finish(cloth))
    for _, a, b, r in layout.limbs[2:]:
        if style.shading > 0:  # round sleeves, as the trousers already are
            mid = (a[0] + b[0]) / 2
            sleeve: Colour = lambda yy, xx, mid=mid, r=r: look.shirt * 0.85 * shade(xx, mid, r * 2)  # noqa: E731
        else:
            sleeve = look.shirt * 0.85
        patch.capsule(a, b, r, finish(sleeve))
    for (hx, hy), r in layout.hands:
        patch.ellipse(hx, hy, r, r, finish(look.skin * 0.95, garment=False))

    cx, cy, rx, ry = layout.head
    patch.capsule((cx, cy + 0.8 * ry), (tcx, top + 0.02 * (bottom - top)), 0.45 * rx, look.skin * 0.85)
    if look.hair_style == "long":
        patch.ellipse(cx, cy + 0.35 * ry, 1.12 * rx, 1.3 * ry, look.hair * 0.9, head=True,
                      above=cy + 1.4 * ry)
    patch.ellipse(cx, cy, rx, ry, lambda yy, xx: look.skin * shade(xx, cx, rx, 0.25), head=True)
    if look.hair_style != "bald":
        line = {"short": -0.15, "long": -0.05, "cap": -0.3}[look.hair_style]
        patch.ellipse(cx, cy - 0.05 * ry, 1.08 * rx, 1.08 * ry, look.hair, head=True, above=cy + line * ry)
    if rx >= 4:
        gaze = float(np.sign(layout.keypoints[0][0] - cx))
        for side in (-1, 1):
            patch.ellipse(cx + side * 0.35 * rx + 0.25 * rx * gaze, cy + 0.08 * ry, 0.12 * rx, 0.12 * rx,
                          EYE_COLOUR)
    if style.blur_sigma > 0 or np.hypot(*style.motion) >= 1.0:
        colours, alpha, margin = soften(patch.canvas, patch.cover, style.blur_sigma, style.motion)
        blend(image, (y0 - margin, x0 - margin), colours, alpha)
        np.copyto(owner[y0:y1, x0:x1], np.int16(owner_id), where=patch.cover)
    else:
        composite(image, owner, patch.region, patch.canvas, patch.cover, owner_id)
    return HeadPixels(patch.region, patch.head)
