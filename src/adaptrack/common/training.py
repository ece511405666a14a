"""Training guards shared by all LightningModules: the non-finite-loss check and the checkpoint
callback that keeps ``last.ckpt`` current."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint


class NonFiniteLossError(RuntimeError):
    """Raised before any optimizer step when a loss is NaN or infinite.

    Raising (instead of stepping) keeps the weights and the checkpoints on disk as they were after
    the last good step; the CLI reports it and points at the last good checkpoint.
    """


def check_finite(loss: torch.Tensor, step: int, parts: dict[str, torch.Tensor] | None = None) -> None:
    """Raise :class:`NonFiniteLossError` if ``loss`` is not finite.

    Args:
        loss: Scalar loss about to be back-propagated.
        step: Global step, for the message.
        parts: Named loss terms, reported to show which one diverged.
    """
    if bool(torch.isfinite(loss)):
        return
    detail = ""
    if parts:
        detail = " (" + ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in parts.items()) + ")"
    raise NonFiniteLossError(
        f"loss became {float(loss.detach())} at step {step}{detail}; training stopped without applying "
        "this step. The last good checkpoint is kept; lower the learning rate or check the input data."
    )


class BestAndLastCheckpoint(ModelCheckpoint):
    """:class:`~lightning.pytorch.callbacks.ModelCheckpoint` whose ``last.ckpt`` follows every epoch.

    Lightning (2.6) refreshes ``last.ckpt`` only when a top-k checkpoint is saved at the same step,
    so with a monitored metric that stops improving, ``last.ckpt`` stays at the best epoch and
    ``--ckpt_path last.ckpt`` would resume from there, losing the epochs after it. This callback
    also writes ``last.ckpt`` at the end of every training epoch that did not already save one
    (after that epoch's validation, so the best-so-far state it records is current). The top-k
    ("best") checkpoints are unchanged. Files are written through Lightning's checkpoint IO, which
    replaces them atomically.
    """

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        # skipped when this step already saved (a new best, with its last.ckpt), in sanity checks
        # and with fast_dev_run
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
