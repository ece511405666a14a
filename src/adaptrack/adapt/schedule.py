"""When self-learning runs (S4, S11) and how the loss terms are weighted (Expressions (1), (2))."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from adaptrack.adapt.config import GateConfig


def loss_weight_decay(lam: float, start: float, stop: float) -> float:
    """Expression (2): ``f(λ) = 1`` for ``λ < s``, else ``1 - (λ - s) / (max - s)`` (floored at 0).

    Args:
        lam: Progress of self-learning λ (fraction of training since self-learning started).
        start: ``s``, the progress at which the decay begins.
        stop: ``max``, the progress at which the weight reaches 0.
    """
    if lam < start:
        return 1.0
    if stop <= start:
        return 0.0
    return max(0.0, 1.0 - (lam - start) / (stop - start))


@dataclass
class GateState:
    """Resumable state of :class:`SelfLearningGate` (stored in checkpoints as plain numbers).

    Attributes:
        started: S4 has answered NO once: self-learning has begun.
        stopped: The last update suspended self-learning (S11).
        halted: Stopped for good (``stop_mode="permanent"``).
        start_progress: Training progress at the start (−1 before).
        start_reason: ``plateau``, ``source_loss`` (claim 7) or ``ratio``; empty before the start.
        window_sum: Sum of the source losses of the current plateau window.
        window_count: Steps in the current plateau window.
        previous_window_mean: Mean source loss of the previous window.
    """

    started: bool = False
    stopped: bool = False
    halted: bool = False
    start_progress: float = -1.0
    start_reason: str = ""
    window_sum: float = 0.0
    window_count: int = 0
    previous_window_mean: float = float("inf")

    def as_dict(self) -> dict[str, float | int | bool | str]:
        return asdict(self)


class SelfLearningGate:
    """First determination unit 13: decide per step whether self-learning (S7–S9) runs.

    Start (S4 answers NO) at the first of (see :class:`~adaptrack.adapt.config.GateConfig`):
        * plateau: the mean source loss over the last ``start_window`` steps decreased by less
          than ``start_min_delta`` (relative) compared with the window before;
        * claim 7: a step's source loss is at or below ``start_source_loss``;
        * progress: the processed-epoch ratio reaches ``start_ratio``.

    Stop (second modification S11, claim 4): once started, a step whose watched loss (source or
    domain, ``stop_watch``) is ``>= stop_loss`` stops self-learning: until the loss falls below the
    threshold again (``stop_mode="suspend"``) or for good (``"permanent"``).

    Args:
        config: The gate's settings.
    """

    def __init__(self, config: GateConfig | None = None) -> None:
        self.config = config or GateConfig()
        self.state = GateState()

    def update(self, source_loss: float, progress: float, domain_loss: float = 0.0) -> bool:
        """Feed a step's losses and progress (0–1); return whether self-learning runs next."""
        s, c = self.state, self.config
        if not s.started:
            if c.start_window > 0:
                s.window_sum += source_loss
                s.window_count += 1
                if s.window_count >= c.start_window:
                    mean = s.window_sum / s.window_count
                    plateau = mean > s.previous_window_mean * (1.0 - c.start_min_delta)
                    s.previous_window_mean, s.window_sum, s.window_count = mean, 0.0, 0
                    if plateau:
                        self._start(progress, "plateau")
            if not s.started and c.start_source_loss is not None and source_loss <= c.start_source_loss:
                self._start(progress, "source_loss")
            if not s.started and progress >= c.start_ratio:
                self._start(progress, "ratio")
            if not s.started:
                return False
        if s.halted:
            return False
        watched = source_loss if c.stop_watch == "source" else domain_loss
        s.stopped = c.stop_loss is not None and watched >= c.stop_loss
        s.halted = s.stopped and c.stop_mode == "permanent"
        return not s.stopped

    def before_step(self, progress: float) -> bool:
        """Apply the processed-epoch-ratio rule before a step (it needs no loss); return :attr:`active`."""
        if not self.state.started and progress >= self.config.start_ratio:
            self._start(progress, "ratio")
        return self.active

    @property
    def active(self) -> bool:
        """Whether the next step runs self-learning: started and not stopped by S11."""
        return self.state.started and not self.state.stopped and not self.state.halted

    def _start(self, progress: float, reason: str) -> None:
        self.state.started = True
        self.state.start_progress = progress
        self.state.start_reason = reason

    def progress_since_start(self, progress: float) -> float:
        """λ of Expression (2): the share of the remaining training completed since the start."""
        s = self.state
        if not s.started:
            return 0.0
        remaining = 1.0 - s.start_progress
        return 1.0 if remaining <= 0 else min(1.0, (progress - s.start_progress) / remaining)

    def load_state(self, state: dict[str, float | int | bool | str]) -> None:
        self.state = GateState(**state)  # type: ignore[arg-type]
