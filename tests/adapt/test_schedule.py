"""Gate logic of S4/S11 and the loss-weight schedule of Expression (2)."""

from __future__ import annotations

import pytest

from adaptrack.adapt.schedule import SelfLearningGate, loss_weight_decay


def test_gate_starts_on_plateau() -> None:
    gate = SelfLearningGate(window=3, min_delta=0.05, start_ratio=0.9)
    for loss in [2.0, 1.8, 1.6]:  # first window: mean 1.8
        gate.update(loss, 0.1)
    assert not gate.active
    for loss in [1.0, 0.9, 0.8]:  # still decreasing: mean 0.9
        gate.update(loss, 0.2)
    assert not gate.active
    for loss in [0.9, 0.88, 0.89]:  # mean 0.89 > 0.9 * 0.95: plateau
        gate.update(loss, 0.3)
    assert gate.active
    assert gate.state.start_progress == 0.3


def test_gate_starts_on_epoch_ratio() -> None:
    gate = SelfLearningGate(window=0, start_ratio=0.5)
    assert gate.update(1.0, 0.49) is False
    assert gate.update(1.0, 0.5) is True
    assert gate.active


def test_gate_stop_condition_s11_suspends_and_resumes() -> None:
    gate = SelfLearningGate(window=0, start_ratio=0.0, stop_loss=0.5)
    assert gate.update(0.2, 0.1) is True
    assert gate.update(0.7, 0.2) is False  # source loss >= threshold: suspended
    assert not gate.active and gate.state.started
    assert gate.update(0.3, 0.3) is True


def test_gate_state_round_trip() -> None:
    gate = SelfLearningGate(window=0, start_ratio=0.2)
    gate.update(1.0, 0.25)
    other = SelfLearningGate(window=0, start_ratio=0.2)
    other.load_state(gate.state.as_dict())
    assert other.active and other.state.start_progress == 0.25
    assert other.progress_since_start(0.625) == pytest.approx(0.5)


def test_expression_2() -> None:
    assert loss_weight_decay(0.1, start=0.2, stop=1.0) == 1.0
    assert loss_weight_decay(0.6, start=0.2, stop=1.0) == pytest.approx(0.5)
    assert loss_weight_decay(1.0, start=0.2, stop=1.0) == 0.0
    assert loss_weight_decay(5.0, start=0.2, stop=1.0) == 0.0
