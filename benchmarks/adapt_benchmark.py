"""Benchmark adaptation methods on a shipped task; prints a table of target accuracy and wall time.

Usage::

    python benchmarks/adapt_benchmark.py mnist_usps                       # data from ../shared/data
    python benchmarks/adapt_benchmark.py default --methods source_only self_learning
    python benchmarks/adapt_benchmark.py mnist_usps -- --trainer.max_epochs 3   # extra fit options

The task name is a config in ``configs/adapt/``. The data root is ``--data-root``, else the
development folder ``../shared/data`` when present, else ``$ADAPTRACK_DATA`` / ``~/.cache/adaptrack``.
Target test labels are used only for the printed accuracy, never for training or model selection.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from adaptrack.adapt.cli import compare
from adaptrack.adapt.methods import METHODS
from adaptrack.common.cli import DEFAULT_THREADS
from adaptrack.common.paths import shared_data_dir

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "adapt"


def main() -> int:
    tasks = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=tasks)
    parser.add_argument("--methods", nargs="+", default=["source_only", "dann", "self_learning"],
                        choices=sorted(METHODS))
    parser.add_argument("--data-root", default=None, help="data root (default: ../shared/data if present)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                        help=f"torch CPU threads (default {DEFAULT_THREADS}, as `adaptrack adapt fit`)")
    ns, extra = parser.parse_known_args()
    root = ns.data_root or shared_data_dir()
    args = ["--config", str(CONFIGS / f"{ns.task}.yaml"), "--methods", *ns.methods, "--"]
    if root is not None:
        args += ["--data.data_root", str(root)]
    args += ["--threads", str(ns.threads)]
    args += ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
             *[a for a in extra if a != "--"]]
    print(f"task {ns.task}: {CONFIGS / (ns.task + '.yaml')}; data root {root}; torch threads {ns.threads}")
    return compare(args)


if __name__ == "__main__":
    sys.exit(main())
