"""Inference (FIG. 30): the Python API (PyTorch or onnxruntime backend) and the CSV prediction writer.

Inference rebuilds only the networks from a checkpoint (:func:`load_network`), never the training
module; :func:`load` also takes an ONNX export folder (:mod:`adaptrack.adapt.export`). One
:class:`Classifier` type serves both, and its ``predict`` takes what users hold (paths, PIL images,
HWC arrays, CHW tensors).
"""

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
from PIL import Image
from torch import nn

from adaptrack.adapt.config import NetworkConfig
from adaptrack.adapt.data.augment import convert_channels, imagenet_affine, resize_uint8, to_float
from adaptrack.adapt.data.images import read_images
from adaptrack.adapt.module import DomainAdaptationModule
from adaptrack.adapt.networks import AdaptationNetwork, build_network
from adaptrack.adapt.step import CHANNELS_LAST
from adaptrack.common.errors import DataError
from adaptrack.common.files import atomic_write, safe_torch_load
from adaptrack.common.images import WIDE_MODES, _to_8_bit
from adaptrack.common.onnx import ort_session
from adaptrack.common.training import as_group


@torch.no_grad()
def predict_probs(model: nn.Module, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Softmax ``(N, K)`` of uint8 images ``(N, C, H, W)`` already at the model's size (S52–S54).

    Args:
        model: The training module or its :class:`~adaptrack.adapt.networks.AdaptationNetwork`
            (anything whose forward maps normalized images to class logits); put in eval mode for
            the call and restored afterwards.
        images: uint8 images at the model's size and channels.
        batch_size: Images per forward pass.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [model(to_float(images[i:i + batch_size].to(device)).contiguous(memory_format=CHANNELS_LAST))
           .softmax(1).cpu() for i in range(0, images.shape[0], batch_size)]
    model.train(was_training)
    if out:
        return torch.cat(out)
    k = model.hparams.num_classes if hasattr(model, "hparams") else model.classifier[-1].out_features
    return torch.empty(0, int(k))


NORMALIZATION = {"scale": 1 / 255, "mean": 0.5, "std": 0.5}
"""The networks' input: ``(uint8 / 255 - mean) / std`` per channel, i.e. [0, 255] onto [−1, 1] (:func:`to_float`)."""


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


class InferenceNetwork(nn.Module):
    """The checkpoint's input normalisation (``model.input_norm``), then feature extractor + class classifier.

    Takes images scaled to [-1, 1] (:func:`~adaptrack.adapt.data.augment.to_float`), as the training
    module's ``forward`` does, so inference, the ONNX graph and training see the same network input:
    ``symmetric`` feeds them as they are, ``imagenet`` maps them to ImageNet mean/std first.

    Args:
        net: FIG. 4's networks.
        input_norm: ``symmetric`` or ``imagenet`` (3 channels).
    """

    def __init__(self, net: AdaptationNetwork, input_norm: str = "symmetric") -> None:
        super().__init__()
        self.net = net
        self.input_norm = input_norm
        scale, shift = imagenet_affine() if input_norm == "imagenet" else (torch.ones(1), torch.zeros(1))
        self.register_buffer("input_scale", scale.view(1, -1, 1, 1), persistent=False)  # (1, C, 1, 1)
        self.register_buffer("input_shift", shift.view(1, -1, 1, 1), persistent=False)  # (1, C, 1, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, K)`` of images ``(B, C, S, S)`` in [-1, 1]."""
        images = images * self.input_scale + self.input_shift  # (B, C, S, S)
        return self.net(images.contiguous(memory_format=CHANNELS_LAST))


class TorchBackend:
    """Runs the rebuilt PyTorch network (feature extractor + class classifier) in eval mode."""

    name = "torch"

    def __init__(self, net: nn.Module) -> None:
        self.net = net.eval()

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, K)`` of normalized float images ``(B, C, S, S)``."""
        return self.net(images.contiguous(memory_format=CHANNELS_LAST))


class OnnxBackend:
    """Runs an ONNX export folder's ``model.onnx`` with onnxruntime (CPU).

    Args:
        model_path: The ``model.onnx`` file.
        threads: Intra-op threads of the session.
    """

    name = "onnxruntime"

    def __init__(self, model_path: str | Path, threads: int = 2) -> None:
        try:
            self.session = ort_session(model_path, threads)
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidProtobuf types
            raise DataError(f"not a readable ONNX model ({type(exc).__name__}: {str(exc).strip()[:200]})",
                            model_path) from exc
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if inputs != ["image"] or "logits" not in outputs:
            raise DataError(f"not a model of `adaptrack adapt export` (inputs {inputs}, outputs {outputs}; "
                            "expected input 'image' and output 'logits')", model_path)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits ``(B, K)`` of normalized float images ``(B, C, S, S)``."""
        (out,) = self.session.run(["logits"], {"image": images.float().contiguous().numpy()})
        return torch.from_numpy(out)


