r"""``adaptrack track``: part-aware tracking (patent application US2024/0282089A1).

Subcommands::

    fit-parts   train the part detector (first model), LightningCLI
    fit         train the tracking-subject model with the frozen part detector, LightningCLI
    run         track one person through a frame folder or a GIF/video file
    evaluate    subject and part metrics plus baselines on a PoseTrack18-format set
    evaluate-real  head hit / wrong-person / miss / IoU / FPS on a Town Centre clip, OpenCV baselines included
    convert     write a Town Centre clip's labeled frames as a PoseTrack18 split (few labeled frames)
    export      write both models as ONNX and check onnxruntime against PyTorch
    generate    write synthetic crowd scenes in PoseTrack18 format
    download    fetch a dataset that allows direct download (Town Centre), checksum pinned

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

from jsonargparse import auto_parser
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from adaptrack.common.cli import (
    active_config,
    add_resume_arguments,
    add_threads_argument,
    check_finite_config,
    prepare_run_config,
    run_command,
    trainer_defaults,
)
from adaptrack.common.errors import DataError
from adaptrack.common.report import plot_curves, read_metrics_csv
from adaptrack.common.training import BestAndLastCheckpoint
from adaptrack.track.inference.checkpoints import read_meta
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
            parser.link_arguments("data.search", "model.search")
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.monitor": "val/loss", "checkpoint.mode": "min",
                             "checkpoint.filename": "best", "checkpoint.save_last": True,
                             "checkpoint.save_top_k": 1})
        parser.add_lightning_class_args(LossEndCondition, "end_condition")
        add_threads_argument(parser)
        add_resume_arguments(parser)

    def _parse_ckpt_path(self) -> None:
        """Check ``--ckpt_path`` before LightningCLI reads it: a ``fit-parts`` run resumes from a
        ``fit-parts`` checkpoint, a ``fit`` run from a ``fit`` one. A missing, corrupt or truncated file,
        one of ``adaptrack adapt`` or one that needs pickled code ends in one line naming it."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path:
            meta, _ = read_meta(ckpt_path)
            wanted = "tracker" if self.model_class is TrackerModule else "parts"
            if meta.get("kind") != wanted:
                commands = {"parts": "fit-parts", "tracker": "fit"}
                raise DataError(f"this is a checkpoint of `adaptrack track {commands.get(meta.get('kind'), '?')}`; "
                                f"--ckpt_path of `adaptrack track {commands[wanted]}` resumes from one it wrote",
                                ckpt_path)
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        """Apply ``--threads``, default loggers follow ``trainer.default_root_dir``; refuse non-finite
        numbers and unwritable output folders before anything is built or written."""
        prepare_run_config(active_config(self), DEFAULT_ROOT)

    def before_fit(self) -> None:
        """Read the annotations (and check every frame's header) before the trainer starts and its
        loggers create their folders, so that a bad file fails before anything is written."""
        self.datamodule.setup("fit")

    def before_validate(self) -> None:
        """Read the validation annotations first (see :meth:`before_fit`)."""
        self.datamodule.setup("validate")

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
                    parser_kwargs={"prog": f"adaptrack track {'fit-parts' if name == 'parts' else 'fit'}",
                                   "description": f"adaptrack track {name}: {module.__doc__.splitlines()[0]}"})


def function_command(name: str, module: str, function: str) -> Callable[[list[str]], int]:
    """A subcommand that parses its arguments into ``module.function``'s typed signature
    (jsonargparse ``CLI``); the module is imported only when the subcommand runs."""

    def command(argv: list[str]) -> int:
        target = getattr(importlib.import_module(module), function)
        parser = auto_parser(target, as_positional=False, prog=f"adaptrack track {name}")
        config = parser.parse_args(argv)
        config.pop("config", None)
        check_finite_config(config)  # NaN and inf are refused whether typed or read from a --config file
        target(**vars(parser.instantiate(config)))
        return 0

    return command


COMMANDS: dict[str, Callable[[list[str]], object]] = {
    "fit-parts": lambda argv: build_cli(PartDetectorModule, "parts", argv),
    "fit": lambda argv: build_cli(TrackerModule, "tracker", argv),
    "run": function_command("run", "adaptrack.track.inference.run", "run"),
    "evaluate": function_command("evaluate", "adaptrack.track.evaluation.evaluate", "evaluate"),
    "evaluate-real": function_command("evaluate-real", "adaptrack.track.evaluation.real", "evaluate_real"),
    "convert": function_command("convert", "adaptrack.track.data.convert", "convert"),
    "export": function_command("export", "adaptrack.track.inference.onnx_export", "export"),
    "generate": function_command("generate", "adaptrack.track.data.synth", "generate"),
    "download": function_command("download", "adaptrack.track.data.downloads", "download"),
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
