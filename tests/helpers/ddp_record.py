"""A callback that records, per DDP rank, what each training step read and decided (for the DDP test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch

from adaptrack.adapt.batch import AdaptBatch
from adaptrack.adapt.module import DomainAdaptationModule
from adaptrack.track.data.types import ClipBatch


class RecordRanks(pl.Callback):
    """Write ``<out>/rank<r>.jsonl`` (one line per training step) and ``<out>/rank<r>_final.pt`` per rank.

    Each line holds the epoch and global step; the items the rank trained on (adapt: the source
    and target pool indices; track: ``[sequence, track id, first frame]`` of each clip); the
    trainable parameters' gradient as a sum and a sum of absolute values (the reduced gradient
    the optimizer applied, identical on every rank if DDP averaged it); and for adapt the
    self-learning gate's state after the step and whether the step self-learned. At the end of
    ``fit`` every rank saves its module's parameters and buffers. Every training epoch ends with a line of the
    validation metrics the rank sees (``val/*``, ``report/*``; validation runs before the epoch's end).

    Args:
        out: Folder of the files (created).
    """

    def __init__(self, out: str) -> None:
        self.out = out
        self._items: list[Any] = []

    def _write(self, trainer: pl.Trainer, record: dict[str, Any]) -> None:
        folder = Path(self.out)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"rank{trainer.global_rank}.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if isinstance(batch, AdaptBatch):
            assert batch.source_index is not None
            self._items = [batch.source_index.tolist(), batch.target_index.tolist()]
        elif isinstance(batch, ClipBatch):
            self._items = [[seq, int(track), int(frames[0])] for seq, track, frames in
                           zip(batch.sequences, batch.track_ids, batch.frame_indices, strict=True)]

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        grads = [p.grad.double() for p in pl_module.parameters() if p.requires_grad and p.grad is not None]
        record: dict[str, Any] = {
            "kind": "train", "epoch": trainer.current_epoch, "step": trainer.global_step, "items": self._items,
            "grad_sum": float(sum(g.sum() for g in grads)) if grads else None,
            "grad_abs": float(sum(g.abs().sum() for g in grads)) if grads else None,
            "grads": len(grads),
        }
        if isinstance(pl_module, DomainAdaptationModule):
            record["gate"] = pl_module.gate.state.as_dict()
            record["self_learning_on"] = float(trainer.callback_metrics["train/self_learning_on"])
            record["epoch_logits"] = (None if pl_module.epoch_logits is None
                                      else float(pl_module.epoch_logits.double().sum()))
        self._write(trainer, record)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after the epoch's validation: the reduced epoch values are in ``callback_metrics`` by now
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if k.startswith(("val/", "report/")) and isinstance(v, torch.Tensor) and v.numel() == 1}
        self._write(trainer, {"kind": "val", "epoch": trainer.current_epoch, "metrics": metrics})

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        Path(self.out).mkdir(parents=True, exist_ok=True)
        state = {"parameters": {k: v.detach().cpu() for k, v in pl_module.named_parameters()},
                 "buffers": {k: v.detach().cpu() for k, v in pl_module.named_buffers()}}
        torch.save(state, Path(self.out) / f"rank{trainer.global_rank}_final.pt")