Backend = TorchBackend | OnnxBackend


class Classifier:
    """A trained classifier ready for inference (feature extractor + class classifier), on either backend.

    Args:
        backend: :class:`TorchBackend` (from a ``.ckpt``) or :class:`OnnxBackend` (from an export folder).
        class_names: Name of each class index.
        image_size: Square input size of the network.
        channels: Input channels of the network (1 or 3).
    """

    def __init__(self, backend: Backend, class_names: list[str], image_size: int, channels: int) -> None:
        self.backend = backend
        self.class_names = list(class_names)
        self.image_size = int(image_size)
        self.channels = int(channels)

    def as_uint8(self, images: Any) -> torch.Tensor:
        """What :meth:`predict` feeds the network, before normalization: uint8 ``(N, C, S, S)``."""
        return as_uint8_batch(images, self.channels, self.image_size)

    @torch.no_grad()
    def predict(self, images: Any, batch_size: int = 256) -> Predictions:
        """Classify images.

        Args:
            images: Any of: an image file path or a list of them; a PIL image or a list of them; a
                NumPy array ``(H, W)``, ``(H, W, C)`` or ``(N, H, W, C)`` (channels last, C = 1, 3 or
                4 with alpha dropped); a tensor ``(C, H, W)`` or ``(N, C, H, W)`` (channels first;
                ``(N, H, W)`` is a stack of gray images); a list mixing these. uint8 in [0, 255],
                or floats in [0, 1]; 16-bit integers are scaled. Converted to the model's channels
                (gray ↔ RGB) and resized to its size.
            batch_size: Images per forward pass.
        """
        x = self.as_uint8(images)  # (N, C, S, S) uint8
        chunks = [self.backend.logits(to_float(x[i:i + batch_size])).softmax(1)
                  for i in range(0, x.shape[0], batch_size)]
        probs = torch.cat(chunks)  # (N, K)
        confidence, labels = probs.max(1)
        return Predictions(labels, [self.class_names[i] for i in labels.tolist()], confidence, probs)


def _pil_array(image: Image.Image, channels: int) -> np.ndarray:
    """A PIL image as ``(H, W, channels)`` uint8, converted as image files are (16-bit gray scaled, CMYK → RGB)."""
    if image.mode in WIDE_MODES:
        image = _to_8_bit(image, Path("<PIL image>"), "PIL image")
    array = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    return array[:, :, None] if array.ndim == 2 else array  # (H, W, C)


def _channels_last(shape: tuple[int, ...], prefer_last: bool) -> bool:
    """Whether an image array's channel axis is its last (``…, H, W, C``) rather than ``…, C, H, W``."""
    last, first = shape[-1] in (1, 3, 4), shape[-3] in (1, 3, 4)
    if last != first:
        return last
    return prefer_last


