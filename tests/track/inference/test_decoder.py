"""The decoder's levers on hand-made maps: motion model, gating, re-detection, template memory,
distractor-aware association, abstention; settings and ``load_tracker`` overrides."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from adaptrack.track.inference.decoder import (
    BoxKalman,
    TrackerSettings,
    candidate_peaks,
    colour_histogram,
    jump,
    similarity,
)
from adaptrack.track.inference.tracker import Tracker, load_tracker

S, STRIDE, HW = 64, 4, 16  # network input, map stride, map side


def _heat(peaks: dict[int, float], floor: float = 0.01, row: int = 8) -> torch.Tensor:
    """``(1, 1, 16, 16)`` map with the given ``{column: value}`` peaks on one row."""
    heat = torch.full((1, 1, HW, HW), floor)
    for x, v in peaks.items():
        heat[0, 0, row, x] = v
    return heat


def _box_at(x: float, side: float = 16.0, row: int = 8) -> tuple[float, float, float, float]:
    """A ``side`` square box centred on map element (x, row) in input pixels."""
    return (STRIDE * x - side / 2, STRIDE * row - side / 2, side, side)


def _centre_x(box: tuple[float, ...]) -> float:
    return (box[0] + box[2] / 2) / STRIDE


class _Scripted:
    """Stub networks driven by a per-frame script: ``subject_peaks[t]`` gives the subject heat of
    frame t (``{column: value}``), ``flat_peaks`` the heat under a flat prior (re-detection);
    the part heat sits at the subject's strongest peak with value ``part_value``."""

    def __init__(self, subject_peaks: list[dict[int, float]], flat_peaks: dict[int, float] | None = None,
                 part_value: float = 0.9, sizes: dict[int, float] | None = None) -> None:
        self.subject_peaks = subject_peaks
        self.flat_peaks = flat_peaks or {}
        self.part_value = part_value
        self.sizes = sizes or {}
        self.frame = -1
        self.templates = 0
        self.kernels: list[torch.Tensor] = []

    def template(self, image: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        self.templates += 1
        return torch.full((1, 1, 1, 1), float(self.templates))  # 1 for the first template, then 2, 3, ...

    def parts(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.frame += 1
        peaks = self.subject_peaks[min(self.frame, len(self.subject_peaks) - 1)]
        x = max(peaks, key=peaks.get) if peaks else 0
        return _heat({x: self.part_value}), torch.ones(1, 1, 2, HW, HW), torch.zeros(1, 1, 2, HW, HW)

    def subject(self, image: torch.Tensor, kernel: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.kernels.append(kernel.clone())
        flat = bool((prior == 1).all())
        peaks = self.flat_peaks if flat else self.subject_peaks[min(self.frame, len(self.subject_peaks) - 1)]
        size = torch.full((1, 2, HW, HW), 4.0)
        for x, side in self.sizes.items():
            size[0, :, 8, x] = side
        return _heat(peaks), size, torch.zeros(1, 2, HW, HW), torch.ones(1, 1, HW, HW)


def _tracker(backend: _Scripted, **settings: object) -> Tracker:
    return Tracker(backend, ["head"], stride=STRIDE, input_size=S, settings=TrackerSettings(**settings))


BLACK = torch.zeros(3, S, S, dtype=torch.uint8)


# ---------------------------------------------------------------------------------- motion
def test_kalman_predicts_through_a_gap() -> None:
    kalman = BoxKalman(torch.tensor([0.0, 10.0, 10.0, 20.0]), noise=0.05)
    for t in range(1, 8):  # moving 2 px right per frame
        kalman.predict()
        kalman.update(torch.tensor([2.0 * t, 10.0, 10.0, 20.0]))
    gap = [kalman.predict() for _ in range(3)]  # three frames without a measurement
    assert [float(b[0]) for b in gap] == pytest.approx([16.0, 18.0, 20.0], abs=0.6)
    assert float(gap[-1][2]) == pytest.approx(10.0, abs=0.3) and float(gap[-1][3]) == pytest.approx(20.0, abs=0.3)


@pytest.mark.parametrize("motion, expected", [("velocity", 10), ("last", 7)])
def test_velocity_prior_follows_the_target_through_a_gap(motion: str, expected: int) -> None:
    """The target walks one element per frame, vanishes for two frames (the gate coasts), then
    reappears where it walked to, beside a decoy where it vanished: the velocity model's prior sits
    on the right one, the last box's on the decoy."""
    walk = [{x: 0.9} for x in (3, 4, 5, 6, 7)]
    gap = [{7: 0.1}, {7: 0.1}]  # hidden: weak response
    back = [{10: 0.8, 7: 0.8}]  # the target at 10, a decoy at the old place
    tracker = _tracker(_Scripted([*walk[1:], *gap, *back]), motion=motion, gate=0.3, prior_sigma=0.3,
                       window_power=4.0)
    tracker.initialize(BLACK, _box_at(3))
    results = [tracker.track(BLACK) for _ in range(7)]
    assert [r.occluded for r in results] == [False] * 4 + [True, True, False]
    assert _centre_x(results[-1].box) == pytest.approx(expected)


def test_gate_coasts_on_a_low_score_and_marks_the_target_occluded() -> None:
    backend = _Scripted([{4: 0.9}, {12: 0.2}])  # frame 2: only a weak response elsewhere
    tracker = _tracker(backend, gate=0.3)
    tracker.initialize(BLACK, _box_at(4))
    assert not tracker.track(BLACK).occluded
    coasted = tracker.track(BLACK)
    assert coasted.occluded and _centre_x(coasted.box) == pytest.approx(4)  # stayed, did not follow x = 12
    assert not coasted.parts[0].visible  # an occluded target's part is not reported
    ungated = _tracker(_Scripted([{4: 0.9}, {12: 0.2}]))
    ungated.initialize(BLACK, _box_at(4))
    ungated.track(BLACK)
    assert _centre_x(ungated.track(BLACK).box) == pytest.approx(12)  # without the gate it jumps


# ------------------------------------------------------------------------------ re-detection
@pytest.mark.parametrize("flat_peaks, reacquired", [({13: 0.9, 2: 0.2}, True), ({13: 0.9, 2: 0.8}, False)])
def test_redetection_reacquires_a_displaced_target_only_when_clearly_best(flat_peaks: dict[int, float],
                                                                          reacquired: bool) -> None:
    backend = _Scripted([{4: 0.1}], flat_peaks=flat_peaks)  # nothing near the prior
    tracker = _tracker(backend, gate=0.3, redetect=True, redetect_min=0.5, redetect_margin=2.0)
    tracker.initialize(BLACK, _box_at(4))
    result = tracker.track(BLACK)
    assert result.redetected is reacquired and result.occluded is not reacquired
    assert _centre_x(result.box) == pytest.approx(13 if reacquired else 4)


def test_redetection_needs_the_gate() -> None:
    with pytest.raises(ValueError, match="redetect needs gate"):
        TrackerSettings(redetect=True)


# --------------------------------------------------------------------------- template memory
def test_second_template_never_replaces_the_first() -> None:
    backend = _Scripted([{4: 0.9}] * 12)
    tracker = _tracker(backend, memory_weight=0.25, memory_threshold=0.5, memory_interval=3)
    tracker.initialize(BLACK, _box_at(4))
    for _ in range(10):
        tracker.track(BLACK)
    assert float(tracker.decoder.kernel) == 1.0  # the first template, never overwritten
    assert backend.templates == 1 + 3  # refreshed at frames 3, 6, 9
    assert float(tracker.decoder.memory) == 4.0
    used = [float(k) for k in backend.kernels]
    assert used[:3] == [1.0] * 3 and used[3] == pytest.approx(0.75 * 1 + 0.25 * 2)


def test_memory_is_not_refreshed_on_unconfident_frames() -> None:
    backend = _Scripted([{4: 0.4}] * 8)
    tracker = _tracker(backend, memory_weight=0.5, memory_threshold=0.5, memory_interval=1)
    tracker.initialize(BLACK, _box_at(4))
    for _ in range(6):
        tracker.track(BLACK)
    assert backend.templates == 1 and tracker.decoder.memory is None


# ---------------------------------------------------------------------------- distractors
def _two_people() -> torch.Tensor:
    """Red target around element x = 4, a blue person around x = 10 (input pixels)."""
    frame = torch.zeros(3, S, S, dtype=torch.uint8)
    frame[0, 24:40, 8:24] = 220
    frame[2, 24:40, 32:48] = 220
    return frame


@pytest.mark.parametrize("weight, expected", [(0.0, 10), (2.0, 4)])
def test_a_distractor_with_the_higher_raw_score_loses_to_the_target(weight: float, expected: int) -> None:
    backend = _Scripted([{4: 0.7, 10: 0.9}] * 3)
    tracker = _tracker(backend, distractor_weight=weight)
    frame = _two_people()
    tracker.initialize(frame, _box_at(4))
    for _ in range(3):
        assert _centre_x(tracker.track(frame).box) == pytest.approx(expected)
    if weight:
        assert len(tracker.decoder.distractors) == 1  # the blue person, followed frame to frame


@pytest.mark.parametrize("penalty, expected", [(0.0, 6), (1.0, 4)])
def test_jump_penalty_prefers_the_candidate_of_the_same_scale(penalty: float, expected: int) -> None:
    """The person in front (x = 6) is twice as large and scores higher; the jump penalty keeps the
    target's box (x = 4, the same size as before)."""
    backend = _Scripted([{4: 0.7, 6: 0.9}] * 2, sizes={6: 8.0})
    tracker = _tracker(backend, jump_penalty=penalty)
    tracker.initialize(BLACK, _box_at(4))
    assert _centre_x(tracker.track(BLACK).box) == pytest.approx(expected)


def test_candidates_jump_and_colour_similarity_are_pure_functions() -> None:
    heat = _heat({4: 0.7, 10: 0.9, 11: 0.85})[0, 0]  # 11 is not a local maximum
    boxes, scores, heats = candidate_peaks(heat, heat, torch.full((2, HW, HW), 4.0), torch.zeros(2, HW, HW),
                                           (4.0, 4.0), top_k=5, min_heat=0.5)
    assert scores.tolist() == pytest.approx([0.9, 0.7]) and heats.tolist() == pytest.approx([0.9, 0.7])
    assert boxes[0].tolist() == pytest.approx([32.0, 24.0, 16.0, 16.0])
    same = jump(torch.tensor([[0.0, 0.0, 10.0, 20.0]]), torch.tensor([0.0, 0.0, 10.0, 20.0]))
    bigger = jump(torch.tensor([[0.0, 0.0, 20.0, 40.0]]), torch.tensor([0.0, 0.0, 10.0, 20.0]))
    assert float(same) == 0 and float(bigger) > 1
    frame = _two_people().float()[None] / 255
    red = colour_histogram(frame[0], torch.tensor([8.0, 24.0, 16.0, 16.0]))
    blue = colour_histogram(frame[0], torch.tensor([32.0, 24.0, 16.0, 16.0]))
    assert similarity(red, red) == pytest.approx(1.0) and similarity(red, blue) < 0.05


# ------------------------------------------------------------------------------ abstention
@pytest.mark.parametrize("part_gate, visible", [(0.0, True), (0.1, False)])
def test_a_hidden_head_is_reported_hidden(part_gate: float, visible: bool) -> None:
    backend = _Scripted([{4: 0.9}] * 2, part_value=0.05)  # the target's head is barely detected
    tracker = _tracker(backend, part_gate=part_gate)
    tracker.initialize(BLACK, _box_at(4))
    result = tracker.track(BLACK)
    assert result.parts[0].visible is visible and not result.occluded
    assert result.as_dict()["parts"][0]["visible"] is visible


def test_coasting_on_a_hidden_part() -> None:
    backend = _Scripted([{12: 0.9}] * 2, part_value=0.05)
    tracker = _tracker(backend, part_gate=0.1, coast_on_hidden_part=True)
    tracker.initialize(BLACK, _box_at(4))
    result = tracker.track(BLACK)
    assert result.occluded and _centre_x(result.box) == pytest.approx(4)


# ------------------------------------------------------------------------- settings, loading
def test_settings_are_validated_and_read_only() -> None:
    for bad in ({"gate": -0.1}, {"memory_weight": 1.5}, {"top_k": 0}, {"motion": "spline"},
                {"coast_on_hidden_part": True}, {"gate": float("nan")}):
        with pytest.raises(ValueError, match="tracker setting"):
            TrackerSettings(**bad)
    tracker = _tracker(_Scripted([{4: 0.9}]))
    with pytest.raises(AttributeError):
        tracker.settings = TrackerSettings()  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        tracker.settings.gate = 0.5  # type: ignore[misc]


def test_settings_metadata_round_trip_casts_and_rejects_unknown_keys() -> None:
    settings = TrackerSettings(motion="velocity", gate=0.3, redetect=True, memory_interval=4, part_gate=0.1)
    assert TrackerSettings.from_meta(settings.as_meta()) == settings
    assert TrackerSettings.from_meta({"window_power": 2, "memory_interval": 3.0}).window_power == 2.0
    with pytest.raises(ValueError, match="unknown tracker settings"):
        TrackerSettings.from_meta({"gates": 0.3})
    assert settings.levers == ["velocity", "gate", "redetect", "abstain"]


def test_load_tracker_applies_overrides_over_the_recorded_settings(tracker_ckpt: Path) -> None:
    recorded = load_tracker(tracker_ckpt)
    tuned = load_tracker(tracker_ckpt, gate=0.3, motion="velocity")
    assert tuned.settings == dataclasses.replace(recorded.settings, gate=0.3, motion="velocity")
    assert tuned.input_size == recorded.input_size == 64  # the training size, from the checkpoint
    with pytest.raises(ValueError, match="unknown tracker settings"):
        load_tracker(tracker_ckpt, gates=0.3)


def test_redetection_interval_searches_every_kth_occluded_frame() -> None:
    class Counting(_Scripted):
        searches = 0

        def subject(self, image: torch.Tensor, kernel: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, ...]:
            if bool((prior == 1).all()):
                Counting.searches += 1
            return super().subject(image, kernel, prior)

    backend = Counting([{4: 0.1}] * 8, flat_peaks={13: 0.3})  # never clear enough to re-acquire
    tracker = _tracker(backend, gate=0.3, redetect=True, redetect_interval=3)
    tracker.initialize(BLACK, _box_at(4))
    assert all(tracker.track(BLACK).occluded for _ in range(7))
    assert Counting.searches == 3  # occluded frames 1, 4 and 7
