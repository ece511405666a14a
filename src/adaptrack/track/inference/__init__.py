"""Online inference of the part-aware tracker: from a checkpoint to a box and parts per frame.

Rebuilding the networks from checkpoints without training code (:mod:`.checkpoints`), the per-frame
decoder and its :class:`TrackerSettings` (:mod:`.decoder`), the :class:`Tracker` with its PyTorch
backend (:mod:`.tracker`), the ONNX export and onnxruntime backend (:mod:`.onnx_export`) and
``adaptrack track run`` over a frame folder or video (:mod:`.run`). Nothing here imports Lightning.
"""

from adaptrack.track.inference.checkpoints import load_models, load_part_detector
from adaptrack.track.inference.decoder import FrameDecoder, TrackerSettings
from adaptrack.track.inference.tracker import PartMaps, PartResult, Tracker, TrackResult, load_tracker

__all__ = [
    "FrameDecoder", "PartMaps", "PartResult", "TrackResult", "Tracker", "TrackerSettings", "load_models",
    "load_part_detector", "load_tracker",
]