def _array_to_nchw(array: np.ndarray, prefer_last: bool) -> np.ndarray:
    """Any supported array layout as ``(N, C, H, W)`` (see :meth:`Classifier.predict`)."""
    if array.ndim == 2:  # (H, W) gray
        return array[None, None]
    if array.ndim == 3:
        last, first = array.shape[-1] in (1, 3, 4), array.shape[0] in (1, 3, 4)
        if not last and not first:  # (N, H, W): gray stack
            return array[:, None]
        if _channels_last(array.shape, prefer_last):
            return array.transpose(2, 0, 1)[None]  # (H, W, C) -> (1, C, H, W)
        return array[None]  # (C, H, W)
    if array.ndim == 4:
        if not (array.shape[-1] in (1, 3, 4) or array.shape[1] in (1, 3, 4)):
            raise ValueError(f"cannot tell the channels of images of shape {tuple(array.shape)}: pass (N, H, W, C) "
                             "or (N, C, H, W) with C = 1, 3 or 4")
        return array.transpose(0, 3, 1, 2) if _channels_last(array.shape, prefer_last) else array
    raise ValueError(f"cannot predict on an array of shape {tuple(array.shape)}: pass (H, W), (H, W, C), "
                     "(N, H, W, C), (C, H, W) or (N, C, H, W) images")


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Pixel values as uint8: uint8 kept, floats in [0, 1] (else [0, 255]) scaled, 16-bit integers scaled."""
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError("cannot predict on images with NaN or infinite pixel values")
        scale = 255.0 if array.size and float(array.max()) <= 1.0 else 1.0
        return np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer):
        wide = array.size and (array.dtype == np.uint16 or int(array.max()) > 255)
        values = array.astype(np.int64)
        if wide:
            values = (values * 255 + 32767) // 65535  # 16-bit range onto 0..255, rounded
        return np.clip(values, 0, 255).astype(np.uint8)
    raise ValueError(f"cannot predict on images of dtype {array.dtype}; pass uint8, 16-bit integer or float pixels")


def as_uint8_batch(images: Any, channels: int, size: int) -> torch.Tensor:
    """The images a user holds as one uint8 ``(N, channels, size, size)`` batch (see :meth:`Classifier.predict`).

    Raises:
        TypeError: An input of another type (the message names it and lists what is accepted).
        ValueError: An array whose layout or values cannot be images.
        DataError: An unreadable image file (naming it).
    """
    if isinstance(images, (str, Path)):
        images = [images]
    if isinstance(images, Image.Image):
        images = _pil_array(images, channels)  # (H, W, C)
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("no images to predict on (an empty list)")
        if all(isinstance(p, (str, Path)) for p in images):
            return read_images([Path(p) for p in images], channels=channels,  # type: ignore[arg-type]
                               size=(size, size))[0]
        return torch.cat([as_uint8_batch(item, channels, size) for item in images])
    prefer_last = isinstance(images, np.ndarray)  # NumPy / PIL convention HWC, torch convention CHW
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if not isinstance(images, np.ndarray):
        raise TypeError(f"cannot predict on {type(images).__name__}; pass image paths, PIL images, NumPy arrays "
                        "(H, W[, C]) or (N, H, W, C), or tensors (C, H, W) or (N, C, H, W), or a list of them")
    array = _array_to_nchw(_to_uint8(images), prefer_last)  # (N, C, H, W)
    if array.shape[0] == 0:
        raise ValueError("no images to predict on (an empty batch)")
    if array.shape[1] == 4:
        array = array[:, :3]  # RGBA: alpha dropped
    batch = torch.from_numpy(np.require(array, requirements=["C", "W"]))  # (N, C, H, W), a writable copy if needed
    return resize_uint8(convert_channels(batch, channels), size)


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


def load_network(checkpoint: str | Path) -> tuple[InferenceNetwork, dict[str, Any]]:
    """Rebuild only FIG. 4's networks from a checkpoint of ``adaptrack adapt fit``, in eval mode.

    The hyperparameters' ``network`` group, ``in_channels``, ``num_classes`` and ``image_size``
    rebuild the networks (:func:`~adaptrack.adapt.networks.build_network`); the state dict's
    ``net.*`` entries fill them; ``input_norm`` (default ``symmetric``, as checkpoints before it)
    sets the input normalisation in front. No training code (module, method, data) is built and no
    pretrained-weights file is read.

    Returns:
        The network (:class:`InferenceNetwork`: [-1, 1] images → class logits) and the checkpoint's
        hyperparameters.

    Raises:
        DataError: See :func:`read_adapt_checkpoint`; also when its weights do not fit the networks
            its hyperparameters describe.
    """
    ckpt = read_adapt_checkpoint(checkpoint)
    hp = dict(ckpt["hyper_parameters"])
    try:
        n = as_group(NetworkConfig, hp["network"], "network")
        net = build_network(n.preset, int(hp.get("in_channels", 1)), int(hp.get("num_classes", 10)),
                            int(hp.get("image_size", 28)), channels=n.conv_channels, class_hidden=n.class_hidden,
                            domain_hidden=n.domain_hidden, dropout=n.dropout, bottleneck_dim=n.bottleneck_dim)
        state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
        net.load_state_dict(state)
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise DataError(f"not a checkpoint of `adaptrack adapt fit` ({exc})", checkpoint) from exc
    return InferenceNetwork(net, str(hp.get("input_norm", "symmetric"))).eval(), hp


def class_names_of(hparams: dict[str, Any]) -> list[str]:
    """The class names a checkpoint records (their indices as text when it records none)."""
    return list(hparams.get("class_names") or [str(i) for i in range(int(hparams.get("num_classes", 10)))])


def load(path: str | Path, threads: int = 2) -> Classifier:
    """Load a classifier for inference: a ``.ckpt`` of ``adaptrack adapt fit`` or an ``adaptrack adapt export`` folder.

    Args:
        path: A checkpoint (PyTorch backend; ``torch.load(weights_only=True)``) or a folder holding
            ``model.onnx`` and ``meta.json`` (onnxruntime backend).
        threads: onnxruntime intra-op threads (ONNX folders only).

    Raises:
        DataError: See :func:`load_network`; or a folder that is not an export folder.
    """
    path = Path(path)
    if path.is_dir():
        from adaptrack.adapt.export import read_export_meta

        meta = read_export_meta(path)
        return Classifier(OnnxBackend(path / "model.onnx", threads), meta["class_names"], meta["input_size"],
                          meta["channels"])
    net, hp = load_network(path)
    return Classifier(TorchBackend(net), class_names_of(hp), int(hp.get("image_size", 28)),
                      int(hp.get("in_channels", 1)))


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
