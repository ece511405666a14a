"""Gate logic of S4 / claim 7 / S11 / claim 4 and the loss-weight schedule of Expression (2)."""

from __future__ import annotations

import pytest

from adaptrack.adapt.config import GateConfig
from adaptrack.adapt.schedule import SelfLearningGate, loss_weight_decay


def gate(**kwargs: object) -> SelfLearningGate:
    return SelfLearningGate(GateConfig(**kwargs))  # type: ignore[arg-type]


def test_gate_starts_on_plateau() -> None:
    g = gate(start_window=3, start_min_delta=0.05, start_ratio=0.9)
    for loss in [2.0, 1.8, 1.6]:  # first window: mean 1.8
        g.update(loss, 0.1)
    assert not g.active
    for loss in [1.0, 0.9, 0.8]:  # still decreasing: mean 0.9
        g.update(loss, 0.2)
    assert not g.active
    for loss in [0.9, 0.88, 0.89]:  # mean 0.89 > 0.9 * 0.95: plateau
        g.update(loss, 0.3)
    assert g.active
    assert g.state.start_progress == 0.3 and g.state.start_reason == "plateau"


def test_gate_starts_on_epoch_ratio() -> None:
    g = gate(start_window=0, start_ratio=0.5)
    assert g.update(1.0, 0.49) is False
    assert g.update(1.0, 0.5) is True
    assert g.active and g.state.start_reason == "ratio"


def test_gate_starts_when_source_loss_at_or_below_threshold_claim_7() -> None:
    g = gate(start_window=0, start_ratio=2.0, start_source_loss=0.5)
    assert g.update(0.51, 0.1) is False
    assert g.update(0.5, 0.2) is True  # "equal to or less than"
    assert g.state.start_reason == "source_loss"


def test_stop_s11_suspends_and_resumes() -> None:
    g = gate(start_window=0, start_ratio=0.0, stop_loss=0.5)
    assert g.update(0.2, 0.1) is True
    assert g.update(0.5, 0.2) is False  # ">= threshold": suspended
    assert not g.active and g.state.started
    assert g.update(0.3, 0.3) is True


def test_stop_for_good_on_domain_loss_claim_4() -> None:
    g = gate(start_window=0, start_ratio=0.0, stop_loss=0.6, stop_watch="domain", stop_mode="permanent")
    assert g.update(5.0, 0.1, domain_loss=0.3) is True  # the source loss is not watched
    assert g.update(0.1, 0.2, domain_loss=0.7) is False
    assert g.update(0.1, 0.3, domain_loss=0.1) is False  # stopped for good
    assert g.state.halted and not g.active


def test_gate_state_round_trip() -> None:
    g = gate(start_window=0, start_ratio=0.2)
    g.update(1.0, 0.25)
    other = gate(start_window=0, start_ratio=0.2)
    other.load_state(g.state.as_dict())
    assert other.active and other.state.start_progress == 0.25
    assert other.progress_since_start(0.625) == pytest.approx(0.5)


def test_expression_2() -> None:
    assert loss_weight_decay(0.1, start=0.2, stop=1.0) == 1.0
    assert loss_weight_decay(0.6, start=0.2, stop=1.0) == pytest.approx(0.5)
    assert loss_weight_decay(1.0, start=0.2, stop=1.0) == 0.0
    assert loss_weight_decay(5.0, start=0.2, stop=1.0) == 0.0
