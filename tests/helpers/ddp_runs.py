"""Run several ``adaptrack`` commands one after the other in one process (``ddp_runs.py RUNS.json``).

``RUNS.json`` holds a list of argument lists, each given to :func:`adaptrack.cli.main` (``["adapt",
"fit", ...]``). Under ``--trainer.strategy ddp`` Lightning's launcher starts the other ranks by
re-running this script with the same arguments, so every rank runs the same commands in the same
order; the first command launches the processes and the later ones reuse them (and their process
group), which saves a start-up of the processes per command. Exits with the first non-zero code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from adaptrack.cli import main


def run_all(path: Path) -> int:
    """Run the commands listed in the JSON file ``path``; the first non-zero exit code, else 0."""
    for args in json.loads(path.read_text()):
        code = main(list(args))
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(run_all(Path(sys.argv[1])))
