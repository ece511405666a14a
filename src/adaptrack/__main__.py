"""``python -m adaptrack …``: the console script as a module.

Lightning's DDP launcher starts the other ranks by re-running the command line; run as a module,
it re-runs ``python -m adaptrack …``, so this entry point works wherever ``adaptrack`` is importable
(also from a source checkout with ``PYTHONPATH=src``, without the console script installed).
"""

import sys

from adaptrack.cli import main

if __name__ == "__main__":
    sys.exit(main())
