"""Error types whose messages always name the offending file, frame or key."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    """Bad input data. The message names the file (and frame/key where relevant) and what to do."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class MissingDataError(FileNotFoundError):
    """A dataset file is absent; the message lists the files expected and where to put them."""


class ConfigError(ValueError):
    """Contradictory or out-of-range options. The message names each key and its value."""
