"""ONNX export of both models and the onnxruntime tracker backend.

An export folder holds three graphs and a ``meta.json``:

* ``parts.onnx``: ``image (1, 3, S, S)`` -> ``heat``, ``size``, ``offset`` (first model);
* ``template.onnx``: ``image``, ``box (1, 4)`` -> ``kernel`` (second model, run once per target);
* ``subject.onnx``: ``image``, ``kernel``, ``prior (1, 1, h, w)`` -> ``heat``, ``size``, ``offset``,
  ``region`` (second model, every frame).

Exported with ``torch.onnx.export(dynamo=True)`` (the torch.export-based exporter; the legacy
TorchScript exporter is available as ``exporter="legacy"``). Agreement with PyTorch is checked on
export: every output within ``atol`` (default 1e-4 absolute; observed differences are ~1e-7).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from adaptrack.common.errors import DataError
from adaptrack.common.files import atomic_path, atomic_write, check_writable_dir
from adaptrack.common.onnx import ort_session
from adaptrack.track.inference.checkpoints import load_models
from adaptrack.track.inference.decoder import Maps, TrackerSettings
from adaptrack.track.models import PartDetector, SubjectModel

GRAPHS = {
    "parts": (["image"], ["heat", "size", "offset"]),
    "template": (["image", "box"], ["kernel"]),
    "subject": (["image", "kernel", "prior"], ["heat", "size", "offset", "region"]),
}
DEFAULT_ATOL = 1e-4


class _Template(nn.Module):
    def __init__(self, model: SubjectModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        return self.model.encode_template(image, box)


def example_inputs(part: PartDetector, subject: SubjectModel, input_size: int = 256,
                   seed: int = 0) -> dict[str, tuple[torch.Tensor, ...]]:
    """Deterministic inputs for each graph (batch 1)."""
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, 3, input_size, input_size, generator=g)  # (1, 3, S, S)
    box = torch.tensor([[0.3, 0.2, 0.2, 0.5]]) * input_size  # (1, 4)
    with torch.inference_mode():
        kernel = subject.encode_template(image, box)  # (1, C, kh, kw)
    h = input_size // subject.stride
    prior = torch.rand(1, 1, h, h, generator=g)  # (1, 1, h, w)
    return {"parts": (image,), "template": (image, box), "subject": (image, kernel.clone(), prior)}


def _run_torch(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> list[np.ndarray]:
    with torch.inference_mode():
        out = module(*inputs)
    out = out if isinstance(out, tuple) else (out,)
    return [o.numpy() for o in out]


def _session(path: Path, threads: int) -> object:
    return ort_session(path, threads)


def export_models(part: PartDetector, subject: SubjectModel, out_dir: str | Path, parts: list[str],
                  input_size: int = 256, settings: TrackerSettings | None = None, opset: int = 18,
                  exporter: Literal["dynamo", "legacy"] = "dynamo", atol: float = DEFAULT_ATOL,
                  ) -> dict[str, float]:
    """Export both models into ``out_dir`` and check onnxruntime against PyTorch.

    ``settings`` (the tracker's decoding settings) are recorded in ``meta.json`` under ``"tracker"``,
    as in ``fit`` checkpoints, beside the ``input_size`` the graphs are fixed to.

    Returns:
        Largest absolute difference per graph.

    Raises:
        RuntimeError: A graph disagrees with PyTorch by more than ``atol`` (nothing is left behind
            for that graph).
    """
    out_dir = Path(out_dir)
    part, subject = part.eval(), subject.eval()
    modules: dict[str, nn.Module] = {"parts": part, "template": _Template(subject), "subject": subject}
    inputs = example_inputs(part, subject, input_size)
    diffs: dict[str, float] = {}
    for name, module in modules.items():
        in_names, out_names = GRAPHS[name]
        expected = _run_torch(module, inputs[name])
        target = out_dir / f"{name}.onnx"
        with atomic_path(target) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, inputs[name], str(tmp), input_names=in_names, output_names=out_names,
                              opset_version=opset, dynamo=exporter == "dynamo", external_data=False)
            got = _session(tmp, 1).run(None, {k: v.numpy() for k, v in zip(in_names, inputs[name], strict=True)})
            diff = max(float(np.abs(a - b).max()) for a, b in zip(got, expected, strict=True))
            if not diff <= atol:
                raise RuntimeError(f"{target}: onnxruntime differs from PyTorch by {diff:.3g} > {atol}")
        diffs[name] = diff
    meta = {"parts": parts, "stride": subject.stride, "input_size": input_size,
            "tracker": (settings or TrackerSettings()).as_meta(), "opset": opset, "exporter": exporter,
            "max_abs_diff": diffs, "atol": atol}
    with atomic_write(out_dir / "meta.json") as fh:
        json.dump(meta, fh, indent=2)
    return diffs


class OnnxBackend:
    """onnxruntime backend of :class:`~adaptrack.track.inference.tracker.Tracker` (CPU).

    Args:
        export_dir: Folder written by :func:`export`.
        threads: Intra-op threads per session.
    """

    def __init__(self, export_dir: str | Path, threads: int = 2) -> None:
        export_dir = Path(export_dir)
        missing = [f"{n}.onnx" for n in GRAPHS if not (export_dir / f"{n}.onnx").is_file()]
        if missing or not (export_dir / "meta.json").is_file():
            raise DataError(f"not an ONNX export folder (missing {', '.join(missing) or 'meta.json'}); "
                            "write one with `adaptrack track export`", export_dir)
        self.meta = json.loads((export_dir / "meta.json").read_text())
        self.sessions = {n: _session(export_dir / f"{n}.onnx", threads) for n in GRAPHS}

    def _run(self, name: str, *inputs: torch.Tensor) -> Maps:
        feeds = {k: v.detach().numpy() for k, v in zip(GRAPHS[name][0], inputs, strict=True)}
        return tuple(torch.from_numpy(o) for o in self.sessions[name].run(None, feeds))

    def template(self, image: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        return self._run("template", image, box)[0]

    def parts(self, image: torch.Tensor) -> Maps:
        return self._run("parts", image)

    def subject(self, image: torch.Tensor, kernel: torch.Tensor, prior: torch.Tensor) -> Maps:
        return self._run("subject", image, kernel, prior)


def export(checkpoint: str, output: str, input_size: int | None = None, opset: int = 18,
           exporter: Literal["dynamo", "legacy"] = "dynamo", atol: float = DEFAULT_ATOL) -> dict[str, float]:
    """Export a ``fit`` checkpoint's two models to ONNX and verify them with onnxruntime.

    Args:
        checkpoint: Tracker checkpoint written by ``adaptrack track fit``.
        output: Folder for ``parts.onnx``, ``template.onnx``, ``subject.onnx`` and ``meta.json``.
        input_size: Side of the square network input; default the size the model was trained at
            (recorded in the checkpoint; 256 for checkpoints that do not record it).
        opset: ONNX opset.
        exporter: ``dynamo`` (torch.export based) or ``legacy`` (TorchScript based).
        atol: Largest accepted absolute difference between onnxruntime and PyTorch outputs.

    Returns:
        Largest absolute difference per graph.
    """
    check_writable_dir(output, "--output")
    part, subject, meta = load_models(checkpoint)
    size = int(input_size or meta.get("input_size") or 256)
    diffs = export_models(part, subject, output, meta["parts"], size,
                          TrackerSettings.from_meta(meta.get("tracker", {})), opset, exporter, atol)
    for name, d in diffs.items():
        print(f"{Path(output) / (name + '.onnx')}: max |onnxruntime - PyTorch| = {d:.2e} (atol {atol})")
    return diffs
