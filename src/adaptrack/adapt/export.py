"""``adaptrack adapt export``: the classifier (feature extractor + class classifier) as ONNX, with its ``meta.json``.

An export folder holds:

* ``model.onnx``: ``image (N, C, S, S)`` float32, normalized as ``meta.json`` says → ``logits (N, K)``
  and ``probs (N, K)`` (softmax); the batch axis is dynamic.
* ``meta.json``: class names, input size and channels, the preprocessing (colour conversion, resize,
  normalisation), the network preset, and the agreement with PyTorch measured at export.

Only the networks are rebuilt from the checkpoint (:func:`~adaptrack.adapt.predict.load_network`).
:func:`adaptrack.adapt.load` runs the folder with onnxruntime. Exported with
``torch.onnx.export(dynamo=True)`` by default; agreement with PyTorch is checked on export on a batch
of random images and on a single image (every output within ``atol``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from adaptrack.adapt.data.augment import to_float
from adaptrack.adapt.predict import NORMALIZATION, class_names_of, load_network
from adaptrack.common.errors import DataError
from adaptrack.common.files import atomic_path, atomic_write, check_writable_dir
from adaptrack.common.onnx import ort_session

FORMAT = "adaptrack-adapt-onnx"
FORMAT_VERSION = 1
INPUT_NAME = "image"
OUTPUT_NAMES = ("logits", "probs")
DEFAULT_ATOL = 1e-4
META_KEYS = ("class_names", "input_size", "channels", "preprocessing")


class _Exported(nn.Module):
    """Input normalisation + feature extractor + class classifier: [-1, 1] images → ``(logits, probs)``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net(image)  # (N, K)
        return logits, logits.softmax(1)


def preprocessing_meta(channels: int, size: int) -> dict[str, Any]:
    """How images become the graph's input (what :meth:`~adaptrack.adapt.predict.Classifier.predict` does)."""
    return {
        "color": "L (luminance 0.299 R + 0.587 G + 0.114 B)" if channels == 1 else "RGB (gray repeated)",
        "resize": f"bilinear, antialiased when shrinking, to {size}x{size} (aspect ratio not kept, no crop)",
        "layout": "NCHW float32",
        "scale": NORMALIZATION["scale"],
        "mean": [NORMALIZATION["mean"]] * channels,
        "std": [NORMALIZATION["std"]] * channels,
        "formula": "x = (uint8 / 255 - mean) / std",
    }


def example_batch(channels: int, size: int, batch_size: int, seed: int = 0) -> torch.Tensor:
    """Normalized random images ``(batch_size, C, S, S)`` from a fixed seed."""
    g = torch.Generator().manual_seed(seed)
    return to_float(torch.randint(0, 256, (batch_size, channels, size, size), generator=g, dtype=torch.uint8))


def _max_diff(got: list[np.ndarray], expected: tuple[torch.Tensor, ...]) -> dict[str, float]:
    return {name: float(np.abs(a - b.numpy()).max()) for name, a, b in zip(OUTPUT_NAMES, got, expected, strict=True)}


def export_network(net: nn.Module, output: str | Path, class_names: list[str], channels: int, size: int,
                   extra_meta: dict[str, Any] | None = None, opset: int = 18,
                   exporter: Literal["dynamo", "legacy"] = "dynamo", atol: float = DEFAULT_ATOL,
                   batch_size: int = 8, seed: int = 0) -> dict[str, float]:
    """Write ``output/model.onnx`` and ``output/meta.json``, checking onnxruntime against PyTorch first.

    Args:
        net: The networks (eval mode is set here).
        output: The export folder (created).
        class_names: Name of each class index.
        channels: Input channels.
        size: Square input size.
        extra_meta: More entries for ``meta.json`` (the checkpoint, the network group).
        opset: ONNX opset.
        exporter: ``dynamo`` (torch.export based) or ``legacy`` (TorchScript based).
        atol: Largest accepted absolute difference of every output.
        batch_size: Images in the check batch (a single image is checked too: the batch axis is dynamic).
        seed: Seed of the check images.

    Returns:
        Largest absolute difference of each output (``logits``, ``probs``) over both checks.

    Raises:
        RuntimeError: onnxruntime differs from PyTorch by more than ``atol`` (no file is left behind).
    """
    output = Path(output)
    module = _Exported(net.eval()).eval()
    batch = example_batch(channels, size, batch_size, seed)  # (B, C, S, S)
    single = batch[:1]  # (1, C, S, S)
    with torch.inference_mode():
        expected = [module(batch), module(single)]
    target = output / "model.onnx"
    with atomic_path(target) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        axes = {name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)}
        kwargs: dict[str, Any] = ({"dynamic_shapes": ({0: torch.export.Dim("batch", min=1)},)}
                                  if exporter == "dynamo" else {"dynamic_axes": axes})
        torch.onnx.export(module, (batch,), str(tmp), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                          opset_version=opset, dynamo=exporter == "dynamo", external_data=False, verbose=False,
                          **kwargs)
        session = ort_session(tmp, 1)
        diffs: dict[str, float] = dict.fromkeys(OUTPUT_NAMES, 0.0)
        for x, want in zip((batch, single), expected, strict=True):
            got = session.run(None, {INPUT_NAME: x.numpy()})
            diffs = {k: max(diffs[k], v) for k, v in _max_diff(got, want).items()}
        worst = max(diffs.values())
        if not worst <= atol:
            raise RuntimeError(f"{target}: onnxruntime differs from PyTorch by {worst:.3g} > atol {atol}")
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "class_names": list(class_names),
            "num_classes": len(class_names), "input_size": size, "channels": channels,
            "input": {"name": INPUT_NAME, "shape": ["batch", channels, size, size], "dtype": "float32"},
            "outputs": list(OUTPUT_NAMES), "preprocessing": preprocessing_meta(channels, size),
            **(extra_meta or {}), "opset": opset, "exporter": exporter,
            "check": {"images": batch_size, "seed": seed, "max_abs_diff": diffs, "atol": atol}}
    with atomic_write(output / "meta.json") as fh:
        json.dump(meta, fh, indent=2)
    return diffs


