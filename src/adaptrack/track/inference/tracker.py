"""Inference (second embodiment, ¶53–61, claims 5–6): follow one person and report their parts.

Per frame (S201–S205): the part detector gives the part likelihood map (S202), the subject model the
subject maps and the part region map (S203); their element product (S204) is decoded at its maximum
into the part position, ``peak × ratio + offset × ratio``, with the part size read from the part
detector's size map at the peak (S205, ¶61). The decoding and the levers that keep the box on the
target through occlusions (motion model, gating, re-detection, template memory, distractor-aware
association, abstention) live in :mod:`adaptrack.track.inference.decoder`, configured by
:class:`~adaptrack.track.inference.decoder.TrackerSettings`.

:func:`load_tracker` is the one way to build a tracker from a file: a ``fit`` checkpoint (PyTorch,
:class:`TorchBackend`) or an ONNX export folder (onnxruntime,
:class:`~adaptrack.track.inference.onnx_export.OnnxBackend`), with the settings and input size recorded there
unless overridden. A :class:`Tracker` only loads weights and never changes its settings.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from adaptrack.common.errors import ConfigError, DataError
from adaptrack.track.data.frames import crop_frame
from adaptrack.track.geometry import (
    Ratio,
    Window,
    from_window,
    reframe_affine,
    scale_boxes,
    search_window,
    size_ratio,
    to_window,
)
from adaptrack.track.inference.checkpoints import load_models
from adaptrack.track.inference.decoder import Backend, Decoded, FrameDecoder, Maps, TrackerSettings
from adaptrack.track.models import PartDetector, SubjectModel, fold_batch_norms

__all__ = ["Backend", "Maps", "PartMaps", "PartResult", "TorchBackend", "TrackResult", "Tracker",
           "TrackerSettings", "frame_tensor", "load_tracker", "valid_box"]


class TorchBackend:
    """PyTorch backend: inference mode, on copies of the models with batch norms folded and weights
    and images in the channels-last memory format (both networks ran 1.7× faster on 2 CPU cores at
    batch 1 than in the default layout).

    Args:
        part_model: First model.
        subject_model: Second model.
    """

    def __init__(self, part_model: PartDetector, subject_model: SubjectModel) -> None:
        self.part_model = fold_batch_norms(part_model).to(memory_format=torch.channels_last)
        self.subject_model = fold_batch_norms(subject_model).to(memory_format=torch.channels_last)

    @staticmethod
    def _nhwc(image: torch.Tensor) -> torch.Tensor:
        return image.contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def template(self, image: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        return self.subject_model.encode_template(self._nhwc(image), box)

    @torch.inference_mode()
    def parts(self, image: torch.Tensor) -> Maps:
        return self.part_model(self._nhwc(image))

    @torch.inference_mode()
    def subject(self, image: torch.Tensor, kernel: torch.Tensor, prior: torch.Tensor) -> Maps:
        return self.subject_model(self._nhwc(image), kernel, prior)


@dataclass
class PartResult:
    """One part of the tracked person in one frame (pixels of the original frame).

    Attributes:
        name: Part name.
        position: ``(x, y)`` centre.
        size: ``(w, h)``.
        score: Element-product value at the peak.
        visible: False when the tracker abstains: the part is hidden (its score is below
            :attr:`TrackerSettings.part_gate`, or the target is occluded); the position is then the
            tracker's guess, not a detection.
    """

    name: str
    position: tuple[float, float]
    size: tuple[float, float]
    score: float
    visible: bool = True

    @property
    def box(self) -> tuple[float, float, float, float]:
        """``(x, y, w, h)`` part box."""
        (x, y), (w, h) = self.position, self.size
        return (x - w / 2, y - h / 2, w, h)


@dataclass
class TrackResult:
    """The tracked person in one frame (pixels of the original frame).

    Attributes:
        box: Subject box ``(x, y, w, h)``.
        score: Subject likelihood at the peak.
        parts: One result per part.
        occluded: The subject score fell below :attr:`TrackerSettings.gate`: the box is the motion
            model's prediction, not a detection.
        redetected: The whole-frame re-detection re-acquired the target in this frame.
    """

    box: tuple[float, float, float, float]
    score: float
    parts: list[PartResult]
    occluded: bool = False
    redetected: bool = False

    def as_dict(self) -> dict[str, object]:
        """JSON-ready dictionary."""
        return {"box": list(self.box), "score": self.score, "occluded": self.occluded,
                "redetected": self.redetected,
                "parts": [{"name": p.name, "position": list(p.position), "size": list(p.size),
                           "score": p.score, "visible": p.visible} for p in self.parts]}


@dataclass
class PartMaps:
    """The part detector's maps of the last frame, kept for baselines and visualisation.

    Attributes:
        heat: ``(K, h, w)`` part likelihood.
        size: ``(K, 2, h, w)`` part size in elements.
        offset: ``(K, 2, h, w)`` part offset in elements.
        product: ``(K, h, w)`` element product with the region maps.
        ratio: Size ratio between the original frame and the maps.
        origin: Frame pixel ``(x, y)`` of the maps' top-left corner (the search region's; ``(0, 0)``
            in the full-frame mode): element ``(i, j)`` sits at ``origin + (j, i) × ratio``.
    """

    heat: torch.Tensor
    size: torch.Tensor
    offset: torch.Tensor
    product: torch.Tensor
    ratio: Ratio
    origin: tuple[float, float] = (0.0, 0.0)


def frame_tensor(frame: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Accept ``(3, H, W)`` uint8 tensors or ``(H, W, 3)`` uint8 arrays; returns ``(3, H, W)`` uint8.

    Arrays are shared without a copy when they are writable and contiguous; read-only ones (frames
    decoded by Pillow or a video reader) are copied, since PyTorch cannot wrap them safely.
    """
    if isinstance(frame, np.ndarray):
        if frame.ndim != 3 or frame.shape[2] not in (3, 4):
            raise ValueError(f"expected an (H, W, 3) image array, got shape {frame.shape}")
        rgb = np.require(frame[..., :3], requirements=("C", "W"))  # (H, W, 3), copied only if needed
        return torch.from_numpy(rgb).permute(2, 0, 1)
    if frame.dim() != 3 or frame.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) image tensor, got shape {tuple(frame.shape)}")
    return frame


