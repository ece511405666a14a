"""Synthetic scene generator: determinism, crowded share, round trip through the reader, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaptrack.track.data import PartSpec, generate, generate_dataset, read_posetrack_dir
from adaptrack.track.data.geometry import box_area, head_in_box, intersection_area
from adaptrack.track.data.synth import scene_config
from adaptrack.track.data.synth import writer as writer_module

SMALL = {"n_sequences": 2, "n_frames": 5, "width": 96, "height": 96}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith("generation-")}


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path) -> None:
    generate_dataset(tmp_path / "a", seed=11, **SMALL)
    generate_dataset(tmp_path / "b", seed=11, **SMALL)
    generate_dataset(tmp_path / "c", seed=12, **SMALL)
    a, b, c = (_files(tmp_path / n) for n in "abc")
    assert len(a) == 2 * (5 + 1)  # frames + one JSON per sequence
    assert a == b
    first = sorted(a)[0]
    pixels_a = np.asarray(Image.open(tmp_path / "a" / "images/train/000000_synth_s11/000000.jpg"))
    pixels_b = np.asarray(Image.open(tmp_path / "b" / "images/train/000000_synth_s11/000000.jpg"))
    assert np.array_equal(pixels_a, pixels_b)
    c_renamed = {k.replace("_s12", "_s11"): v for k, v in c.items()}
    assert c_renamed.keys() == a.keys() and c_renamed[first] != a[first]
    assert sum(c_renamed[k] != a[k] for k in a) == len(a)


def test_crowded_preset_share_at_least_30_percent(tmp_path: Path) -> None:
    report = generate_dataset(tmp_path, n_sequences=6, n_frames=10, preset="crowded", seed=2024,
                              width=128, height=128)
    assert report.crowded_share >= 0.30
    # Recount from the files: another visible head inside the designated target's person box.
    seqs = read_posetrack_dir(tmp_path / "annotations" / "train")
    hits = frames = 0
    for seq in seqs:
        assert seq.target_track == 0
        for frame in seq.frames:
            target = frame.person(seq.target_track)
            assert target is not None  # the target is annotated in every frame
            frames += 1
            hits += any(p.parts[0] is not None and head_in_box(p.parts[0], target.box)
                        for p in frame.people if p.track_id != seq.target_track)
    assert hits / frames == pytest.approx(report.crowded_share, abs=0.02)
    saved = json.loads((tmp_path / "generation-train.json").read_text())
    assert saved["crowded_share"] == report.crowded_share and saved["preset"] == "crowded"


def test_round_trip_generator_to_reader(tmp_path: Path) -> None:
    report = generate_dataset(tmp_path, n_sequences=3, n_frames=4, seed=3, width=80, height=64, split="val")
    assert report.n_sequences == 3 and report.frames_per_second > 0
    parts = (PartSpec(), PartSpec(name="nose", size=0.1))
    seqs = read_posetrack_dir(tmp_path / "annotations" / "val", parts=parts)
    assert [s.name for s in seqs] == [f"{i:06d}_synth_s3" for i in range(3)]
    heads = noses = 0
    for seq in seqs:
        assert [f.frame_index for f in seq.frames] == [0, 1, 2, 3]
        for frame in seq.frames:
            assert (frame.width, frame.height) == (80, 64) and frame.path.is_file()
            for person in frame.people:
                x, y, w, h = person.box
                assert x >= 0 and y >= 0 and x + w <= 80 and y + h <= 64 and w > 0 and h > 0
                head, nose = person.parts
                if head is not None:
                    heads += 1
                    assert intersection_area(head, person.box) >= 0.9 * box_area(head)
                noses += nose is not None
    assert heads > 0 and noses > 0
    assert not list(tmp_path.glob(".generate-*"))  # no staging folder left


def test_existing_split_needs_overwrite_and_failures_leave_nothing(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    generate_dataset(tmp_path, seed=1, **SMALL)
    before = _files(tmp_path)
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_dataset(tmp_path, seed=2, **SMALL)

    calls = {"n": 0}
    real = writer_module.render_frame

    def flaky(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(writer_module, "render_frame", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_dataset(tmp_path, seed=2, overwrite=True, **SMALL)
    assert _files(tmp_path) == before  # the old split is intact, nothing half-written
    assert not list(tmp_path.glob(".generate-*"))
    calls["n"] = 0
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_dataset(tmp_path, seed=2, split="fresh", **SMALL)
    assert not (tmp_path / "images" / "fresh").exists() and not (tmp_path / "annotations" / "fresh").exists()

    monkeypatch.setattr(writer_module, "render_frame", real)
    generate_dataset(tmp_path, seed=2, overwrite=True, **SMALL)
    assert _files(tmp_path).keys() != before.keys()  # sequence names carry the new seed


def test_generate_prints_report_and_applies_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = generate(tmp_path, preset="default", n_sequences=2, n_frames=3, seed=0, width=64, height=64,
                      n_people_min=1, n_people_max=1)
    out = capsys.readouterr().out
    assert "crowded share" in out and "2 sequences x 3 frames" in out
    assert report.mean_people == pytest.approx(1.0)  # only the target
    assert report.crowded_share == 0.0


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown preset 'busy'"):
        generate_dataset(tmp_path, 1, 2, preset="busy")
    with pytest.raises(ValueError, match="n_frames"):
        generate_dataset(tmp_path, 1, 0)
    with pytest.raises(ValueError, match="at least 32x32"):
        generate_dataset(tmp_path, 1, 2, width=16)
    with pytest.raises(ValueError, match="plain folder name"):
        generate_dataset(tmp_path, 1, 2, split="../x")
    with pytest.raises(ValueError, match="closeness"):
        scene_config("default", closeness=1.5)
    with pytest.raises(ValueError, match="n_people"):
        scene_config("default", n_people=(3, 2))
    assert not any(tmp_path.iterdir())