def read_export_meta(folder: str | Path) -> dict[str, Any]:
    """The ``meta.json`` of an export folder, checked.

    Raises:
        DataError: ``model.onnx`` or ``meta.json`` is missing, or ``meta.json`` is not one written by
            ``adaptrack adapt export`` (naming the folder or file).
    """
    folder = Path(folder)
    missing = [n for n in ("model.onnx", "meta.json") if not (folder / n).is_file()]
    if missing:
        raise DataError(f"not an export folder of `adaptrack adapt export` (missing {', '.join(missing)})", folder)
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"unreadable meta.json ({exc})", folder / "meta.json") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or any(k not in meta for k in META_KEYS):
        raise DataError(f"not the meta.json of `adaptrack adapt export` (needs format {FORMAT!r} and "
                        f"{', '.join(META_KEYS)}); is this a `adaptrack track export` folder?", folder / "meta.json")
    return meta


def export(checkpoint: str, output: str, opset: int = 18, exporter: Literal["dynamo", "legacy"] = "dynamo",
           atol: float = DEFAULT_ATOL, batch_size: int = 8) -> dict[str, float]:
    """Export a ``fit`` checkpoint's classifier to ONNX and verify it with onnxruntime.

    Args:
        checkpoint: Checkpoint written by ``adaptrack adapt fit``.
        output: Folder for ``model.onnx`` and ``meta.json`` (checked writable before anything is done).
        opset: ONNX opset.
        exporter: ``dynamo`` (torch.export based) or ``legacy`` (TorchScript based).
        atol: Largest accepted absolute difference between onnxruntime and PyTorch outputs.
        batch_size: Random images of the agreement check.

    Returns:
        Largest absolute difference of each output.
    """
    check_writable_dir(output, "--output")
    net, hp = load_network(checkpoint)
    size, channels = int(hp.get("image_size", 28)), int(hp.get("in_channels", 1))
    network = dict(hp["network"]) if isinstance(hp["network"], dict) else {}
    network.pop("weights", None)  # where the pretrained backbone came from: not needed, maybe private
    extra = {"checkpoint": str(checkpoint), "method": hp.get("method"), "network": network,
             "input_norm": net.input_norm}  # applied inside the graph, after the formula of "preprocessing"
    diffs = export_network(net, output, class_names_of(hp), channels, size, extra, opset, exporter, atol, batch_size)
    print(f"{Path(output) / 'model.onnx'}: {len(class_names_of(hp))} classes, input (N, {channels}, {size}, {size}); "
          + ", ".join(f"max |onnxruntime - PyTorch| {k} = {v:.2e}" for k, v in diffs.items())
          + f" (atol {atol}, {batch_size} images and 1)")
    print(f"{Path(output) / 'meta.json'}: class names and preprocessing")
    return diffs


def export_command(argv: list[str]) -> int:
    """``adaptrack adapt export``: parse ``argv`` into :func:`export`'s typed signature and run it."""
    from jsonargparse import auto_parser

    from adaptrack.common.cli import check_finite_config

    parser = auto_parser(export, as_positional=False, prog="adaptrack adapt export")
    config = parser.parse_args(argv)
    config.pop("config", None)
    check_finite_config(config)
    export(**vars(parser.instantiate(config)))
    return 0
