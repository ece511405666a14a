"""End-of-fit report: accuracy and pseudo-label table, the validators' checkpoint choices against the
oracle, JSON, a PNG of the training curves and ``report.html`` (:mod:`adaptrack.adapt.report_html`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import CSVLogger

from adaptrack.adapt.data.augment import to_float
from adaptrack.adapt.data.base import AnySet, take
from adaptrack.adapt.module import DomainAdaptationModule
from adaptrack.adapt.predict import predict_probs
from adaptrack.adapt.report_html import (
    Embedding,
    EmbeddingName,
    embed,
    per_class_accuracy,
    plot_confusion,
    plot_embeddings,
    plot_per_class,
    plot_pseudo,
    plot_validators,
    write_html,
)
from adaptrack.adapt.selection import SELECTION_COLUMNS, TARGET_KEY, rank_validators, select_epoch
from adaptrack.common.errors import ConfigError
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


@torch.no_grad()
def image_features(model: DomainAdaptationModule, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Feature extractor outputs ``(N, D)`` of uint8 images ``(N, C, H, W)``, in eval mode (restored after)."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, images.shape[0], batch_size):
        x = to_float(images[i:i + batch_size].to(model.device))  # (b, C, H, W) in [-1, 1]
        x = x * model.input_scale + model.input_shift  # the model's input normalisation, as in its forward
        out.append(model.net.features(x).cpu())
    model.train(was_training)
    return torch.cat(out)


class AdaptationReport(L.Callback):
    """At the end of ``fit``: evaluate the final model, rank the validators, print tables, write JSON,
    PNGs and ``report.html``.

    At every validation epoch it records the validators (``val/<name>``) and the target test
    accuracy; at the end, for each validator, the epoch a checkpoint monitor on it keeps and the
    target accuracy there, beside the oracle (best target accuracy) and the last epoch. At the start
    of training it embeds the features of a fixed subset of the source and target test images (the
    "before" picture). Both survive a resume (this callback's checkpoint state). Target labels are
    used here only to report; nothing here feeds back into training. Under DDP only rank 0 evaluates
    (the whole sets, with its weights: those of every rank) and writes.

    Args:
        print_table: Print the tables to stdout.
        html: Write ``report.html`` and its PNGs.
        embedding: 2-D embedding of the features: ``pca`` (fast, the default) or ``tsne`` (scikit-learn,
            PCA init; seconds per picture on a few hundred points, clearer clusters).
        embedding_points: Images per domain in the embedding (a fixed, seeded subset of each test split).
    """

    def __init__(self, print_table: bool = True, html: bool = True, embedding: EmbeddingName = "pca",
                 embedding_points: int = 200) -> None:
        if embedding not in ("tsne", "pca"):
            raise ConfigError(f"report.embedding={embedding!r} must be 'tsne' or 'pca'")
        self.print_table, self.html = print_table, html
        self.embedding, self.embedding_points = embedding, int(embedding_points)
        self._start = 0.0
        self.result: dict[str, Any] = {}
        self.history: list[dict[str, float]] = []
        self.before: Embedding | None = None

    # -- state across a resume -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The validation history and the "before" embedding (plain lists, dicts and tensors)."""
        return {"history": [dict(r) for r in self.history],
                "before": self.before.as_state() if self.before is not None else None}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (a resumed run reports its whole history)."""
        self.history = [dict(r) for r in state_dict.get("history", [])]
        before = state_dict.get("before")
        self.before = Embedding.from_state(before) if before is not None else None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.perf_counter()

    def _embedding_subset(self, trainer: L.Trainer) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """The fixed subset: ``embedding_points`` seeded picks of each test split (own generator)."""
        images, domain, labels = [], [], []
        for d, role in enumerate(("source", "target")):
            s = trainer.datamodule.image_set(role, "test")
            pick = torch.randperm(len(s), generator=torch.Generator().manual_seed(d))[:self.embedding_points]
            images.append(torch.cat(list(trainer.datamodule.uint8_batches(take(s, pick)))))  # memory or disk
            domain.append(np.full(len(pick), d))
            labels.append(s.labels[pick].numpy() if s.labels is not None else np.full(len(pick), -1))
        return torch.cat(images), np.concatenate(domain), np.concatenate(labels)

    def _embed(self, trainer: L.Trainer, model: DomainAdaptationModule) -> Embedding:
        images, domain, labels = self._embedding_subset(trainer)
        return Embedding(embed(image_features(model, images).numpy(), self.embedding), domain, labels)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # rank 0 only (it writes the report); a resumed run keeps the picture of the first start
        if self.html and self.before is None and trainer.global_rank == 0 and self.embedding_points > 0:
            assert isinstance(pl_module, DomainAdaptationModule)
            self.before = self._embed(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Record this epoch's validators and target accuracy (after logging; before the checkpoint save)."""
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        assert isinstance(pl_module, DomainAdaptationModule)
        record = {"epoch": float(trainer.current_epoch), "step": float(trainer.global_step)}
        for key in [v.key for v in pl_module.validators] + [TARGET_KEY]:
            if key in trainer.callback_metrics:
                record[key] = float(trainer.callback_metrics[key])
        self.history.append(record)

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
        monitor = next((cb.monitor for cb in trainer.checkpoint_callbacks if getattr(cb, "monitor", None)), None)
        selection = rank_validators(self.history, pl_module.validators, monitor)
        self.result = {**row, "source": dm.hparams.source, "target": dm.hparams.target,
                       "update": pl_module.update, "pseudo_view": pl_module.pseudo_config.view,
                       "self_learning_started_at": pl_module.gate.state.start_progress,
                       "self_learning_start_reason": pl_module.gate.state.start_reason,
                       "self_learning_halted": pl_module.gate.state.halted,
                       "training_sets": dm.preparation, "log_dir": str(log_dir),
                       "checkpoint_monitor": monitor, "selection": selection, "validation_history": self.history}
        with atomic_write(log_dir / "report.json") as handle:
            json.dump(self.result, handle, indent=2)
        curves = self._plot(trainer, log_dir)
        page = self._html(trainer, pl_module, log_dir, row, selection, probs["target/test"], sets["target/test"],
                          curves) if self.html else None
        if self.print_table:
            title = (f"adaptrack adapt: {dm.hparams.source} -> {dm.hparams.target} "
                     f"(final model; target labels used for reporting only)")
            print("\n" + format_table([row], REPORT_COLUMNS, title=title))
            if self.history:
                print("\n" + format_table(selection, SELECTION_COLUMNS, precision=4, title=(
                    "checkpoint selection without target labels: the epoch each validator selects, and the "
                    "target accuracy there (labels for reporting only)")))
            for name, counts in dm.preparation.items():
                print(f"training set {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            print(f"report: {log_dir / 'report.json'}" + (f"   curves: {curves}" if curves else "")
                  + (f"   html: {page}" if page else ""))

    def _html(self, trainer: L.Trainer, model: DomainAdaptationModule, log_dir: Path, row: dict[str, Any],
              selection: list[dict[str, Any]], target_probs: torch.Tensor, target: AnySet,
              curves: Path | None) -> Path:
        """The PNGs and ``report.html`` in ``log_dir``."""
        from sklearn.metrics import confusion_matrix

        names = list(model.class_names)
        figures: dict[str, Path | None] = {"training-curves": curves}
        selected = {v.key: select_epoch(self.history, v.key, v.mode) for v in model.validators}
        figures["validators"] = plot_validators(self.history, model.validators, selected,
                                                log_dir / "report_validators.png")
        csv_path = next((Path(lg.log_dir) / "metrics.csv" for lg in trainer.loggers if isinstance(lg, CSVLogger)),
                        None)
        series = read_metrics_csv(csv_path) if csv_path is not None and csv_path.is_file() else {}
        figures["pseudo-labels"] = plot_pseudo(series, log_dir / "report_pseudo.png")
        per_class: list[dict[str, Any]] = []
        if target.labels is not None and bool((target.labels >= 0).any()):
            known = target.labels >= 0
            confusion = confusion_matrix(target.labels[known].numpy(), target_probs[known].argmax(1).numpy(),
                                         labels=list(range(len(names))))
            accuracy = per_class_accuracy(confusion)
            per_class = [{"class": n, "images": int(confusion[i].sum()), "target acc %": float(accuracy[i])}
                         for i, n in enumerate(names)]
            figures["per-class"] = plot_per_class(accuracy, names, log_dir / "report_per_class.png")
            figures["confusion"] = plot_confusion(confusion, names, log_dir / "report_confusion.png")
        after = self._embed(trainer, model) if self.embedding_points > 0 else None
        figures["embedding"] = plot_embeddings(self.before, after, names, self.embedding,
                                               log_dir / "report_embedding.png")
        dm = trainer.datamodule
        return write_html(log_dir / "report.html",
                          title=f"adaptrack adapt: {dm.hparams.source} -> {dm.hparams.target} ({row['method']})",
                          summary=row, summary_columns=REPORT_COLUMNS, selection=selection,
                          validators=model.validators, per_class=per_class, figures=figures)

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
