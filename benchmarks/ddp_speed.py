"""Wall time of 1 vs 2 training processes (Lightning DDP, CPU, gloo) on the digits task and the tracker.

    python benchmarks/ddp_speed.py --out runs/ddp_speed                 # both systems
    python benchmarks/ddp_speed.py --out runs/ddp_speed --systems adapt --steps 100

Every row is an ``adaptrack adapt fit`` / ``adaptrack track fit-parts|fit`` subprocess with
``--threads`` torch threads per process (default 1) and no validation (``limit_val_batches 0``), so
that the time is the training loop's. Two ways to compare 1 and 2 processes on the same number of
training images:

* **same global batch**: 2 processes of half the batch each, the same number of steps (the same
  optimisation as 1 process, up to batch-norm statistics being per process);
* **same per-process batch**: 2 processes of the full batch each, half the steps (each process does
  the work of a 1-process step; the global batch doubles).

``train s`` is the training loop of rank 0 (``on_train_start`` to ``on_train_end``: after the
processes, the data and the model are ready); ``process s`` is the whole command, start-up, data
preparation (every process renders the synthetic digits itself) and the end-of-fit report included.
A row with 1 process and ``--threads 2`` shows the same two cores used by one process instead.

Adapt: ``configs/adapt/default.yaml`` (LeNet, synthetic digits -> scikit-learn digits), one epoch of
``--steps`` steps of batch ``--batch``. Tracker: tiny generated crowded scenes (``adaptrack track
generate``), the part detector (``fit-parts``) and the tracker (``fit``, with the frozen part
detector), one epoch of ``--track-steps`` steps each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning.pytorch as pl

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["system", "comparison", "processes", "threads", "batch/process", "global batch", "steps", "images",
           "train s", "images/s", "speed-up", "process s"]


class FitTimer(pl.Callback):
    """Rank 0 writes ``{"train_s": …}`` (``on_train_start`` to ``on_train_end``) to ``out``.

    Args:
        out: The JSON file.
    """

    def __init__(self, out: str) -> None:
        self.out = out
        self._start = 0.0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            Path(self.out).write_text(json.dumps({"train_s": time.perf_counter() - self._start,
                                                  "steps": trainer.global_step, "world": trainer.world_size}))


def run(args: list[str], out: Path, processes: int, threads: int) -> dict[str, Any]:
    """One ``adaptrack`` command; returns ``train_s`` (rank 0's loop), ``steps`` and ``process_s``."""
    out.mkdir(parents=True, exist_ok=True)
    timer = out / "timer.json"
    ddp = ["--trainer.strategy", "ddp", "--trainer.devices", str(processes)] if processes > 1 else []
    command = [sys.executable, "-m", "adaptrack", *args, *ddp, "--trainer.accelerator", "cpu",
               "--threads", str(threads), "--trainer.default_root_dir", str(out),
               "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false",
               "--trainer.enable_model_summary", "false",
               "--trainer.callbacks+=ddp_speed.FitTimer", "--trainer.callbacks.out", str(timer)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT / "src"),
                                                        os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result = json.loads(timer.read_text())
    return {**result, "process_s": wall}


def rows_for(system: str, base: list[str], batch_key: str, batch: int, steps: int, steps_key: str | None,
             out: Path, threads: int, per_step_images: int) -> list[dict[str, Any]]:
    """The four rows of one system: 1 process (``threads``, and 2 threads), 2 processes two ways.

    Args:
        system: Row label.
        base: The command's arguments without batch size and steps.
        batch_key: Option of the per-process batch size.
        batch: 1-process batch size.
        steps: 1-process steps.
        steps_key: Option of the steps per epoch (``None``: steps follow from ``samples_per_epoch``).
        out: Folder of the runs.
        threads: Threads per process.
        per_step_images: Images (or clips) one step of batch 1 reads (adapt: 2, source + target).
    """
    plans = [("1 process", 1, threads, batch, steps), ("1 process", 1, 2 * threads, batch, steps),
             ("same global batch", 2, threads, batch // 2, steps),
             ("same batch/process", 2, threads, batch, steps // 2)]
    rows, reference = [], None
    for label, processes, n_threads, per_rank, n_steps in plans:
        if steps_key is not None:
            sizing = [batch_key, str(per_rank), steps_key, str(n_steps)]
        else:  # samples_per_epoch: the epoch's clips, shared among the processes
            sizing = [batch_key, str(per_rank), "--data.samples_per_epoch", str(per_rank * processes * n_steps)]
        name = f"{system.replace(' ', '_')}_{processes}p_{n_threads}t_b{per_rank}"
        result = run([*base, *sizing], out / name, processes, n_threads)
        images = per_rank * processes * result["steps"] * per_step_images
        rate = images / result["train_s"]
        if reference is None:
            reference = rate
        rows.append({"system": system, "comparison": label, "processes": processes, "threads": n_threads,
                     "batch/process": per_rank, "global batch": per_rank * processes, "steps": result["steps"],
                     "images": images, "train s": result["train_s"], "images/s": rate,
                     "speed-up": rate / reference, "process s": result["process_s"]})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/ddp_speed"), help="folder of the runs")
    parser.add_argument("--systems", nargs="+", default=["adapt", "track"], choices=["adapt", "track"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--steps", type=int, default=100, help="adapt: 1-process steps (one epoch)")
    parser.add_argument("--batch", type=int, default=64, help="adapt: 1-process batch (source and target each)")
    parser.add_argument("--track-steps", type=int, default=16, help="track: 1-process steps per model")
    parser.add_argument("--track-batch", type=int, default=8, help="track: 1-process clips per batch")
    args = parser.parse_args(argv)
    from adaptrack.common.report import format_table  # the script's own imports stay light for FitTimer

    rows: list[dict[str, Any]] = []
    common = ["--trainer.max_epochs", "1", "--seed_everything", "0"]
    if "adapt" in args.systems:
        base = ["adapt", "fit", "--config", str(ROOT / "configs/adapt/default.yaml"), *common,
                "--report.print_table", "false"]
        rows += rows_for("adapt digits", base, "--data.batch_size", args.batch, args.steps, "--data.steps_per_epoch",
                         args.out / "adapt", args.threads, per_step_images=2)
    if "track" in args.systems:
        from adaptrack.track.data.synth import generate_dataset

        data = args.out / "track_data"
        if not (data / "annotations" / "train").is_dir():
            generate_dataset(data, n_sequences=6, n_frames=24, preset="crowded", seed=0, width=128, height=128,
                             split="train")
        track = ["--data.train_dir", str(data), "--data.image_size", "128", "--data.max_stride", "1", *common]
        parts = ["track", "fit-parts", *track, "--data.clip_len", "1", "--model.crop_size", "96"]
        rows += rows_for("track fit-parts", parts, "--data.batch_size", args.track_batch, args.track_steps, None,
                         args.out / "track", args.threads, per_step_images=1)
        ckpt = args.out / "track" / f"track_fit-parts_1p_{args.threads}t_b{args.track_batch}" / "logs" / \
            "version_0" / "checkpoints" / "last.ckpt"
        tracker = ["track", "fit", *track, "--data.clip_len", "4", "--model.crop_size", "96",
                   "--model.part_checkpoint", str(ckpt)]
        rows += rows_for("track fit", tracker, "--data.batch_size", args.track_batch // 2, args.track_steps, None,
                         args.out / "track", args.threads, per_step_images=4)
    print("\n" + format_table(rows, COLUMNS, title=f"1 vs 2 training processes (DDP, gloo, CPU; "
                                                  f"{os.cpu_count()} cores; images/s counts every image of a step: "
                                                  "adapt source + target, track every clip frame)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
