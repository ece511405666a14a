"""Domain adaptation with self-learning (patent US12394188B2).

Python API::

    import adaptrack.adapt
    clf = adaptrack.adapt.load("runs/adapt/logs/version_0/checkpoints/last.ckpt")
    preds = clf.predict(["a.png", "b.png"])     # or a (N, C, H, W) tensor / array
    preds.names, preds.confidence, preds.top_k(3)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adaptrack.adapt.predict import Classifier


def load(checkpoint: str) -> Classifier:
    """Load a trained checkpoint for inference; see :func:`adaptrack.adapt.predict.load`."""
    from adaptrack.adapt.predict import load as _load

    return _load(checkpoint)
