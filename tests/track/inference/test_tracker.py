"""Inference: Tracker.initialize / track on a small sequence, and its input checks."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from adaptrack.common.errors import DataError
from adaptrack.track.data.types import ClipBatch
from adaptrack.track.geometry import decode_peak
from adaptrack.track.inference.tracker import Tracker, TrackerSettings, frame_tensor, load_tracker


def test_initialize_and_track_a_short_sequence(tracker_ckpt: Path, batch_factory: Callable[..., ClipBatch]) -> None:
    clip = batch_factory(B=1, T=5)
    tracker = load_tracker(tracker_ckpt, input_size=64)
    assert tracker.parts == ["head"]
    tracker.initialize(clip.frames[0, 0], tuple(clip.target_box[0, 0].tolist()))
    for t in range(1, 5):
        # numpy HWC frames are accepted as well as CHW tensors
        frame = clip.frames[0, t].permute(1, 2, 0).numpy() if t % 2 else clip.frames[0, t]
        result = tracker.track(frame)
        assert len(result.box) == 4 and all(math.isfinite(v) for v in result.box)
        assert 0.0 < result.score < 1.0
        (part,) = result.parts
        assert part.name == "head" and all(math.isfinite(v) for v in (*part.position, *part.size))
        assert min(part.size) >= 0
        maps = tracker.last_maps
        # the reported part is the decoded maximum of the element product (claims 5-6)
        pos, size, score, _ = decode_peak(maps.product, maps.size, maps.offset, maps.ratio)
        assert part.position == pytest.approx(tuple(pos[0].tolist()))
        assert part.size == pytest.approx(tuple(size[0].tolist()))
        assert part.score == pytest.approx(float(score[0]))


def test_positions_scale_back_to_the_original_frame(tracker_ckpt: Path,
                                                     batch_factory: Callable[..., ClipBatch]) -> None:
    clip = batch_factory(B=1, T=2)
    small = load_tracker(tracker_ckpt, input_size=64)
    box = tuple(clip.target_box[0, 0].tolist())
    small.initialize(clip.frames[0, 0], box)
    r_small = small.track(clip.frames[0, 1])
    # the same content at twice the size: the network input is identical after resizing to 64
    big_frames = torch.nn.functional.interpolate(clip.frames[0].float(), scale_factor=2, mode="nearest").to(torch.uint8)
    big = load_tracker(tracker_ckpt, input_size=64)
    big.initialize(big_frames[0], tuple(2 * v for v in box))
    r_big = big.track(big_frames[1])
    assert np.allclose(r_big.box, [2 * v for v in r_small.box], atol=2.0)


def test_bad_initial_boxes_and_missing_initialize(tracker_ckpt: Path, batch: ClipBatch) -> None:
    tracker = load_tracker(tracker_ckpt, input_size=64)
    with pytest.raises(RuntimeError, match="initialize"):
        tracker.track(batch.frames[0, 0])
    with pytest.raises(DataError, match=r"frame_007\.jpg.*outside the 64x64 frame"):
        tracker.initialize(batch.frames[0, 0], (100, 100, 10, 10), frame_name="frame_007.jpg")
    with pytest.raises(DataError, match="positive width"):
        tracker.initialize(batch.frames[0, 0], (10, 10, 0, 10))


class _TwoPeakBackend:
    """Stub networks: the subject heat has two peaks, the far one (x = 12) slightly higher than the
    one at the previous position (x = 4); the part heat follows the subject heat."""

    def template(self, image: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        return torch.zeros(1, 1, 1, 1)

    def _heat(self) -> torch.Tensor:
        heat = torch.full((1, 1, 16, 16), 0.01)
        heat[0, 0, 8, 4], heat[0, 0, 8, 12] = 0.8, 0.9
        return heat

    def parts(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._heat(), torch.ones(1, 1, 2, 16, 16), torch.zeros(1, 1, 2, 16, 16)

    def subject(self, image: torch.Tensor, kernel: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._heat(), torch.full((1, 2, 16, 16), 4.0), torch.zeros(1, 2, 16, 16), torch.ones(1, 1, 16, 16)


@pytest.mark.parametrize("window_power, expected_x", [(0.0, 12), (4.0, 4)])
def test_motion_window_prefers_the_peak_near_the_previous_position(window_power: float, expected_x: int) -> None:
    tracker = Tracker(_TwoPeakBackend(), ["head"], stride=4, input_size=64,
                      settings=TrackerSettings(prior_sigma=0.5, window_power=window_power))
    frame = torch.zeros(3, 64, 64, dtype=torch.uint8)
    tracker.initialize(frame, (4 * 4 - 8, 8 * 4 - 8, 16, 16))  # centred on element (4, 8)
    result = tracker.track(frame)
    cx = result.box[0] + result.box[2] / 2
    assert cx == pytest.approx(4 * expected_x)
    assert result.score == pytest.approx(0.8 if expected_x == 4 else 0.9)  # the heat, not the windowed score


@pytest.mark.parametrize("field", ["window_power", "part_window", "prior_sigma", "part_exponent"])
def test_bad_settings_are_rejected(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        TrackerSettings(**{field: -1.0})


def test_settings_round_trip_through_metadata() -> None:
    settings = TrackerSettings(prior_sigma=0.2, window_power=2.0, part_window=0.15, part_exponent=0.25)
    assert TrackerSettings.from_meta(settings.as_meta()) == settings
    assert TrackerSettings.from_meta({"prior_sigma": 0.3}) == TrackerSettings(prior_sigma=0.3)  # older files


@pytest.mark.parametrize("window, exponent, name", [
    (0.0, 1.0, "element product"), (0.15, 1.0, "+ part window"), (0.0, 0.25, "heat^0.25 x region"),
    (0.15, 0.25, "heat^0.25 x region + part window")])
def test_the_output_is_named_after_how_it_differs_from_the_element_product(window: float, exponent: float,
                                                                           name: str) -> None:
    assert TrackerSettings(part_window=window, part_exponent=exponent).output_name == name


class _SwappingPartsBackend(_TwoPeakBackend):
    """Stub networks: a fixed subject at x = 4 and two heads at x = 4 and x = 12; the one at x = 4
    is the stronger in black frames (the first one), the one at x = 12 in the others."""

    def __init__(self) -> None:
        self.calls = 0

    def parts(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.calls += 1
        heat = torch.full((1, 1, 16, 16), 0.01)
        heat[0, 0, 8, 4], heat[0, 0, 8, 12] = (0.9, 0.8) if float(image.max()) == 0 else (0.8, 0.9)
        return heat, torch.ones(1, 1, 2, 16, 16), torch.zeros(1, 1, 2, 16, 16)


@pytest.mark.parametrize("sigma, expected_x", [(0.0, 12), (0.15, 4)])
def test_part_window_keeps_the_part_on_the_head_it_started_on(sigma: float, expected_x: int) -> None:
    backend = _SwappingPartsBackend()
    tracker = Tracker(backend, ["head"], stride=4, input_size=64, settings=TrackerSettings(part_window=sigma))
    tracker.initialize(torch.zeros(3, 64, 64, dtype=torch.uint8), (8, 24, 16, 16))
    assert tracker.decoder.box is not None and tracker.decoder.box.tolist() == [8, 24, 16, 16]  # the given box
    for _ in range(3):
        part = tracker.track(torch.full((3, 64, 64), 255, dtype=torch.uint8)).parts[0]
        assert part.position[0] == pytest.approx(4 * expected_x)
        assert part.score == pytest.approx(0.8 if expected_x == 4 else 0.9)  # the bare element product
    assert backend.calls == (4 if sigma else 3)  # the window's start comes from the first frame


class _HalfHiddenHeadBackend(_TwoPeakBackend):
    """Stub networks: the target's head (x = 4) half hidden, so weakly detected; the neighbour's
    head (x = 12) fully visible; the region map marks the target's."""

    def parts(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        heat = torch.full((1, 1, 16, 16), 0.01)
        heat[0, 0, 8, 4], heat[0, 0, 8, 12] = 0.3, 1.0
        return heat, torch.ones(1, 1, 2, 16, 16), torch.zeros(1, 1, 2, 16, 16)

    def subject(self, image: torch.Tensor, kernel: torch.Tensor, prior: torch.Tensor) -> tuple[torch.Tensor, ...]:
        heat, size, offset, _ = super().subject(image, kernel, prior)
        region = torch.full((1, 1, 16, 16), 0.1)
        region[0, 0, 8, 4], region[0, 0, 8, 12] = 0.9, 0.4
        return heat, size, offset, region


@pytest.mark.parametrize("exponent, expected_x, product", [(1.0, 12, 0.4), (0.25, 4, 0.27)])
def test_part_exponent_lets_the_region_map_pick_the_half_hidden_head(exponent: float, expected_x: int,
                                                                     product: float) -> None:
    tracker = Tracker(_HalfHiddenHeadBackend(), ["head"], stride=4, input_size=64,
                      settings=TrackerSettings(part_exponent=exponent))
    frame = torch.zeros(3, 64, 64, dtype=torch.uint8)
    tracker.initialize(frame, (8, 24, 16, 16))
    part = tracker.track(frame).parts[0]
    assert part.position[0] == pytest.approx(4 * expected_x)
    assert part.score == pytest.approx(product)  # the element product at the chosen peak


def test_prior_box_centres_the_motion_prior_for_one_frame() -> None:
    tracker = Tracker(_TwoPeakBackend(), ["head"], stride=4, input_size=64,
                      settings=TrackerSettings(prior_sigma=0.5, window_power=4.0))
    frame = torch.zeros(3, 64, 64, dtype=torch.uint8)
    tracker.initialize(frame, (4 * 4 - 8, 8 * 4 - 8, 16, 16))  # on the weaker peak at element (4, 8)
    moved = tracker.track(frame, prior_box=(4 * 12 - 8, 8 * 4 - 8, 16, 16))  # prior on the peak at x = 12
    assert moved.box[0] + moved.box[2] / 2 == pytest.approx(4 * 12)
    assert tracker.track(frame).box == moved.box  # the next frame's prior follows the result
    for bad in ((0, 0, 0, 16), (0, 0, float("nan"), 16), (1, 2, 3)):
        with pytest.raises(ValueError, match="prior_box"):
            tracker.track(frame, prior_box=bad)


def test_frame_tensor_copies_read_only_arrays_and_shares_writable_ones() -> None:
    frame = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    shared = frame_tensor(frame)
    assert shared.shape == (3, 4, 5) and shared[1, 2, 3] == frame[2, 3, 1]
    assert np.shares_memory(shared.numpy(), frame)  # writable, contiguous: no copy
    frame.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyTorch warns when it wraps a read-only array
        copied = frame_tensor(frame)
    assert torch.equal(copied, shared) and not np.shares_memory(copied.numpy(), frame)
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    assert frame_tensor(rgba).shape == (3, 4, 5)
