r"""``adaptrack track``: part-aware tracking (patent application US2024/0282089A1).

Subcommands::

    fit-parts   train the part detector (first model), LightningCLI
    fit         train the tracking-subject model with the frozen part detector, LightningCLI
    run         track one person through a frame folder or a GIF/video file
    evaluate    subject and part metrics plus baselines on a PoseTrack18-format set
    export      write both models as ONNX and check onnxruntime against PyTorch
    generate    write synthetic crowd scenes in PoseTrack18 format

Examples::

    adaptrack track generate --out data/crowded --preset crowded --split train --seed 0 --n_sequences 60
    adaptrack track generate --out data/crowded --preset crowded --split val --seed 1 --n_sequences 8
    adaptrack track generate --out data/crowded --preset crowded --split test --seed 2 --n_sequences 100
    adaptrack track fit-parts --config configs/track/parts.yaml
    adaptrack track fit --config configs/track/tracker.yaml \
        --model.part_checkpoint runs/track/parts/checkpoints/best.ckpt
    adaptrack track fit --config configs/track/tracker.yaml --ckpt_path runs/track/tracker/checkpoints/last.ckpt
    adaptrack track evaluate --checkpoints '[runs/track/tracker/checkpoints/best.ckpt]' \
        --data data/crowded --split test --settings '{gate: 0.3, motion: velocity}'
    adaptrack track export --checkpoint runs/track/tracker/checkpoints/best.ckpt --output runs/track/onnx
    adaptrack track run --checkpoint runs/track/onnx --source frames/ --box '[10, 20, 40, 90]'

``fit-parts`` and ``fit`` are LightningCLI commands (``--print_config`` shows every option; YAML
configs in ``configs/track/``); the others take ``--help``.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from jsonargparse import CLI
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from adaptrack.common.cli import (
    active_config,
    add_resume_arguments,
    add_threads_argument,
    apply_deterministic,
    apply_threads_and_log_root,
    continue_run_folder,
    run_command,
    trainer_defaults,
)
from adaptrack.common.report import plot_curves, read_metrics_csv
from adaptrack.common.training import BestAndLastCheckpoint
from adaptrack.track.train.callbacks import LossEndCondition
from adaptrack.track.train.datamodule import TrackDataModule
from adaptrack.track.train.module import PartDetectorModule, TrackerModule

DEFAULT_ROOT = "runs/track"


class TrackCLI(LightningCLI):
    """LightningCLI with the data → model part link, best+last checkpoints, ¶49 end conditions."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.parts", "model.parts")
        if self.model_class is TrackerModule:  # recorded in the checkpoint: the tracker runs at this size
            parser.link_arguments("data.image_size", "model.input_size")
            parser.link_arguments("data.clip_order", "model.clip_order")
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.monitor": "val/loss", "checkpoint.mode": "min",
                             "checkpoint.filename": "best", "checkpoint.save_last": True,
                             "checkpoint.save_top_k": 1})
        parser.add_lightning_class_args(LossEndCondition, "end_condition")
        add_threads_argument(parser)
        add_resume_arguments(parser)

    def before_instantiate_classes(self) -> None:
        """Apply ``--threads``; default loggers follow ``trainer.default_root_dir``."""
        apply_threads_and_log_root(active_config(self), DEFAULT_ROOT)
        apply_deterministic(active_config(self))
        continue_run_folder(active_config(self))

    def after_fit(self) -> None:
        """Plot the CSV log into ``curves.png`` beside it (rank 0 only under DDP: one writer per file)."""
        if not self.trainer.is_global_zero:
            return
        for logger in self.trainer.loggers:
            csv = Path(logger.log_dir or "") / "metrics.csv"
            if type(logger).__name__ == "CSVLogger" and csv.is_file():
                series = read_metrics_csv(csv)
                panels = {"loss": [k for k in series if k.endswith("loss_epoch") or k == "val/loss"],
                          "terms": [k for k in series if k.startswith("val/") and k != "val/loss"]}
                png = plot_curves(series, csv.parent / "curves.png", panels, title=type(self.model).__name__)
                print(f"training curves: {png}")
        ckpt = self.trainer.checkpoint_callback
        if isinstance(ckpt, ModelCheckpoint):
            print(f"best checkpoint: {ckpt.best_model_path or '(none: no validation)'}\n"
                  f"last checkpoint: {ckpt.last_model_path}")


def build_cli(module: type, name: str, args: list[str], run: bool = True) -> TrackCLI:
    """Construct (and by default run) a LightningCLI for ``module`` on ``args`` (``fit`` prepended)."""
    if args and args[0] in ("fit", "validate"):
        sub, rest = args[0], args[1:]
    else:
        sub, rest = "fit", args
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    return TrackCLI(module, TrackDataModule, args=[sub, *rest] if run else rest, run=run,
                    trainer_defaults=trainer_defaults(DEFAULT_ROOT, name),
                    save_config_kwargs={"overwrite": True},
                    parser_kwargs={"description": f"adaptrack track {name}: {module.__doc__.splitlines()[0]}"})


def function_command(name: str, module: str, function: str) -> Callable[[list[str]], int]:
    """A subcommand that parses its arguments into ``module.function``'s typed signature
    (jsonargparse ``CLI``); the module is imported only when the subcommand runs."""

    def command(argv: list[str]) -> int:
        target = getattr(importlib.import_module(module), function)
        CLI(target, args=argv, as_positional=False, prog=f"adaptrack track {name}")
        return 0

    return command


COMMANDS: dict[str, Callable[[list[str]], object]] = {
    "fit-parts": lambda argv: build_cli(PartDetectorModule, "parts", argv),
    "fit": lambda argv: build_cli(TrackerModule, "tracker", argv),
    "run": function_command("run", "adaptrack.track.inference.run", "run"),
    "evaluate": function_command("evaluate", "adaptrack.track.evaluation.evaluate", "evaluate"),
    "export": function_command("export", "adaptrack.track.inference.onnx_export", "export"),
    "generate": function_command("generate", "adaptrack.track.data.synth", "generate"),
}
"""Each subcommand's function of its arguments."""

SUBCOMMANDS = tuple(COMMANDS)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``adaptrack track``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    cmd, rest = args[0], args[1:]
    if cmd not in COMMANDS:
        print(f"adaptrack track: unknown command {cmd!r}; choose from {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    return run_command(f"adaptrack track {cmd}", lambda: COMMANDS[cmd](rest))
