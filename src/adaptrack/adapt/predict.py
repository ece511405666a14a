"""Inference (FIG. 30): the Python API and the CSV prediction writer."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from adaptrack.adapt.data.augment import convert_channels, resize_uint8, to_float
from adaptrack.adapt.data.images import read_images
from adaptrack.adapt.module import DomainAdaptationModule, build_module
from adaptrack.common.errors import DataError
from adaptrack.common.files import atomic_write, safe_torch_load


@torch.no_grad()
def predict_probs(model: DomainAdaptationModule, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Softmax ``(N, K)`` of uint8 images ``(N, C, H, W)`` already at the model's size (S52–S54).

    The model is put in eval mode for the call and restored afterwards.
    """
    was_training = model.training
    model.eval()
    out = [model(to_float(images[i:i + batch_size].to(model.device))).softmax(1).cpu()
           for i in range(0, images.shape[0], batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, model.hparams.num_classes)


@dataclass
class Predictions:
    """Predictions for N images.

    Attributes:
        labels: ``(N,)`` predicted class index (S54: the class of the largest softmax value).
        names: Predicted class names.
        confidence: ``(N,)`` softmax value of the predicted class.
        probs: ``(N, K)`` all softmax values.
    """

    labels: torch.Tensor
    names: list[str]
    confidence: torch.Tensor
    probs: torch.Tensor

    def top_k(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values, indices)`` of the k most likely classes, each ``(N, k)``."""
        return self.probs.topk(min(k, self.probs.shape[1]), dim=1)


class Classifier:
    """A trained model ready for inference (feature extractor + class classifier)."""

    def __init__(self, module: DomainAdaptationModule) -> None:
        self.module = module.eval()
        hp = module.hparams
        self.class_names: list[str] = list(module.class_names)
        self.image_size: int = hp.image_size
        self.channels: int = hp.in_channels

    def _as_uint8(self, images: Any) -> torch.Tensor:
        if isinstance(images, (str, Path)):
            images = [images]
        if isinstance(images, (list, tuple)):
            if all(isinstance(p, (str, Path)) for p in images):
                size = (self.image_size, self.image_size)
                return read_images([Path(p) for p in images], channels=self.channels, size=size)[0]  # type: ignore[arg-type]
            return torch.cat([self._as_uint8(p) for p in images])
        if isinstance(images, np.ndarray):
            images = torch.from_numpy(images)
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"cannot predict on {type(images).__name__}; pass paths, arrays or tensors")
        if images.ndim == 2:
            images = images[None, None]
        elif images.ndim == 3:
            images = images[None] if images.shape[0] in (1, 3) else images[:, None]
        if images.dtype != torch.uint8:
            if images.is_floating_point() and float(images.max()) <= 1.0:
                images = images * 255.0
            images = images.round().clamp(0, 255).to(torch.uint8)
        return resize_uint8(convert_channels(images, self.channels), self.image_size)

    @torch.no_grad()
    def predict(self, images: Any, batch_size: int = 1024) -> Predictions:
        """Classify images.

        Args:
            images: Image file paths, a uint8 or float (0–1) tensor/array ``(N, C, H, W)``,
                ``(N, H, W)`` or ``(H, W)``. Converted to the model's channels and size.
            batch_size: Images per forward pass.
        """
        x = self._as_uint8(images)  # (N, C, S, S) uint8
        probs = predict_probs(self.module, x, batch_size)  # (N, K)
        confidence, labels = probs.max(1)
        return Predictions(labels, [self.class_names[i] for i in labels.tolist()], confidence, probs)


TRACK_META_KEY = "adaptrack_track"
"""The entry every ``adaptrack track`` checkpoint has (see :mod:`adaptrack.track.inference.checkpoints`)."""


def read_adapt_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint written by ``adaptrack adapt fit`` (``torch.load(weights_only=True)``).

    Raises:
        DataError: The file is missing, corrupt, truncated, needs pickled code, or is not a checkpoint
            of ``adaptrack adapt fit`` (e.g. one of ``adaptrack track``); the message names it.
    """
    ckpt = safe_torch_load(path)
    if isinstance(ckpt, dict) and TRACK_META_KEY in ckpt:
        raise DataError("this is a checkpoint of `adaptrack track`, not of `adaptrack adapt fit`", path)
    hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hparams, dict) or "state_dict" not in ckpt or "network" not in hparams:
        raise DataError("not a checkpoint of `adaptrack adapt fit` (no model hyperparameters and state_dict)",
                        path)
    return ckpt


def adapt_checkpoint_hparams(path: str | Path) -> dict[str, Any]:
    """The model hyperparameters of a checkpoint of ``adaptrack adapt fit`` (see :func:`read_adapt_checkpoint`)."""
    return dict(read_adapt_checkpoint(path)["hyper_parameters"])


def load(checkpoint: str | Path) -> Classifier:
    """Load a checkpoint written by ``adaptrack adapt fit`` (``torch.load(weights_only=True)``).

    Raises:
        DataError: See :func:`read_adapt_checkpoint`; also when its weights do not fit the model its
            hyperparameters describe.
    """
    ckpt = read_adapt_checkpoint(checkpoint)
    try:
        module = build_module(ckpt["hyper_parameters"])
        module.load_state_dict(ckpt["state_dict"])
    except (ValueError, RuntimeError) as exc:
        raise DataError(f"not a checkpoint of `adaptrack adapt fit` ({exc})", checkpoint) from exc
    return Classifier(module)


def write_predictions_csv(path: str | Path, files: Sequence[str], probs: torch.Tensor, class_names: Sequence[str],
                          top_k: int = 3) -> Path:
    """Write one row per image: file, predicted class, its softmax confidence, top-k ``class:prob``."""
    values, indices = probs.topk(min(top_k, probs.shape[1]), dim=1)
    with atomic_write(path, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "predicted_class", "confidence", f"top{values.shape[1]}"])
        for name, vals, idx in zip(files, values.tolist(), indices.tolist(), strict=True):
            top = " ".join(f"{class_names[i]}:{v:.4f}" for v, i in zip(vals, idx, strict=True))
            writer.writerow([name, class_names[idx[0]], f"{vals[0]:.4f}", top])
    return Path(path)


class PredictionCSVWriter(BasePredictionWriter):
    """Collects ``predict`` outputs and writes them as CSV (atomically) at the end of the epoch.

    Under DDP the prediction loader is not sharded (every rank predicts every image) and only
    rank 0 writes the file.

    Args:
        output: Destination CSV file.
        top_k: Number of classes listed per image.
    """

    def __init__(self, output: str = "predictions.csv", top_k: int = 3) -> None:
        super().__init__(write_interval="epoch")
        self.output = output
        self.top_k = top_k

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Sequence[Any],
                           batch_indices: Sequence[Any]) -> None:
        if not predictions or not trainer.is_global_zero:  # under DDP every rank predicts every image
            return
        batches = predictions[0] if isinstance(predictions[0], list) else predictions
        probs = torch.cat(list(batches))
        assert isinstance(pl_module, DomainAdaptationModule)
        path = write_predictions_csv(self.output, trainer.datamodule.predict_files, probs,
                                     pl_module.class_names, self.top_k)
        print(f"wrote {probs.shape[0]} predictions to {path}")
