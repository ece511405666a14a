"""Kill a training run with SIGKILL inside its second epoch, resume it from ``last.ckpt``, compare.

    python benchmarks/resume.py --out /tmp/resume                 # adapt fit, track fit-parts, track fit
    python benchmarks/resume.py --out /tmp/resume --commands adapt-fit

For each fit command, three runs with the same seed and options (``--threads 1 --deterministic
true``): an uninterrupted one, one killed from outside with ``kill -9`` as soon as its ``last.ckpt``
has passed ``--kill-after`` steps (a random point of the second epoch, as a machine would kill it),
and that killed run restarted with ``--ckpt_path …/last.ckpt``. Prints the final metrics of the
uninterrupted and the resumed run side by side and the largest weight difference between them.

The adapt runs use the embedded default (``configs/adapt/default.yaml``) with 3 short epochs; the
tracking runs the shipped configs on a small generated crowd set, 3 short epochs each.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from adaptrack.common.report import format_table

ROOT = Path(__file__).resolve().parents[1]
ADAPTRACK = str(Path(sys.executable).parent / "adaptrack")
"""The console script of the environment running this script."""

COMMANDS: dict[str, list[str]] = {
    "adapt-fit": ["adapt", "fit", "--config", str(ROOT / "configs/adapt/default.yaml"), "--trainer.max_epochs", "3",
                  "--data.steps_per_epoch", "40", "--checkpoint.last_every_n_steps", "5"],
    "track-fit-parts": ["track", "fit-parts", "--config", str(ROOT / "configs/track/parts.yaml"),
                        "--trainer.max_epochs", "3", "--data.samples_per_epoch", "96", "--data.val_samples", "16",
                        "--trainer.check_val_every_n_epoch", "1", "--checkpoint.last_every_n_steps", "1"],
    "track-fit": ["track", "fit", "--config", str(ROOT / "configs/track/tracker.yaml"), "--trainer.max_epochs", "3",
                  "--data.samples_per_epoch", "48", "--data.val_samples", "16", "--trainer.check_val_every_n_epoch",
                  "1", "--checkpoint.last_every_n_steps", "1"],
}
"""The runs: 3 short epochs each (40, 6 and 12 steps per epoch)."""

KILL_AFTER = {"adapt-fit": 50, "track-fit-parts": 8, "track-fit": 16}
"""Steps ``last.ckpt`` must have passed before the kill: inside the second epoch."""


def run_folder(out: Path, name: str) -> list[str]:
    """Options that put every output of a run under ``out/name``, checkpoints in ``logs/version_0/checkpoints``."""
    return ["--trainer.default_root_dir", str(out / name), "--checkpoint.dirpath", "null"]


def last_checkpoint(out: Path, name: str) -> Path:
    return out / name / "logs" / "version_0" / "checkpoints" / "last.ckpt"


def command(system_args: list[str], extra: list[str]) -> list[str]:
    return [ADAPTRACK, *system_args, "--threads", "1", "--deterministic", "true",
            "--trainer.enable_progress_bar", "false", *extra]


def step_of(path: Path) -> int:
    """Global step of a checkpoint (-1 while it does not exist)."""
    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except (FileNotFoundError, RuntimeError, EOFError):
        return -1


def kill_after(cmd: list[str], last: Path, steps: int, log: Path) -> tuple[int, float]:
    """Start ``cmd``; SIGKILL it once ``last`` holds more than ``steps`` steps. Returns (step at kill, seconds)."""
    start = time.perf_counter()
    with log.open("w") as handle:
        proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
        while proc.poll() is None:
            if last.is_file() and step_of(last) > steps:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                return step_of(last), time.perf_counter() - start
            time.sleep(0.2)
    raise RuntimeError(f"{' '.join(cmd)} ended (exit {proc.returncode}) before step {steps}; see {log}")


def final_metrics(root: Path) -> dict[str, float]:
    """``report.json`` accuracies (adapt), else the last logged validation values of ``metrics.csv``."""
    report = root / "logs" / "version_0" / "report.json"
    if report.is_file():
        data = json.loads(report.read_text())
        return {k: float(v) for k, v in data.items() if "acc" in k and isinstance(v, (int, float))}
    rows = list(csv.DictReader((root / "logs" / "version_0" / "metrics.csv").open()))
    out: dict[str, float] = {}
    for row in rows:
        out.update({k: float(v) for k, v in row.items() if k.startswith("val/") and v not in ("", None)})
    return out


def largest_weight_difference(a: Path, b: Path) -> float:
    sa = torch.load(a, map_location="cpu", weights_only=True)["state_dict"]
    sb = torch.load(b, map_location="cpu", weights_only=True)["state_dict"]
    if sa.keys() != sb.keys():
        return float("inf")
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa if sa[k].numel())


def generate_track_data(out: Path) -> Path:
    data = out / "crowded"
    if not (data / "annotations" / "val").is_dir():
        for split, seed, n in (("train", 0, 8), ("val", 1, 2)):
            subprocess.run([ADAPTRACK, "track", "generate", "--out", str(data), "--preset",
                            "crowded", "--split", split, "--seed", str(seed), "--n_sequences", str(n),
                            "--n_frames", "24"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the runs")
    parser.add_argument("--commands", nargs="+", default=list(COMMANDS), choices=list(COMMANDS))
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    data = generate_track_data(out) if any(c.startswith("track") for c in args.commands) else None
    for name in args.commands:
        base = list(COMMANDS[name])
        if name.startswith("track"):
            base += ["--data.train_dir", str(data), "--data.val_dir", str(data)]
        if name == "track-fit":
            base += ["--model.part_checkpoint", str(last_checkpoint(out, "track-fit-parts-full"))]
        full, killed = f"{name}-full", f"{name}-killed"
        print(f"=== {name}: uninterrupted", flush=True)
        start = time.perf_counter()
        subprocess.run(command(base, run_folder(out, full)), check=True, cwd=ROOT,
                       stdout=(out / f"{full}.log").open("w"), stderr=subprocess.STDOUT)
        full_s = time.perf_counter() - start
        last = last_checkpoint(out, killed)
        print(f"=== {name}: killed after step {KILL_AFTER[name]}", flush=True)
        killed_step, _ = kill_after(command(base, run_folder(out, killed)), last, KILL_AFTER[name],
                                    out / f"{killed}.log")
        print(f"=== {name}: resumed from step {killed_step}", flush=True)
        subprocess.run(command(base, [*run_folder(out, killed), "--ckpt_path", str(last)]), check=True, cwd=ROOT,
                       stdout=(out / f"{killed}-resumed.log").open("w"), stderr=subprocess.STDOUT)
        a, b = final_metrics(out / full), final_metrics(out / killed)
        diff = largest_weight_difference(last_checkpoint(out, full), last)
        for run, metrics in (("uninterrupted", a), (f"killed at step {killed_step}, resumed", b)):
            rows.append({"command": name, "run": run,
                         "steps": step_of(last_checkpoint(out, full if run == "uninterrupted" else killed)),
                         **{k: f"{v:.6g}" for k, v in metrics.items()},
                         "max |Δw|": f"{diff:.3g}" if run != "uninterrupted" else "",
                         "wall s": f"{full_s:.0f}" if run == "uninterrupted" else ""})
    columns = ["command", "run", "steps"]
    columns += [*sorted({k for r in rows for k in r} - {*columns, "max |Δw|", "wall s"}), "max |Δw|", "wall s"]
    print(format_table(rows, columns, title="SIGKILL inside epoch 2, resume from last.ckpt "
                                            "(--threads 1 --deterministic true)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
