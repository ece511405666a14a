"""Training guards shared by all LightningModules."""

from __future__ import annotations

import torch


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
