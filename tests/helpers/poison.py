"""A callback that turns a trained weight into NaN at a given step, as a diverging run would."""

from __future__ import annotations

import lightning.pytorch as pl
import torch


class PoisonAtStep(pl.Callback):
    """Fill the module's first trainable parameter with NaN before global step ``at_step``.

    Args:
        at_step: The global step whose loss becomes NaN.
    """

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: object,
                             batch_idx: int) -> None:
        if trainer.global_step == self.at_step:
            with torch.no_grad():
                next(p for p in pl_module.parameters() if p.requires_grad).fill_(float("nan"))
