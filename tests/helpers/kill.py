"""A callback that kills its own process with SIGKILL at a given training step (for resume tests)."""

from __future__ import annotations

import os
import signal
from typing import Any

import lightning.pytorch as pl


class KillAtStep(pl.Callback):
    """Send SIGKILL to this process when training reaches global step ``step`` (after that step's batch).

    No Python cleanup runs (no ``finally``, no checkpoint on exception): the same as a machine
    killing the job. The checkpoint callback has not yet run for this batch, so ``last.ckpt`` is
    whatever the previous save left.

    Args:
        step: The global step after which the process dies.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)
