"""The region-map store and moving average of the third embodiment."""

from __future__ import annotations

import pytest
import torch

from adaptrack.track.train.temporal import RegionMapBuffer


def test_average_needs_n_consecutive_maps() -> None:
    buf = RegionMapBuffer(n=3)
    key = ("seq", 1)
    for i in range(2):
        buf.push(key, i, torch.full((1, 2, 2), float(i)))
        assert buf.average(key, i + 1) is None
    buf.push(key, 2, torch.full((1, 2, 2), 2.0))
    assert buf.average(key, 3).flatten().tolist() == [1.0] * 4  # mean of 0, 1, 2
    buf.push(key, 3, torch.full((1, 2, 2), 6.0))
    assert buf.average(key, 4).flatten().tolist() == pytest.approx([(1 + 2 + 6) / 3] * 4)  # last n only
    assert buf.count(key) == 3


def test_gap_or_going_back_restarts_the_stream() -> None:
    buf = RegionMapBuffer(n=2)
    buf.push("a", 0, torch.zeros(1))
    buf.push("a", 1, torch.ones(1))
    assert buf.average("a", 5) is None  # not consecutive with frame 1
    buf.push("a", 0, torch.ones(1))  # a new clip starting earlier
    assert buf.count("a") == 1


def test_streams_are_separate_and_maps_detached() -> None:
    buf = RegionMapBuffer(n=2)
    x = torch.ones(2, requires_grad=True)
    buf.push("a", 0, x * 2)
    buf.push("a", 1, x * 4)
    buf.push("b", 0, x)
    avg = buf.average("a", 2)
    assert avg.tolist() == [3.0, 3.0] and not avg.requires_grad
    assert buf.average("b", 1) is None


def test_n_below_two_is_rejected() -> None:
    with pytest.raises(ValueError, match="n >= 2"):
        RegionMapBuffer(n=1)


def test_maps_of_different_windows_and_flips_are_compared_on_the_frame_grid() -> None:
    """A map stored from a window at x = 2 (mirrored) is read back at a window at x = 3."""
    buf = RegionMapBuffer(n=2, max_gap=2)
    stored = torch.arange(12.0).reshape(1, 3, 4)  # (K, h, w), window 4 wide at x = 2 of an 8-wide frame
    for frame in (0, 1):
        buf.push("a", frame, stored.flip(-1), origin=(2, 0), flipped=True, canvas_hw=(3, 8))
    got = buf.average("a", 2, origin=(3, 0), flipped=False, window_hw=(3, 4))
    assert got.shape == (1, 3, 4)
    assert torch.equal(got[..., :3], stored[..., 1:])  # frame columns 3-5, seen by both windows
    assert bool(got[..., 3].isnan().all())  # frame column 6 was never stored
    mirrored = buf.average("a", 2, origin=(3, 0), flipped=True, window_hw=(3, 4))
    assert torch.equal(mirrored[..., 1:], stored[..., 1:].flip(-1))
    with pytest.raises(ValueError, match="does not fit"):
        buf.push("a", 2, stored, origin=(6, 0), canvas_hw=(3, 8))
