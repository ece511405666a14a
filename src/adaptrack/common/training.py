"""Training guards shared by all LightningModules: the non-finite-loss check, plain hyperparameters
in checkpoints, settings groups (frozen dataclasses given whole to a module), and the checkpoint
callback that keeps ``last.ckpt`` current."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from adaptrack.common.errors import ConfigError

_PRIMITIVES = (str, int, float, bool, type(None))


def to_plain(value: Any) -> Any:
    """``value`` with dataclasses turned into dicts and other objects into ``class_path``/``init_args``.

    The result holds only dicts, lists, tuples and primitives, which ``torch.load(weights_only=True)``
    reads back and LightningCLI parses as a config (an object becomes the mapping jsonargparse builds
    it from: its class path and the constructor arguments it keeps as attributes of the same name).
    """
    if isinstance(value, _PRIMITIVES):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(to_plain(v) for v in value)
    cls = type(value)
    params = inspect.signature(cls.__init__).parameters
    init_args = {name: to_plain(getattr(value, name)) for name in params if name != "self" and hasattr(value, name)}
    return {"class_path": f"{cls.__module__}.{cls.__qualname__}", "init_args": init_args}


def plain_hyperparameters(checkpoint: dict[str, Any]) -> None:
    """Make the model's and the data module's hyperparameters in ``checkpoint`` plain (see :func:`to_plain`).

    Call it from ``on_save_checkpoint``: Lightning stores ``hparams`` as given, and a dataclass or an
    object there would make the checkpoint unreadable with ``weights_only=True``.
    """
    for key in ("hyper_parameters", "datamodule_hyper_parameters"):
        if key in checkpoint:
            checkpoint[key] = to_plain(dict(checkpoint[key]))


class NonFiniteLossError(RuntimeError):
    """Raised before any optimizer step when a loss is NaN or infinite.

    Raising (instead of stepping) keeps the weights and the checkpoints on disk as they were after
    the last good step; the CLI reports it and points at the last good checkpoint.
    """


def check_finite(loss: torch.Tensor, step: int, parts: dict[str, torch.Tensor] | None = None) -> None:
    """Raise :class:`NonFiniteLossError` if ``loss`` is not finite, naming the term(s) that are not.

    Args:
        loss: Scalar loss about to be back-propagated.
        step: Global step, for the message.
        parts: Named loss terms, reported to show which one diverged.
    """
    if bool(torch.isfinite(loss)):
        return
    parts = parts or {}
    bad = [k for k, v in parts.items() if not bool(torch.isfinite(v.detach()).all())]
    values = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in parts.items() if v.numel() == 1)
    where = f" in term(s) {', '.join(bad)}" if bad else ""
    raise NonFiniteLossError(
        f"loss became {float(loss.detach())} at step {step}{where}" + (f" ({values})" if values else "")
        + "; training stopped without applying this step. The last good checkpoint (last.ckpt) is kept; "
        "lower the learning rate or check the input data."
    )


def check_finite_gradients(parameters: Iterable[tuple[str, torch.nn.Parameter]], step: int) -> None:
    """Raise :class:`NonFiniteLossError` if a gradient is NaN or infinite, naming the parameters.

    A finite loss can still give infinite gradients (an overflow in backward); stepping with them
    would write NaN weights, and the next ``last.ckpt`` would keep them. Call it after backward and
    before the optimizer step.

    Args:
        parameters: ``named_parameters()`` of what the optimizer updates.
        step: Global step, for the message.
    """
    named = [(name, p.grad) for name, p in parameters if p.grad is not None]
    if not named:
        return
    # fast path, one fused kernel: a gradient's 2-norm is finite exactly when all its entries are
    # (an inf or NaN entry makes it inf or NaN); only a non-finite norm, which an overflow of
    # finite entries can also give, is checked entry by entry
    device = named[0][1].device
    norms = torch._foreach_norm([g for _, g in named])  # P tensors ()
    if bool(torch.stack([n.to(device) for n in norms]).isfinite().all()):  # (P,)
        return
    finite = torch.stack([torch.isfinite(g).all() for _, g in named])  # (P,) bool
    if bool(finite.all()):
        return
    bad = [name for (name, _), ok in zip(named, finite.tolist(), strict=True) if not ok]
    shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    raise NonFiniteLossError(
        f"gradients became NaN or infinite at step {step} (in {shown}) although the loss was finite; training "
        "stopped without applying this step. The last good checkpoint (last.ckpt) is kept; lower the learning "
        "rate or check the input data."
    )


class BestAndLastCheckpoint(ModelCheckpoint):
    """:class:`~lightning.pytorch.callbacks.ModelCheckpoint` whose ``last.ckpt`` follows every epoch and every N steps.

    Lightning (2.6) refreshes ``last.ckpt`` only when a top-k checkpoint is saved at the same step,
    so with a monitored metric that stops improving, ``last.ckpt`` stays at the best epoch and
    ``--ckpt_path last.ckpt`` would resume from there, losing the epochs after it. This callback
    also writes ``last.ckpt`` at the end of every training epoch that did not already save one
    (after that epoch's validation, so the best-so-far state it records is current), and after
    every ``last_every_n_steps`` training steps, so that a run killed inside an epoch loses at most
    that many steps when it resumes from ``last.ckpt``. The top-k ("best") checkpoints are
    unchanged. Files are written through the trainer's checkpoint IO
    (:class:`~adaptrack.common.resume.AtomicCheckpointIO` in both CLIs: atomic replacement).

    Args:
        last_every_n_steps: Also write ``last.ckpt`` every this many training steps; ``None`` or 0:
            only at the end of epochs. Needs ``save_last``.
        **kwargs: :class:`~lightning.pytorch.callbacks.ModelCheckpoint`'s arguments (``dirpath``,
            ``monitor``, ``mode``, ``save_top_k``, ``save_last``, …), shown by ``--help``.
    """

    def __init__(self, *args: Any, last_every_n_steps: int | None = 50, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if last_every_n_steps is not None and last_every_n_steps < 0:
            raise ConfigError(f"checkpoint.last_every_n_steps={last_every_n_steps} must be >= 0 or null")
        self.last_every_n_steps = last_every_n_steps or 0

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        n = self.last_every_n_steps
        if (n and self.save_last and trainer.global_step % n == 0 and not self._should_skip_saving_checkpoint(trainer)
                and self._last_global_step_saved != trainer.global_step):
            saved = self._last_global_step_saved
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            # a step-count save must not count as "saved at this step": when the epoch ends on a
            # multiple of N, the validation that follows would otherwise skip the top-k ("best") save
            self._last_global_step_saved = saved

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        # skipped when this step already saved (a new best, with its last.ckpt), in sanity checks
        # and with fast_dev_run
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def as_group(cls: type, value: Any, key: str) -> Any:
    """``value`` as an instance of the dataclass ``cls``: instances pass, dicts (from checkpoints) are built.

    Raises:
        ConfigError: ``value`` has keys the group does not know (naming them).
    """
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ConfigError(f"model.{key} has unknown keys {unknown}; valid keys: {sorted(known)}")
        return cls(**value)
    raise ConfigError(f"model.{key} must be a {cls.__name__} or a mapping, got {type(value).__name__}")
