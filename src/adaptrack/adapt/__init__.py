"""Domain adaptation with self-learning (patent US12394188B2).

Python API::

    import adaptrack.adapt
    clf = adaptrack.adapt.load("runs/adapt/logs/version_0/checkpoints/last.ckpt")  # PyTorch
    clf = adaptrack.adapt.load("runs/adapt/onnx")       # an `adaptrack adapt export` folder: onnxruntime
    preds = clf.predict(["a.png", "b.png"])     # or PIL images, (N, H, W, C) arrays, (N, C, H, W) tensors
    preds.names, preds.confidence, preds.top_k(3)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adaptrack.adapt.predict import Classifier


def load(path: str | Path, threads: int = 2) -> Classifier:
    """Load a trained classifier for inference from a ``.ckpt`` or an ONNX export folder.

    See :func:`adaptrack.adapt.predict.load`.
    """
    from adaptrack.adapt.predict import load as _load

    return _load(path, threads)
