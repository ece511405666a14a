"""Where data lives: an explicit option, else ``$ADAPTRACK_DATA``, else ``~/.cache/adaptrack``."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "ADAPTRACK_DATA"


def resolve_data_root(explicit: str | Path | None = None) -> Path:
    """Return the data root directory.

    Args:
        explicit: A directory given on the command line or in a config; wins when set.

    Returns:
        The explicit directory, else ``$ADAPTRACK_DATA``, else ``~/.cache/adaptrack``
        (user-expanded, not created).
    """
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/adaptrack").expanduser()


def shared_data_dir() -> Path | None:
    """The development data folder ``../shared/data`` next to the project root, if present.

    Searched upward from the current directory and from this file, so tests find it from a clone
    that has ``shared/`` beside it.
    """
    starts = [Path.cwd(), Path(__file__).resolve()]
    for start in starts:
        for parent in [start, *start.parents]:
            for candidate in (parent / "shared" / "data", parent.parent / "shared" / "data"):
                if (candidate / "README.md").is_file():
                    return candidate
    return None
