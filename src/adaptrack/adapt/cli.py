"""``adaptrack adapt``: LightningCLI (``fit | validate | test | predict``) plus ``compare`` and ``export``.

Examples::

    adaptrack adapt fit                                   # embedded default, self_learning
    adaptrack adapt fit --config configs/adapt/mnist_usps.yaml --model.method dann
    adaptrack adapt fit --config configs/adapt/recipes/two_stage.yaml       # second embodiment
    adaptrack adapt fit --print_config > my.yaml          # every option, with its default
    adaptrack adapt predict --ckpt_path runs/adapt/.../checkpoints/last.ckpt \\
        --data.predict_dir my_images/ --predictions.output predictions.csv
    adaptrack adapt compare --config configs/adapt/default.yaml --methods source_only self_learning
    adaptrack adapt export --checkpoint runs/adapt/.../checkpoints/last.ckpt --output runs/adapt/onnx
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import Any

from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from adaptrack.adapt.data.datamodule import DomainAdaptationDataModule, resolve_normalize
from adaptrack.adapt.methods import METHODS
from adaptrack.adapt.module import DomainAdaptationModule
from adaptrack.adapt.predict import PredictionCSVWriter, adapt_checkpoint_hparams
from adaptrack.adapt.report import REPORT_COLUMNS, AdaptationReport
from adaptrack.adapt.validators import resolve_checkpoint_mode
from adaptrack.common.cli import (
    active_config,
    add_resume_arguments,
    add_threads_argument,
    prepare_run_config,
    run_command,
    trainer_defaults,
)
from adaptrack.common.distributed import resolve_ddp_strategy
from adaptrack.common.report import format_table
from adaptrack.common.training import BestAndLastCheckpoint

INPUT_KEYS = {"in_channels": "channels", "image_size": "image_size", "input_norm": "normalize"}
"""Model hyperparameters that fix the data module's input format (model key -> data key)."""

LEGACY_INPUT = {"input_norm": "symmetric"}
"""What a checkpoint written before a key of :data:`INPUT_KEYS` existed was trained with."""

DEFAULT_ROOT = "runs/adapt"

TRAINER_DEFAULTS: dict[str, Any] = trainer_defaults(DEFAULT_ROOT, log_every_n_steps=20)
"""CSV + TensorBoard logs under ``default_root_dir`` (``runs/adapt/logs``, ``runs/adapt/tensorboard``)."""