def valid_box(box: tuple[float, ...] | list[float]) -> torch.Tensor | None:
    """``box`` as a ``(4,)`` float tensor if it is a finite ``(x, y, w, h)`` with positive size, else ``None``."""
    b = torch.tensor([float(v) for v in box])
    return b if b.shape == (4,) and bool(torch.isfinite(b).all() & (b[2:] > 0).all()) else None




class Tracker:
    """Single-target part-aware tracker (``initialize()`` / ``track()``, as pytracking's trackers).

    Args:
        backend: Runs the networks (:class:`TorchBackend` or ``OnnxBackend``).
        parts: Part names, in map order.
        stride: Map stride of the networks.
        input_size: Side of the square network input (the size the model was trained at).
        settings: How the maps are decoded; fixed for the tracker's life (build another tracker,
            or :func:`load_tracker` with overrides, to change them).
    """

    def __init__(self, backend: Backend, parts: list[str], stride: int = 8, input_size: int = 256,
                 settings: TrackerSettings | None = None) -> None:
        if input_size % stride:
            raise ConfigError(f"input_size {input_size} must be a multiple of the stride {stride}")
        self.backend = backend
        self.parts = list(parts)
        self.stride = stride
        self.input_size = input_size
        self.map_hw = (input_size // stride, input_size // stride)
        self._settings = settings or TrackerSettings()
        self.decoder = FrameDecoder(backend, self._settings, input_size, stride)
        self.last_maps: PartMaps | None = None
        self._frame_hw: tuple[int, int] | None = None
        self._window: Window | None = None  # the search region of the last frame (search mode)
        self._reference: float = 0.0  # smoothed longer side of the target box, frame pixels (search mode)

    @property
    def settings(self) -> TrackerSettings:
        """The decoding settings (read-only)."""
        return self._settings

    def copy(self) -> Tracker:
        """A tracker on the same networks and settings with its own track state."""
        return Tracker(self.backend, self.parts, self.stride, self.input_size, self._settings)

    # -------------------------------------------------------------------------- preprocessing
    def _prepare(self, frame: torch.Tensor | np.ndarray) -> tuple[torch.Tensor, tuple[float, float]]:
        """Frame -> network input ``(1, 3, S, S)`` float and the scale ``(S / W, S / H)``."""
        img = frame_tensor(frame)  # (3, H, W) uint8
        H, W = img.shape[-2:]
        S = self.input_size
        x = img[None].float()  # (1, 3, H, W)
        if (H, W) != (S, S):
            x = F.interpolate(x, size=(S, S), mode="bilinear", antialias=True,
                              align_corners=False).round().clamp(0, 255)  # (1, 3, S, S)
        return x / 255.0, (S / W, S / H)

    def initialize(self, frame: torch.Tensor | np.ndarray, box: tuple[float, float, float, float],
                   frame_name: str = "frame 0") -> None:
        """Start tracking the person in ``box`` (x, y, w, h pixels) of ``frame``.

        Raises:
            DataError: The box has no positive size or its centre lies outside the frame.
        """
        img = frame_tensor(frame)
        H, W = img.shape[-2:]
        b = valid_box(box)
        if b is None:
            raise DataError(f"initial box {tuple(box)} must be a finite (x, y, w, h) with a positive width and "
                            "height", frame_name)
        cx, cy = float(b[0] + b[2] / 2), float(b[1] + b[3] / 2)
        if not (0 <= cx <= W and 0 <= cy <= H):
            raise DataError(f"initial box {tuple(box)} is outside the {W}x{H} frame (centre "
                            f"({cx:.1f}, {cy:.1f}))", frame_name)
        self._frame_hw = (H, W)
        if self._settings.search_factor > 0:
            self._reference = float(max(b[2], b[3]))
            self._window = search_window(b, self._settings.search_factor, self._reference)
            x = crop_frame(img, self._window, self.input_size)[None].float() / 255.0  # (1, 3, S, S)
            decoded = self.decoder.start(x, to_window(b, self._window, self.input_size))
        else:
            self._window = None
            x, scale = self._prepare(img)
            decoded = self.decoder.start(x, scale_boxes(b, *scale))
        self.last_maps = None if decoded is None else self._maps(decoded)

    def _maps(self, d: Decoded) -> PartMaps:
        """The frame's maps with their placement in the frame."""
        h, w = d.product.shape[-2:]
        if self._window is not None:
            x0, y0, side = self._window
            return PartMaps(d.part_heat, d.part_size_map, d.part_offset_map, d.product, (side / w, side / h),
                            (float(x0), float(y0)))
        assert self._frame_hw is not None
        H, W = self._frame_hw
        return PartMaps(d.part_heat, d.part_size_map, d.part_offset_map, d.product, size_ratio((W, H), (w, h)))

    def _next_window(self, img: torch.Tensor, given: torch.Tensor | None) -> torch.Tensor:
        """Search mode: the region around the last box (or the given prior box), the track state moved
        into it; returns the region's network input ``(1, 3, S, S)``."""
        assert self._window is not None and self.decoder.box is not None
        S, s = self.input_size, self._settings
        last = from_window(self.decoder.box, self._window, S)  # (4,) frame pixels
        rate = s.search_scale_rate
        self._reference = (1 - rate) * self._reference + rate * float(max(last[2], last[3]))
        window = search_window(last if given is None else given, s.search_factor, self._reference)
        self.decoder.reframe(*reframe_affine(self._window, window, S))
        self._window = window
        return crop_frame(img, window, S)[None].float() / 255.0  # (1, 3, S, S)

    def track(self, frame: torch.Tensor | np.ndarray,
              prior_box: tuple[float, float, float, float] | None = None) -> TrackResult:
        """Locate the subject and its parts in the next frame (S201–S205).

        Args:
            frame: The next frame.
            prior_box: Centre the motion prior on this ``(x, y, w, h)`` box instead of the motion
                model's prediction (a re-detection, or the ground truth to measure association
                apart from tracking); ``None`` tracks on its own.

        Raises:
            RuntimeError: :meth:`initialize` was not called.
            ValueError: ``prior_box`` has no positive, finite size.
        """
        if self.decoder.kernel is None:
            raise RuntimeError("call Tracker.initialize(frame, box) before track()")
        given = None
        if prior_box is not None:
            given = valid_box(prior_box)
            if given is None:
                raise ValueError(f"prior_box must be a finite (x, y, w, h) with positive size, got {prior_box}")
        img = frame_tensor(frame)
        if tuple(img.shape[-2:]) != self._frame_hw:
            raise ValueError(f"frame size changed during the track: {img.shape[-1]}x{img.shape[-2]}")
        if self._window is not None:
            x = self._next_window(img, given)
            d = self.decoder.step(x, None if given is None else to_window(given, self._window, self.input_size))
            x0, y0, side = self._window
            k = side / self.input_size
            to_frame, origin = torch.tensor([1 / k, 1 / k]), torch.tensor([float(x0), float(y0)])
            box = from_window(d.box, self._window, self.input_size)
        else:
            x, scale = self._prepare(img)
            d = self.decoder.step(x, None if given is None else scale_boxes(given, *scale))
            to_frame, origin = torch.tensor(scale), torch.zeros(2)
            box = scale_boxes(d.box, 1 / scale[0], 1 / scale[1])
        self.last_maps = self._maps(d)
        pos, size = d.part_position / to_frame + origin, d.part_size / to_frame  # (K, 2)
        parts = [PartResult(name, (float(pos[k, 0]), float(pos[k, 1])), (float(size[k, 0]), float(size[k, 1])),
                            float(d.part_score[k]), bool(d.part_visible[k])) for k, name in enumerate(self.parts)]
        return TrackResult(tuple(float(v) for v in box), d.score, parts, d.occluded, d.redetected)


def load_tracker(path: str | Path, threads: int = 1, input_size: int | None = None,
                 **overrides: object) -> Tracker:
    """A tracker from a ``fit`` checkpoint (PyTorch) or an ONNX export folder (onnxruntime).

    Args:
        path: Checkpoint file or export folder.
        threads: onnxruntime intra-op threads (PyTorch uses ``torch.set_num_threads``).
        input_size: Network input side; default the size recorded in the file (the training
            size; 256 for files that do not record it).
        **overrides: :class:`TrackerSettings` fields that replace the recorded ones, e.g.
            ``gate=0.3`` (keys are checked: an unknown one raises).

    Raises:
        DataError: Not a tracker checkpoint or export folder.
        ValueError: An unknown or invalid setting.
    """
    path = Path(path)
    if path.is_dir():
        from adaptrack.track.inference.onnx_export import OnnxBackend

        onnx = OnnxBackend(path, threads)
        meta = onnx.meta
        backend: Backend = onnx
        recorded = meta.get("tracker") or {k: v for k, v in meta.items() if k in _SETTING_NAMES}
        stride = int(meta["stride"])
        size = int(meta["input_size"])
        if input_size is not None and input_size != size:
            raise ConfigError(f"{path}: the ONNX graphs are fixed to input_size {size}; export again with "
                             f"--input_size {input_size}")
    else:
        part, subject, meta = load_models(path)
        backend = TorchBackend(part, subject)
        recorded = meta.get("tracker", {})
        stride = subject.stride
        size = int(input_size or meta.get("input_size") or 256)
    unknown = sorted(set(overrides) - _SETTING_NAMES)
    if unknown:
        raise ConfigError(f"unknown tracker settings {unknown}; valid: {sorted(_SETTING_NAMES)}")
    settings = dataclasses.replace(TrackerSettings.from_meta(recorded), **overrides)  # type: ignore[arg-type]
    return Tracker(backend, list(meta["parts"]), stride, size, settings)


_SETTING_NAMES = {f.name for f in dataclasses.fields(TrackerSettings)}
