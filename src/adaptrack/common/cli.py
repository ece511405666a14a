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

import dataclasses
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from jsonargparse import Namespace as _Namespace
from lightning.pytorch import seed_everything

from adaptrack.common.errors import ConfigError, DataError, MissingDataError
from adaptrack.common.files import check_writable_dir
from adaptrack.common.resume import StepRandomness
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
        "plugins": [{"class_path": "adaptrack.common.resume.AtomicCheckpointIO"}],
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


DETERMINISTIC_HELP = (
    "one switch for bit-exact runs: seed everything (seed_everything, or 0 when it is not a number), "
    "turn on torch's deterministic algorithms (trainer.deterministic) and seed data-loader workers"
)


RESUMABLE_LOADER_WARNING = ".*You're resuming from a checkpoint that ended before the epoch ended.*"
"""Lightning's warning for a mid-epoch restart with loaders it cannot rewind; ours skip the trained
batches themselves (:func:`~adaptrack.common.resume.fit_position`), so both CLIs silence it."""


def add_resume_arguments(parser: LightningArgumentParser) -> None:
    """Add ``--randomness`` (:class:`~adaptrack.common.resume.StepRandomness`, always on) and ``--deterministic``.

    Also silences :data:`RESUMABLE_LOADER_WARNING`.
    """
    warnings.filterwarnings("ignore", message=RESUMABLE_LOADER_WARNING)
    parser.add_lightning_class_args(StepRandomness, "randomness")
    parser.add_argument("--deterministic", type=bool, default=False, help=DETERMINISTIC_HELP)


def apply_deterministic(config: Namespace) -> None:
    """With ``deterministic: true``: seed everything with a fixed seed and set ``trainer.deterministic``.

    Call from ``LightningCLI.before_instantiate_classes`` (after LightningCLI drew or set the seed):
    a seed given as a number is kept; ``seed_everything: true`` (a new random seed each run) becomes 0,
    so two runs with the flag are the same run.
    """
    if not config.get("deterministic", False):
        return
    seed = config.get("seed_everything")
    if isinstance(seed, bool) or not isinstance(seed, int):
        seed = 0
    config.seed_everything = seed
    seed_everything(seed, workers=True, verbose=False)
    if config.get("trainer") is not None:
        config.trainer.deterministic = True


def active_config(cli: LightningCLI) -> Namespace:
    """The parsed config of the subcommand being run (the whole config when the CLI does not run one)."""
    return cli.config.get(cli.subcommand, cli.config) if cli.subcommand else cli.config


def apply_threads_and_log_root(config: Namespace, default_root: str) -> None:
    """Apply ``--threads``, and point the default loggers at ``--trainer.default_root_dir``.

    Call from ``LightningCLI.before_instantiate_classes``. A logger whose ``save_dir`` is still under
    ``default_root`` (the trainer defaults') moves to ``trainer.default_root_dir``, and so does a
    ``checkpoint.dirpath`` under ``default_root`` that is not under ``trainer.default_root_dir`` (the
    shipped track configs fix ``runs/track/<name>/checkpoints``: it becomes
    ``<default_root_dir>/checkpoints``), so that one option moves a run's logs and checkpoints
    together; a logger or checkpoint folder given elsewhere stays there.

    Raises:
        ConfigError: ``threads`` below 1.
    """
    threads = config.get("threads", DEFAULT_THREADS)
    if threads is not None:
        if int(threads) < 1:
            raise ConfigError(f"threads: expected at least 1 (or null: torch's choice), got {threads}")
        torch.set_num_threads(int(threads))
        # Lightning's DDP launcher sets each process's threads to cores / processes unless
        # OMP_NUM_THREADS is set; set, it keeps --threads (in this process and the ranks it starts)
        os.environ["OMP_NUM_THREADS"] = str(int(threads))
    trainer = config.get("trainer")
    root = trainer.get("default_root_dir") if trainer is not None else None
    loggers = trainer.get("logger") if trainer is not None else None
    for logger in loggers if isinstance(loggers, list) and root else []:
        args = getattr(logger, "init_args", None)
        if args is not None and str(args.get("save_dir", "")).startswith(default_root):
            args.save_dir = str(root)
    checkpoint = config.get("checkpoint")
    dirpath = checkpoint.get("dirpath") if checkpoint is not None else None
    if root and dirpath and str(dirpath).startswith(default_root) and not _is_under(Path(str(dirpath)), Path(root)):
        # a shipped config's fixed folder (runs/track/parts/checkpoints): it follows the moved run folder
        checkpoint.dirpath = str(Path(root) / "checkpoints")