class AdaptCLI(LightningCLI):
    """LightningCLI with the data → model links, checkpointing, report and prediction writer."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.channels", "model.in_channels")
        parser.link_arguments("data.image_size", "model.image_size")
        parser.link_arguments(("data.normalize", "data.channels", "data.source"), "model.input_norm",
                              compute_fn=resolve_normalize)
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.class_names", apply_on="instantiate")
        # Best checkpoint by a label-free validator (never by target labels) + last (every epoch);
        # mode "auto": the validator's direction (adaptrack.adapt.validators.resolve_checkpoint_mode).
        parser.add_lightning_class_args(BestAndLastCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.monitor": "val/source_acc", "checkpoint.mode": "auto",
                             "checkpoint.filename": "best-{epoch:02d}", "checkpoint.save_last": True})
        parser.add_lightning_class_args(AdaptationReport, "report")
        parser.add_lightning_class_args(PredictionCSVWriter, "predictions")
        add_threads_argument(parser)
        add_resume_arguments(parser)

    def _parse_ckpt_path(self) -> None:
        """Check ``--ckpt_path``, then take the model's hyperparameters from it (LightningCLI), and the
        input format and class names too.

        The file is loaded with ``weights_only=True`` and must be a checkpoint of ``adaptrack adapt
        fit`` before Lightning sees it, so that a corrupt or truncated file, one of ``adaptrack track``
        or one that needs pickled code ends in one line naming it. The image size and channels are the
        data module's options linked into the model; a model trained at 32×32 RGB must be fed 32×32
        RGB whatever the defaults say, so ``validate``, ``test`` and ``predict`` take them from the
        checkpoint. ``predict`` takes the class names too, so that it needs neither the training data
        nor the options it was trained with: the checkpoint alone rebuilds the model.
        """
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path:
            super()._parse_ckpt_path()
            return
        hparams = adapt_checkpoint_hparams(ckpt_path)
        super()._parse_ckpt_path()
        if subcommand not in ("validate", "test", "predict"):
            return
        for model_key, data_key in INPUT_KEYS.items():
            value = hparams.get(model_key, LEGACY_INPUT.get(model_key))
            if value is not None:  # the data option and its linked model option (links ran at parse time)
                self.config[subcommand]["data"][data_key] = value
                self.config[subcommand]["model"][model_key] = value
        if subcommand == "predict" and hparams.get("class_names"):
            self.config[subcommand]["data"]["known_classes"] = list(hparams["class_names"])

    def before_instantiate_classes(self) -> None:
        """Apply ``--threads``, default loggers follow ``trainer.default_root_dir``; refuse non-finite
        numbers and unwritable output folders before anything is built or written."""
        prepare_run_config(active_config(self), DEFAULT_ROOT)
        self._resolve_ddp()
        self._resolve_checkpoint_mode()

    def _resolve_checkpoint_mode(self) -> None:
        """``--checkpoint.mode auto`` → the monitored validator's mode; refuse monitors that read target labels."""
        config = active_config(self)
        if config.get("checkpoint") is not None:
            method = config.get("model", {}).get("method") if config.get("model") is not None else None
            adversarial = METHODS[str(method)].domain_adversarial if str(method) in METHODS else None
            resolve_checkpoint_mode(config["checkpoint"], adversarial)

    def _prepare(self, stage: str) -> None:
        """Load and prepare the data of ``stage`` before the trainer starts (and its loggers create
        their folders), so that a bad option or file (k larger than a class, an empty folder, …)
        fails before anything is trained or written."""
        self.datamodule.setup(stage)

    def _resolve_ddp(self) -> None:
        """``--trainer.strategy ddp`` with the DDP options the configured method and update need
        (:meth:`DomainAdaptationModule.ddp_find_unused_parameters`)."""
        config = active_config(self)
        model = config.get("model")
        if model is not None:
            resolve_ddp_strategy(config, DomainAdaptationModule.ddp_find_unused_parameters(
                str(model.get("method")), str(model.get("update"))))

    def before_fit(self) -> None:
        """Prepare the training sets (see :meth:`_prepare`)."""
        self._prepare("fit")

    def before_validate(self) -> None:
        """Load the validation sets (see :meth:`_prepare`)."""
        self._prepare("validate")

    def before_test(self) -> None:
        """Load the test sets (see :meth:`_prepare`)."""
        self._prepare("test")

    def before_predict(self) -> None:
        """Load the images to classify (see :meth:`_prepare`)."""
        self._prepare("predict")


def build_cli(args: list[str], run: bool = True) -> AdaptCLI:
    """Construct (and by default run) the CLI on ``args``."""
    warnings.filterwarnings("ignore", message=".*LightningCLI's args parameter is intended.*")
    return AdaptCLI(DomainAdaptationModule, DomainAdaptationDataModule, args=args, run=run,
                    trainer_defaults=TRAINER_DEFAULTS, save_config_kwargs={"overwrite": True},
                    parser_kwargs={"prog": "adaptrack adapt", "description": __doc__})


def compare(argv: list[str]) -> int:
    """``adaptrack adapt compare``: fit each method with the same config, print one table."""
    parser = argparse.ArgumentParser(
        prog="adaptrack adapt compare",
        description="Fit several methods with the same config and data; print target accuracy and wall time. "
                    "Options after -- go to every `adaptrack adapt fit` run (e.g. -- --trainer.max_epochs 3).")
    parser.add_argument("--config", action="append", default=[], help="config YAML (repeatable)")
    parser.add_argument("--methods", nargs="+", default=["source_only", "self_learning"], choices=sorted(METHODS))
    ns, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    rows = []
    for method in ns.methods:
        print(f"\n=== {method}: {METHODS[method].description}", flush=True)
        fit_args = ["fit"] + [x for c in ns.config for x in ("--config", c)] + ["--model.method", method, *extra]
        start = time.perf_counter()
        cli = build_cli(fit_args)
        report = next(cb for cb in cli.trainer.callbacks if isinstance(cb, AdaptationReport))
        rows.append({**{k: report.result.get(k) for k in REPORT_COLUMNS}, "wall s": time.perf_counter() - start})
    print("\n" + format_table(rows, REPORT_COLUMNS, title="adaptrack adapt compare (target labels used only "
                                                         "for reporting; wall s includes data loading)"))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``adaptrack adapt``; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    cmd = args[0] if args and not args[0].startswith("-") else None
    prog = f"adaptrack adapt {cmd}" if cmd else "adaptrack adapt"
    if cmd == "compare":
        return run_command(prog, lambda: compare(args[1:]))
    if cmd == "export":
        from adaptrack.adapt.export import export_command

        return run_command(prog, lambda: export_command(args[1:]))
    return run_command(prog, lambda: build_cli(args))
