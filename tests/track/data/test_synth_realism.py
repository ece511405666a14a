"""Less cartoon-like synthetic scenes: the new knobs are off by default (bit-identical output),
deterministic when on, backgrounds from a photo folder, and the median background of a video."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaptrack.common.errors import DataError
from adaptrack.track.data.synth import REALISM, generate_dataset, median_background, scene_config
from adaptrack.track.data.synth.drawing import line_kernel, soften
from adaptrack.track.data.synth.scene import plan_scene, render_frame

DEFAULT_HASH = "e1fffe8c4ed56fe89ea04a80cf837344747cf8c92d8ab4f7d67ed9f12bbb166d"
"""sha256 of :func:`_default_output` computed with the generator before the realism knobs existed
(commit 02722f2); pixels before JPEG, so it does not depend on the libjpeg build."""


def _frames(config_args: dict, seed: int = 5, index: int = 0, n: int = 3, size: int = 64) -> list:
    config = scene_config(**config_args)
    plan = plan_scene(np.random.default_rng([seed, index]), config, n, size, size)
    return [render_frame(plan, t, config) for t in range(n)]


def _default_output(tmp: Path) -> str:
    h = hashlib.sha256()
    for preset in ("default", "crowded"):
        for index in range(2):
            for f in _frames({"preset": preset}, index=index):
                h.update(f.image.tobytes())
                h.update(repr([(p.track_id, p.box, p.head_box, p.keypoints) for p in f.people]).encode())
    generate_dataset(tmp, n_sequences=2, n_frames=3, width=64, height=64, seed=5, preset="crowded")
    for p in sorted((tmp / "annotations").rglob("*.json")):
        h.update(p.read_bytes())
    return h.hexdigest()


def test_default_output_is_unchanged(tmp_path: Path) -> None:
    assert _default_output(tmp_path) == DEFAULT_HASH
    meta = json.loads(next((tmp_path / "annotations").rglob("*.json")).read_text())["adaptrack"]
    assert "cloth_texture" not in meta["config"] and "backgrounds" not in meta["config"]


def test_realism_is_deterministic_changes_pixels_not_annotations() -> None:
    plain = _frames({"preset": "crowded"}, size=96)
    real_a = _frames({"preset": "crowded", "realism": True}, size=96)
    real_b = _frames({"preset": "crowded", "realism": True}, size=96)
    for a, b, p in zip(real_a, real_b, plain, strict=True):
        assert np.array_equal(a.image, b.image)
        assert a.people == p.people  # the same people, boxes and visibility: only the look changes
        assert np.abs(a.image.astype(int) - p.image.astype(int)).mean() > 1.0
    realistic = _frames({"preset": "realistic"}, size=96)
    assert realistic[0].people == _frames({"preset": "default"}, size=96)[0].people
    assert scene_config("realistic").cloth_texture == REALISM["cloth_texture"]


def test_each_knob_alone_changes_only_people_pixels() -> None:
    plain = _frames({"preset": "crowded"}, size=96, n=2)
    config = scene_config("crowded")
    from dataclasses import replace

    for knob, value in (("cloth_texture", 0.2), ("soft_shading", 0.4), ("person_blur", (0.8, 0.8)),
                        ("motion_blur", 1.0)):
        cfg = replace(config, **{knob: value})
        plan = plan_scene(np.random.default_rng([5, 0]), cfg, 2, 96, 96)
        frame = render_frame(plan, 1, cfg)
        assert frame.people == plain[1].people
        assert not np.array_equal(frame.image, plain[1].image), knob


def test_soften_keeps_the_person_and_spreads_its_edges() -> None:
    canvas = np.zeros((20, 10, 3), np.float32)
    canvas[...] = (200.0, 100.0, 50.0)
    cover = np.zeros((20, 10), bool)
    cover[5:15, 3:7] = True
    colours, alpha, margin = soften(canvas, cover, sigma=1.0, motion=(4.0, 0.0))
    assert alpha.shape == (20 + 2 * margin, 10 + 2 * margin) and margin >= 3
    assert alpha.sum() == pytest.approx(cover.sum(), rel=1e-3)  # blur moves coverage, keeps its total
    inside = alpha > 0.05
    assert np.allclose(colours[inside], (200.0, 100.0, 50.0), atol=1e-2)  # un-premultiplied: no dark rim
    k = line_kernel(3.0, 4.0)
    assert k.sum() == pytest.approx(1.0) and k.shape[0] % 2 == 1


def _write_photos(folder: Path) -> None:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (80, 120, 3), dtype=np.uint8)).save(folder / f"street{i}.png")
    (folder / "notes.txt").write_text("ignored")


def test_backgrounds_from_a_folder(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    _write_photos(photos)
    a = _frames({"preset": "default", "backgrounds": photos}, size=64)
    b = _frames({"preset": "default", "backgrounds": photos}, size=64)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    assert a[0].people == _frames({"preset": "default"}, size=64)[0].people
    generate_dataset(tmp_path / "out", n_sequences=1, n_frames=2, width=64, height=64, backgrounds=photos,
                     realism=True)
    meta = json.loads(next((tmp_path / "out" / "annotations").rglob("*.json")).read_text())["adaptrack"]
    assert meta["background"] in {"street0.png", "street1.png"}
    assert meta["config"]["backgrounds"] == str(photos) and meta["config"]["cloth_texture"] > 0


def test_background_folder_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="background folder not found") as err:
        scene_config("default", backgrounds=tmp_path / "nowhere")
    assert "nowhere" in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("no photos")
    with pytest.raises(DataError, match="holds no photo") as err:
        generate_dataset(tmp_path / "out", n_sequences=1, n_frames=1, width=64, height=64, backgrounds=empty)
    assert str(empty) in str(err.value) and not (tmp_path / "out").exists()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"bad\.jpg"):
        _frames({"preset": "default", "backgrounds": broken})


def test_median_background_removes_moving_people(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    street = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
    frames = []
    for t in range(9):
        f = street.copy()
        f[4:14, 3 * t:3 * t + 4] = (255, 0, 0)  # a person walking across
        frames.append(f)
    out = median_background(frames, tmp_path / "bg.png")
    assert np.array_equal(out, street)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "bg.png")), street)
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{t:03d}.png")
    assert np.array_equal(median_background(folder, max_frames=5), street)  # frames 0, 2, 4, 6, 8
    with pytest.raises(DataError, match="no frames"):
        median_background([])
    with pytest.raises(DataError, match="one size"):
        median_background([street, street[:10]])
    with pytest.raises(DataError, match="no such frame folder"):
        median_background(tmp_path / "missing.mp4")
