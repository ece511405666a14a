"""Atomic file output: a reader never sees a half-written file, a crash leaves none behind."""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

from adaptrack.common.errors import ConfigError, DataError


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success rename it over ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.

    Args:
        path: Final destination. Its parent directory is created if needed.
        mode: ``"w"`` (text) or ``"wb"`` (binary).
        **open_kwargs: Passed to :func:`open` (e.g. ``newline=""`` for CSV).

    Yields:
        The open temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for writers that take a filename (savefig, onnx).

    The temporary keeps ``path``'s suffix so format detection still works; it is renamed over
    ``path`` on success and removed on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` through :func:`atomic_write`."""
    with atomic_write(path, "wb") as handle:
        torch.save(obj, handle)


def safe_torch_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``; a file that is not loadable is refused, naming it.

    A checkpoint that needs pickled code (a class, a function: anything but tensors, containers and
    primitives) is refused without running any of it.

    Args:
        path: The checkpoint file.
        map_location: Where tensors are loaded.

    Returns:
        The loaded object.

    Raises:
        DataError: The file is missing, empty, truncated, not a checkpoint, or needs pickled code;
            the message names the file and the problem.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("checkpoint not found", path)
    if not path.is_file():
        raise DataError("checkpoint is not a file", path)
    if path.stat().st_size == 0:
        raise DataError("checkpoint is empty (0 bytes)", path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = str(exc)
        if "GLOBAL" in reason or "global" in reason:  # weights_only refused an object that needs code
            found = re.search(r"GLOBAL ([\w.]+)", reason)
            what = f" ({found.group(1)})" if found else ""
            raise DataError(f"refused: the checkpoint needs pickled code{what} to load; adaptrack loads "
                            "checkpoints with torch.load(weights_only=True) and never runs code from them",
                            path) from exc
        raise DataError("not a readable checkpoint (corrupt, or not written by torch.save)", path) from exc
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as exc:
        detail = str(exc).strip().split(". ")[0] if isinstance(exc, RuntimeError) else ""
        raise DataError("not a readable checkpoint: truncated, corrupt or not written by torch.save"
                        + (f" ({detail})" if detail else ""), path) from exc


def check_writable_dir(path: str | Path, key: str) -> None:
    """Check, before any work, that the folder ``path`` can be created (if absent) and written to.

    Nothing is left behind: the check creates and removes a temporary folder inside the nearest
    existing ancestor (or ``path`` itself), which also works where permission bits say nothing
    (root, ACLs, read-only mounts).

    Args:
        path: An output folder.
        key: The option that names it, for the message (``trainer.default_root_dir``, ``--output``).

    Raises:
        ConfigError: ``path`` or one of its ancestors is a file, or the folder is not writable.
    """
    path = Path(path).expanduser()
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        where = "" if existing == path else f" ({existing} is a file)"
        raise ConfigError(f"{key}={path}: the output folder cannot be created: not a folder{where}")
    try:
        probe = tempfile.mkdtemp(prefix=".adaptrack-write-check-", dir=existing)
    except OSError as exc:
        raise ConfigError(f"{key}={path}: the output folder is not writable ({exc.strerror or exc})") from exc
    Path(probe).rmdir()
