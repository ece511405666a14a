"""Command-line plumbing shared by ``adaptrack adapt`` and ``adaptrack track``.

Both systems' LightningCLIs take their trainer defaults from :func:`trainer_defaults` (CSV and
TensorBoard logs under ``default_root_dir``), add ``--threads`` with :func:`add_threads_argument` and
apply it, with the loggers following ``--trainer.default_root_dir``, in
:func:`apply_threads_and_log_root`. Both ``main`` functions run their subcommand through
:func:`run_command`, which turns the errors a user can fix into exit codes (:func:`exit_code_for`):
bad data, a missing file or contradictory options exit with 2 and ``adaptrack <system> <cmd>: error:
…`` on stderr, a non-finite loss with 1, and argparse/jsonargparse exits (``--help``, a bad option)
with their own code; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from adaptrack.common.errors import ConfigError, DataError, MissingDataError
from adaptrack.common.training import NonFiniteLossError

if TYPE_CHECKING:
    from jsonargparse import Namespace
    from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

DEFAULT_THREADS = 1
"""Default of ``--threads``: see :data:`THREADS_HELP`."""

THREADS_HELP = (
    "torch intra-op CPU threads (default 1: the networks are small, and on cores that other jobs share "
    "OpenMP threads spin-wait on busy cores, so more threads run slower; null: torch's choice, one per core)"
)

USAGE_ERRORS: tuple[type[Exception], ...] = (ConfigError, DataError, MissingDataError, FileNotFoundError)
"""Errors a user fixes by changing an option or a file: exit code 2, no traceback."""


def trainer_defaults(root: str, name: str | None = None, callbacks: list[Any] | None = None,
                     log_every_n_steps: int = 10, max_epochs: int = 10) -> dict[str, Any]:
    """Trainer defaults of a LightningCLI: CSV + TensorBoard logs under ``default_root_dir``.

    Args:
        root: The system's run folder (``runs/adapt``, ``runs/track``).
        name: Sub-folder of ``root`` for this command (``parts``, ``tracker``); ``None``: ``root`` itself.
        callbacks: Trainer callbacks added by default (``None``: the trainer's own).
        log_every_n_steps: Logging interval.
        max_epochs: Epochs unless the config says otherwise.

    Returns:
        The ``trainer_defaults`` of :class:`~lightning.pytorch.cli.LightningCLI`. The loggers' ``save_dir``
        is ``default_root_dir``; :func:`apply_threads_and_log_root` keeps them together when
        ``--trainer.default_root_dir`` moves.
    """
    folder = f"{root}/{name}" if name else root
    defaults: dict[str, Any] = {
        "max_epochs": max_epochs,
        "default_root_dir": folder,
        "log_every_n_steps": log_every_n_steps,
        "num_sanity_val_steps": 0,
        "logger": [
            {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": folder, "name": "logs"}},
            {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
             "init_args": {"save_dir": folder, "name": "tensorboard"}},
        ],
    }
    if callbacks is not None:
        defaults["callbacks"] = list(callbacks)
    return defaults


def add_threads_argument(parser: LightningArgumentParser) -> None:
    """Add ``--threads`` (default :data:`DEFAULT_THREADS`) to a LightningCLI parser."""
    parser.add_argument("--threads", type=int | None, default=DEFAULT_THREADS, help=THREADS_HELP)


def active_config(cli: LightningCLI) -> Namespace:
    """The parsed config of the subcommand being run (the whole config when the CLI does not run one)."""
    return cli.config.get(cli.subcommand, cli.config) if cli.subcommand else cli.config


def apply_threads_and_log_root(config: Namespace, default_root: str) -> None:
    """Apply ``--threads``, and point the default loggers at ``--trainer.default_root_dir``.

    Call from ``LightningCLI.before_instantiate_classes``. A logger whose ``save_dir`` is still under
    ``default_root`` (the trainer defaults') moves to ``trainer.default_root_dir``, so that one option
    moves a run's logs and checkpoints together; a logger given another folder stays there.

    Raises:
        ConfigError: ``threads`` below 1.
    """
    threads = config.get("threads", DEFAULT_THREADS)
    if threads is not None:
        if int(threads) < 1:
            raise ConfigError(f"threads: expected at least 1 (or null: torch's choice), got {threads}")
        torch.set_num_threads(int(threads))
    trainer = config.get("trainer")
    root = trainer.get("default_root_dir") if trainer is not None else None
    loggers = trainer.get("logger") if trainer is not None else None
    for logger in loggers if isinstance(loggers, list) and root else []:
        args = getattr(logger, "init_args", None)
        if args is not None and str(args.get("save_dir", "")).startswith(default_root):
            args.save_dir = str(root)


def exit_code_for(exc: BaseException) -> int | None:
    """The process exit code of an exception a command may end with; ``None``: not ours to handle.

    :class:`~adaptrack.common.training.NonFiniteLossError` → 1; the :data:`USAGE_ERRORS` → 2;
    ``SystemExit`` (argparse, jsonargparse) → its code (2 when the code is a message).
    """
    if isinstance(exc, NonFiniteLossError):
        return 1
    if isinstance(exc, USAGE_ERRORS):
        return 2
    if isinstance(exc, SystemExit):
        return 2 if isinstance(exc.code, str) else int(exc.code or 0)
    return None


def run_command(prog: str, command: Callable[[], object]) -> int:
    """Run ``command`` and return the process exit code.

    Args:
        prog: The command as the user typed it (``adaptrack track fit``), to begin each message.
        command: The subcommand; an ``int`` it returns is the exit code, anything else means 0.

    Returns:
        0, or :func:`exit_code_for` of the exception it ended with, whose message goes to stderr as
        ``<prog>: error: …`` (usage errors) or ``<prog>: training stopped: …`` (non-finite loss).
        Other exceptions propagate.
    """
    try:
        result = command()
    except (NonFiniteLossError, *USAGE_ERRORS, SystemExit) as exc:
        code = exit_code_for(exc)
        if isinstance(exc, NonFiniteLossError):
            print(f"{prog}: training stopped: {exc}", file=sys.stderr)
        elif isinstance(exc, SystemExit):
            if isinstance(exc.code, str):  # what an uncaught SystemExit would have printed
                print(exc.code, file=sys.stderr)
        else:
            print(f"{prog}: error: {exc}", file=sys.stderr)
        return int(code) if code is not None else 2
    return result if isinstance(result, int) else 0
