"""When self-learning runs (S4, S11) and how the loss terms are weighted (Expressions (1), (2))."""

from __future__ import annotations

from dataclasses import asdict, dataclass


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
    """Resumable state of :class:`SelfLearningGate` (stored in checkpoints as plain numbers)."""

    started: bool = False
    stopped: bool = False
    start_progress: float = -1.0
    window_sum: float = 0.0
    window_count: int = 0
    previous_window_mean: float = float("inf")

    def as_dict(self) -> dict[str, float | int | bool]:
        return asdict(self)


class SelfLearningGate:
    """First determination unit 13: decide per step whether self-learning (S7–S9) runs.

    Start (S4 answers NO) at the first of:
        * plateau: the mean source loss over the last ``window`` steps decreased by less than
          ``min_delta`` (relative) compared with the window before;
        * progress: the processed-epoch ratio reaches ``start_ratio``.

    Stop (second modification, S11): once started, self-learning is suspended for any step whose
    source loss is ``>= stop_loss`` (``None`` disables the check), and resumes when it drops below.

    Args:
        window: Steps per plateau window; ``0`` disables plateau detection.
        min_delta: Relative decrease below which the source loss counts as no longer decreasing.
        start_ratio: Processed-epoch ratio (0–1) at which self-learning starts regardless.
        stop_loss: Source-loss threshold of S11.
    """

    def __init__(self, window: int = 200, min_delta: float = 0.02, start_ratio: float = 0.3,
                 stop_loss: float | None = None) -> None:
        self.window = window
        self.min_delta = min_delta
        self.start_ratio = start_ratio
        self.stop_loss = stop_loss
        self.state = GateState()

    def update(self, source_loss: float, progress: float) -> bool:
        """Feed the step's source loss and progress (0–1); return whether self-learning runs now."""
        s = self.state
        if not s.started:
            if self.window > 0:
                s.window_sum += source_loss
                s.window_count += 1
                if s.window_count >= self.window:
                    mean = s.window_sum / s.window_count
                    plateau = mean > s.previous_window_mean * (1.0 - self.min_delta)
                    s.previous_window_mean, s.window_sum, s.window_count = mean, 0.0, 0
                    if plateau:
                        self._start(progress)
            if not s.started and progress >= self.start_ratio:
                self._start(progress)
            if not s.started:
                return False
        s.stopped = self.stop_loss is not None and source_loss >= self.stop_loss
        return not s.stopped

    @property
    def active(self) -> bool:
        """Whether the next step runs self-learning: started and not suspended by S11."""
        return self.state.started and not self.state.stopped

    def _start(self, progress: float) -> None:
        self.state.started = True
        self.state.start_progress = progress

    def progress_since_start(self, progress: float) -> float:
        """λ of Expression (2): the share of the remaining training completed since the start."""
        s = self.state
        if not s.started:
            return 0.0
        remaining = 1.0 - s.start_progress
        return 1.0 if remaining <= 0 else min(1.0, (progress - s.start_progress) / remaining)

    def load_state(self, state: dict[str, float | int | bool]) -> None:
        self.state = GateState(**state)  # type: ignore[arg-type]