def _is_under(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def continue_run_folder(config: Namespace) -> None:
    """Resume ``fit`` in the run folder of ``--ckpt_path`` when it is one of the default loggers' folders.

    A checkpoint at ``<save_dir>/<name>/version_N/checkpoints/last.ckpt`` written by a logger of that
    ``save_dir`` and ``name`` makes each default logger (version not set) take version ``N`` again,
    so the resumed run keeps its folder: the CSV log is appended to, the checkpoints stay beside
    it, and the checkpoint callback keeps its record of the best checkpoints (Lightning forgets it
    when the folder changes). Other checkpoint paths leave the loggers as they are.
    """
    ckpt_path = config.get("ckpt_path")
    trainer = config.get("trainer")
    loggers = trainer.get("logger") if trainer is not None else None
    if not ckpt_path or not isinstance(loggers, list):
        return
    ckpt = Path(str(ckpt_path)).resolve()
    version_dir = ckpt.parent.parent
    if ckpt.parent.name != "checkpoints" or not version_dir.name.startswith("version_"):
        return
    try:
        version = int(version_dir.name.removeprefix("version_"))
    except ValueError:
        return
    for logger in loggers:
        args = getattr(logger, "init_args", None)
        if args is None or args.get("version") is not None:
            continue
        if Path(str(args.get("save_dir", ""))).resolve() / str(args.get("name", "")) == version_dir.parent:
            args.version = version


def check_finite_config(config: Any, prefix: str = "") -> None:
    """Refuse NaN and infinite numbers anywhere in a parsed config, whether they came from a YAML file
    (``.nan``, ``.inf``), the command line or a default.

    Args:
        config: A jsonargparse ``Namespace``, mapping, list or value.
        prefix: The key of ``config`` itself, for messages (``""`` at the top).

    Raises:
        ConfigError: Naming the first key whose value is not finite.
    """
    if isinstance(config, bool):
        return
    if isinstance(config, float):
        if not math.isfinite(config):
            raise ConfigError(f"{prefix or 'value'}={config} must be a finite number")
        return
    items: Iterator[tuple[str, Any]]
    if isinstance(config, _Namespace):
        items = iter(vars(config).items())  # this level; nested namespaces recurse
    elif isinstance(config, Mapping):
        items = ((str(k), v) for k, v in config.items())
    elif isinstance(config, (list, tuple)):
        items = ((f"[{i}]", v) for i, v in enumerate(config))
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        items = ((f.name, getattr(config, f.name)) for f in dataclasses.fields(config))
    else:
        return
    for key, value in items:
        if key.startswith("__"):
            continue
        if key.startswith("["):
            child = f"{prefix}{key}"
        elif key in ("init_args", "dict_kwargs"):
            child = prefix
        else:
            child = f"{prefix}.{key}" if prefix else key
        check_finite_config(value, child)


def output_dirs(config: Any) -> dict[str, str]:
    """The output folders a LightningCLI run writes to, by option: ``trainer.default_root_dir``, each
    logger's ``save_dir`` and ``checkpoint.dirpath`` (those that are set)."""
    found: dict[str, str] = {}
    trainer = config.get("trainer") if config is not None else None
    if trainer is not None:
        if trainer.get("default_root_dir"):
            found["trainer.default_root_dir"] = str(trainer.get("default_root_dir"))
        loggers = trainer.get("logger")
        for i, logger in enumerate(loggers if isinstance(loggers, list) else []):
            args = getattr(logger, "init_args", None)
            if args is not None and args.get("save_dir"):
                found[f"trainer.logger[{i}].init_args.save_dir"] = str(args.get("save_dir"))
    checkpoint = config.get("checkpoint") if config is not None else None
    if checkpoint is not None and checkpoint.get("dirpath"):
        found["checkpoint.dirpath"] = str(checkpoint.get("dirpath"))
    return found


def check_run_config(config: Any) -> None:
    """The checks of a LightningCLI run before anything is built or written: every number finite, every
    output folder writable, and checkpoints restored with ``weights_only=True``.

    Call from ``LightningCLI.before_instantiate_classes`` (after :func:`apply_threads_and_log_root`).

    Raises:
        ConfigError: A NaN or infinite value, an output folder that cannot be written, or
            ``weights_only=false`` (which would let ``--ckpt_path`` run pickled code).
    """
    check_finite_config(config)
    for key, folder in output_dirs(config).items():
        check_writable_dir(folder, key)
    if "weights_only" in config:
        if config.get("weights_only") is False:
            raise ConfigError("weights_only=false would run code pickled in the checkpoint; adaptrack restores "
                              "checkpoints with weights_only=true only")
        config["weights_only"] = True


def usage_error(exc: BaseException) -> BaseException | None:
    """The error a user can fix behind ``exc``: ``exc`` itself, or one it was raised from
    (``raise … from``, e.g. a library wrapping it); ``None`` if none. An exception merely raised while
    handling another (``__context__``) is a bug of its own and is not taken for it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (NonFiniteLossError, *USAGE_ERRORS)):
            return current
        seen.add(id(current))
        current = current.__cause__
    return None


def error_message(exc: BaseException) -> str:
    """One line for stderr. An error re-raised from a data loader worker carries the worker's traceback
    in its message (``Caught DataError in DataLoader worker process 0. Original Traceback …``); only
    its last line, the original message, is kept."""
    text = str(exc)
    if "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        name = type(exc).__name__
        text = last.split(f"{name}: ", 1)[1] if f"{name}: " in last else last
    return text


def prepare_run_config(config: Namespace, default_root: str) -> None:
    """Everything both CLIs do to a parsed config before any class is built (``before_instantiate_classes``).

    In order: :func:`apply_threads_and_log_root` (threads; loggers and shipped checkpoint folders
    follow ``trainer.default_root_dir``), :func:`check_run_config` (non-finite numbers, unwritable
    output folders), :func:`apply_deterministic` (``--deterministic``) and
    :func:`continue_run_folder` (a resumed ``fit`` stays in its run folder).
    """
    apply_threads_and_log_root(config, default_root)
    check_run_config(config)
    apply_deterministic(config)
    continue_run_folder(config)


def exit_code_for(exc: BaseException) -> int | None:
    """The process exit code of an exception a command may end with; ``None``: not ours to handle.

    :class:`~adaptrack.common.training.NonFiniteLossError` → 1; the :data:`USAGE_ERRORS` → 2 (also when
    another exception was raised from or while handling one, see :func:`usage_error`); ``SystemExit``
    (argparse, jsonargparse) → its code (2 when the code is a message).
    """
    if isinstance(exc, SystemExit):
        return 2 if isinstance(exc.code, str) else int(exc.code or 0)
    found = usage_error(exc)
    if isinstance(found, NonFiniteLossError):
        return 1
    if found is not None:
        return 2
    return None


def run_command(prog: str, command: Callable[[], object]) -> int:
    """Run ``command`` and return the process exit code.

    Args:
        prog: The command as the user typed it (``adaptrack track fit``), to begin each message.
        command: The subcommand; an ``int`` it returns is the exit code, anything else means 0.

    Returns:
        0, or :func:`exit_code_for` of the exception it ended with, whose message goes to stderr as
        one line ``<prog>: error: …`` (usage errors) or ``<prog>: training stopped: …`` (non-finite
        loss), without a traceback. Other exceptions propagate.
    """
    try:
        result = command()
    except SystemExit as exc:
        if isinstance(exc.code, str):  # what an uncaught SystemExit would have printed
            print(exc.code, file=sys.stderr)
        return 2 if isinstance(exc.code, str) else int(exc.code or 0)
    except Exception as exc:
        found = usage_error(exc)
        if found is None:
            raise
        if isinstance(found, NonFiniteLossError):
            print(f"{prog}: training stopped: {error_message(found)}", file=sys.stderr)
            return 1
        print(f"{prog}: error: {error_message(found)}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0
