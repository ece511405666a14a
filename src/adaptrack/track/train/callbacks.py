"""End conditions of the learning process (¶49) besides Lightning's max_epochs / max_steps."""

from __future__ import annotations

import math

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info


class LossEndCondition(pl.Callback):
    """Stop training when the epoch's loss is low enough or no longer changes (¶49).

    The number-of-repetitions condition is the Trainer's ``max_steps`` / ``max_epochs``. Under DDP
    both conditions read the monitored loss averaged over the processes, so all of them stop together.

    Args:
        monitor: Logged epoch-level metric holding the linear sum of the losses.
        loss_threshold: Stop once the loss is ≤ this value; ``None`` disables.
        delta_threshold: Stop once ``|previous - current|`` ≤ this value; ``None`` disables.
        min_epochs: Epochs that always run before either condition is checked.
    """

    def __init__(self, monitor: str = "train/loss_epoch", loss_threshold: float | None = None,
                 delta_threshold: float | None = None, min_epochs: int = 1) -> None:
        self.monitor = monitor
        self.loss_threshold = loss_threshold
        self.delta_threshold = delta_threshold
        self.min_epochs = min_epochs
        self.previous: float | None = None
        self.reason: str | None = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        # under DDP each rank logged its own epoch loss: decide on their mean, so that every rank stops
        # at the same epoch (a rank stopping alone would leave the others waiting); no-op on one process
        current = float(trainer.strategy.reduce(value.detach().float().clone(), reduce_op="mean")
                        if trainer.world_size > 1 else value)
        previous, self.previous = self.previous, current
        if trainer.current_epoch + 1 < self.min_epochs or not math.isfinite(current):
            return
        if self.loss_threshold is not None and current <= self.loss_threshold:
            self.reason = f"{self.monitor}={current:.4g} <= loss_threshold {self.loss_threshold}"
        elif (self.delta_threshold is not None and previous is not None
              and abs(previous - current) <= self.delta_threshold):
            self.reason = (f"|change of {self.monitor}|={abs(previous - current):.4g} <= delta_threshold "
                           f"{self.delta_threshold}")
        if self.reason:
            rank_zero_info(f"end condition met: {self.reason}")
            trainer.should_stop = True

    def state_dict(self) -> dict[str, float | None]:
        return {"previous": self.previous}

    def load_state_dict(self, state_dict: dict[str, float | None]) -> None:
        self.previous = state_dict.get("previous")
