"""Pure parts of the synthetic scenes: masks, textures, body layout, trajectories, camera effects."""

from __future__ import annotations

import math

import numpy as np
import pytest

from adaptrack.track.data.geometry import box_area, intersection_area
from adaptrack.track.data.posetrack import POSETRACK_KEYPOINTS
from adaptrack.track.data.synth.backgrounds import BACKGROUND_NAMES, load_background, sample_background
from adaptrack.track.data.synth.drawing import (
    TEXTURES,
    camera_effects,
    capsule_mask,
    ellipse_mask,
    grid,
    noise_bank,
    texture,
    trapezoid_mask,
)
from adaptrack.track.data.synth.people import Pose, layout_person, lookalike, render_person, sample_appearance
from adaptrack.track.data.synth.scene import PRESETS, plan_scene, reflect


def test_masks_have_the_expected_areas() -> None:
    yy, xx = grid(0, 100, 0, 100)
    assert yy.shape == (100, 100) and yy[3, 0] == 3.5 and xx[0, 7] == 7.5
    assert ellipse_mask(yy, xx, 50, 50, 20, 10).sum() == pytest.approx(math.pi * 200, rel=0.03)
    capsule = capsule_mask(yy, xx, (20, 50), (80, 50), 5)  # 60 x 10 rectangle + a disc of radius 5
    assert capsule.sum() == pytest.approx(600 + math.pi * 25, rel=0.05)
    trap = trapezoid_mask(yy, xx, 10, 30, 50, 10, 20)  # mean width 30 over 20 rows
    assert trap.sum() == pytest.approx(600, rel=0.1)


def test_textures_vary_and_stay_in_body_coordinates() -> None:
    v, u = np.meshgrid(np.linspace(0, 1, 20, dtype=np.float32), np.linspace(0, 1, 10, dtype=np.float32),
                       indexing="ij")
    base, second = np.array([200, 0, 0], np.float32), np.array([0, 0, 200], np.float32)
    tile = np.random.default_rng(0).uniform(-1, 1, (16, 16)).astype(np.float32)
    for kind in TEXTURES:
        out = texture(kind, u, v, base, second, 0.25, tile)
        assert out.shape == (20, 10, 3)
        assert (len(np.unique(out.reshape(-1, 3), axis=0)) == 1) == (kind == "solid")
    stripes = texture("hstripes", u, v, base, second, 0.25, tile)
    assert (stripes[:, 0] == stripes[:, -1]).all()  # horizontal stripes: constant along a row
    with pytest.raises(ValueError, match="unknown texture"):
        texture("plaid", u, v, base, second, 0.25, tile)


def test_layout_boxes_keypoints_and_scale() -> None:
    look = sample_appearance(np.random.default_rng(0))
    small = layout_person(Pose(fx=50, fy=90, height=60, phase=0.3, facing=1), look)
    big = layout_person(Pose(fx=50, fy=90, height=120, phase=0.3, facing=1), look)
    assert len(small.keypoints) == len(POSETRACK_KEYPOINTS)
    assert intersection_area(small.head_box, small.box) >= 0.95 * box_area(small.head_box)
    assert small.box[3] == pytest.approx(60, rel=0.1)  # feet to top of the head
    assert big.head_box[2] == pytest.approx(2 * small.head_box[2])
    nose, head_top, ankle = small.keypoints[0], small.keypoints[2], small.keypoints[-1]
    assert head_top[1] < nose[1] < ankle[1]
    assert nose[0] > small.head[0]  # facing right


def test_render_records_owner_and_occluded_head() -> None:
    rng = np.random.default_rng(1)
    image = np.zeros((100, 100, 3), np.float32)
    owner = np.full((100, 100), -1, np.int16)
    back = layout_person(Pose(50, 80, 60, 0.0, 0), sample_appearance(rng))
    front = layout_person(Pose(50, 88, 66, 0.0, 0), sample_appearance(rng))
    head_back = render_person(image, owner, back, sample_appearance(rng), 1)
    assert head_back.visible_fraction(owner, 1) == 1.0
    render_person(image, owner, front, sample_appearance(rng), 2)
    assert head_back.visible_fraction(owner, 1) < 0.5  # the nearer person hides it
    assert (owner == 2).sum() > (owner == 1).sum() > 0
    assert image[owner == -1].max() == 0


def test_lookalike_copies_clothes() -> None:
    rng = np.random.default_rng(2)
    original = sample_appearance(rng)
    copy = lookalike(original, rng)
    assert copy.shirt_texture == original.shirt_texture and copy.hair_style == original.hair_style
    assert np.abs(copy.shirt - original.shirt).max() <= 10


def test_reflect_stays_in_bounds_and_bounces() -> None:
    path = reflect(5.0, 3.0, 20, 0.0, 10.0)
    assert path.min() >= 0 and path.max() <= 10
    assert path[:3].tolist() == [5.0, 8.0, 9.0]  # 11 bounces back to 9


def test_plan_is_deterministic_and_target_stays_in_frame() -> None:
    a = plan_scene(np.random.default_rng([4, 0]), PRESETS["crowded"], 12, 128, 96)
    b = plan_scene(np.random.default_rng([4, 0]), PRESETS["crowded"], 12, 128, 96)
    assert np.array_equal(a.people[1].fx, b.people[1].fx) and a.background.name == b.background.name
    target = a.people[0]
    assert target.role == "target" and target.fx.min() > 0 and target.fx.max() < 128
    assert 4 <= len(a.people) <= 6 and any(p.role == "companion" for p in a.people)


def test_backgrounds_load_offline_and_camera_effects() -> None:
    for name in ("astronaut", "camera", "stereo_motorcycle"):
        photo = load_background(name)
        assert photo.ndim == 3 and photo.shape[2] == 3 and photo.dtype == np.uint8
    assert len(BACKGROUND_NAMES) >= 10
    rng = np.random.default_rng(0)
    background = sample_background(rng, 64, 48, 10)
    first, last = background.frame(0, 64, 48), background.frame(9, 64, 48)
    assert first.shape == (48, 64, 3)
    assert background.pan == (0, 0) or not np.array_equal(first, last)
    bank = noise_bank(rng, 64, 48, 4.0)
    out = camera_effects(np.full((48, 64, 3), 100, np.float32), bank, (3, 5), 1.1, 0.8)
    assert out.dtype == np.uint8 and out.shape == (48, 64, 3)
    assert 105 < out.mean() < 115 and out.std() > 1
