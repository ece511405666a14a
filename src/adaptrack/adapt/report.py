"""End-of-fit report: accuracy and pseudo-label table, JSON, and a PNG of the training curves."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger

from adaptrack.adapt.data.base import AnySet
from adaptrack.adapt.module import DomainAdaptationModule
from adaptrack.adapt.predict import predict_probs
from adaptrack.common.files import atomic_write
from adaptrack.common.report import format_table, plot_curves, read_metrics_csv

REPORT_COLUMNS = ["method", "source acc %", "target acc %", "target dev acc %", "pseudo-labeled %",
                  "pseudo-label acc %", "epochs", "steps", "wall s"]
"""Columns of the end-of-fit table. ``target acc %`` is the scored target test split; ``target dev acc %``
is the unlabeled training pool (its labels are never trained on: a development figure for tuning)."""


def accuracy(probs: torch.Tensor, labels: torch.Tensor | None) -> float:
    """Accuracy in percent; NaN when labels are unknown."""
    if labels is None or labels.numel() == 0:
        return float("nan")
    return float((probs.argmax(1) == labels).float().mean()) * 100.0


def pseudo_label_stats(probs: torch.Tensor, labels: torch.Tensor | None, threshold: float) -> tuple[float, float]:
    """Share (%) of images whose score exceeds ``threshold``, and their accuracy (%, NaN if unknown)."""
    scores, predicted = probs.max(1)
    selected = scores > threshold
    share = float(selected.float().mean()) * 100.0
    if labels is None or not bool(selected.any()):
        return share, float("nan")
    return share, float((predicted[selected] == labels[selected]).float().mean()) * 100.0


class AdaptationReport(L.Callback):
    """At the end of ``fit``: evaluate the final model, print a table, write JSON and a PNG.

    Target labels are used here only to report; nothing here feeds back into training. Under DDP
    only rank 0 evaluates (the whole sets, with its weights: those of every rank) and writes.

    Args:
        print_table: Print the table to stdout.
    """

    def __init__(self, print_table: bool = True) -> None:
        self.print_table = print_table
        self._start = 0.0
        self.result: dict[str, Any] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        # every rank asks: under DDP ``trainer.log_dir`` is a collective (rank 0's folder, broadcast)
        log_dir = Path(trainer.log_dir or trainer.default_root_dir)
        if trainer.global_rank != 0:  # one writer: rank 0 evaluates and writes the report
            return
        assert isinstance(pl_module, DomainAdaptationModule)
        wall = time.perf_counter() - self._start
        dm = trainer.datamodule
        sets: dict[str, AnySet] = {"source/test": dm.image_set("source", "test"),
                                     "target/pool": dm.unlabeled_target(),
                                     "target/test": dm.image_set("target", "test")}
        probs = {k: torch.cat([predict_probs(pl_module, x) for x in dm.uint8_batches(s)])  # (N, K): memory or disk
                 for k, s in sets.items()}
        share, pl_acc = pseudo_label_stats(probs["target/pool"], sets["target/pool"].labels,
                                           pl_module.pseudo_config.threshold)
        row = {
            "method": pl_module.hparams.method,
            "source acc %": accuracy(probs["source/test"], sets["source/test"].labels),
            "target acc %": accuracy(probs["target/test"], sets["target/test"].labels),
            "target dev acc %": accuracy(probs["target/pool"], sets["target/pool"].labels),
            "pseudo-labeled %": share,
            "pseudo-label acc %": pl_acc,
            "epochs": trainer.current_epoch,
            "steps": trainer.global_step,
            "wall s": wall,
        }
        self.result = {**row, "source": dm.hparams.source, "target": dm.hparams.target,
                       "update": pl_module.update, "pseudo_view": pl_module.pseudo_config.view,
                       "self_learning_started_at": pl_module.gate.state.start_progress,
                       "self_learning_start_reason": pl_module.gate.state.start_reason,
                       "self_learning_halted": pl_module.gate.state.halted,
                       "training_sets": dm.preparation, "log_dir": str(log_dir)}
        with atomic_write(log_dir / "report.json") as handle:
            json.dump(self.result, handle, indent=2)
        curves = self._plot(trainer, log_dir)
        if self.print_table:
            title = (f"adaptrack adapt: {dm.hparams.source} -> {dm.hparams.target} "
                     f"(final model; target labels used for reporting only)")
            print("\n" + format_table([row], REPORT_COLUMNS, title=title))
            for name, counts in dm.preparation.items():
                print(f"training set {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            print(f"report: {log_dir / 'report.json'}" + (f"   curves: {curves}" if curves else ""))

    @staticmethod
    def _plot(trainer: L.Trainer, log_dir: Path) -> Path | None:
        csv_path = next((Path(lg.log_dir) / "metrics.csv" for lg in trainer.loggers if isinstance(lg, CSVLogger)),
                        None)
        if csv_path is None or not csv_path.is_file():
            return None
        for logger in trainer.loggers:
            logger.save()
        series = read_metrics_csv(csv_path)
        panels = {
            "losses": ["train/source_loss", "train/domain_loss", "train/self_learning_loss",
                       "train/minority_shot_loss"],
            "accuracy": ["val/source_acc", "report/target_acc"],
            "pseudo labels": ["train/pseudo_share", "pseudo/share", "pseudo/accuracy"],
        }
        return plot_curves(series, log_dir / "curves.png", panels, title="training curves")
