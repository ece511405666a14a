"""Inference (second embodiment, ¶53–61, claims 5–6): follow one person and report their parts.

Per frame (S201–S205): the part detector gives the part likelihood map (S202), the subject model the
subject maps and the part region map (S203); their element product (S204) is decoded at its maximum
into the part position, ``peak × ratio + offset × ratio``, with the part size read from the part
detector's size map at the peak (S205, ¶61). Two optional motion windows
(:class:`TrackerSettings`) weight the decoding towards the previous positions: one for the subject
box, one for each part; an optional part exponent < 1 lets the region map, rather than how visible
each head is, decide between neighbouring heads.

The :class:`Tracker` only loads weights; two interchangeable backends run the networks:
:class:`TorchBackend` (PyTorch) and :class:`~adaptrack.track.onnx_export.OnnxBackend` (onnxruntime).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from adaptrack.common.errors import DataError
from adaptrack.track.checkpoints import load_models
from adaptrack.track.geometry import (
    Ratio,
    box_centre,
    centre_size_to_xywh,
    decode_peak,
    gather_at,
    gaussian_maps,
    motion_window,
    part_score,
    part_window,
    scale_boxes,
    size_ratio,
)
from adaptrack.track.models import PartDetector, SubjectModel, fold_batch_norms

Maps = tuple[torch.Tensor, ...]


class Backend(Protocol):
    """What the tracker needs from the networks (all tensors float32, batch 1)."""

    def template(self, image: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """``(1, 3, S, S)``, ``(1, 4)`` -> kernel ``(1, C, kh, kw)``."""

    def parts(self, image: torch.Tensor) -> Maps:
        """``(1, 3, S, S)`` -> heat ``(1, K, h, w)``, size, offset ``(1, K, 2, h, w)``."""

    def subject(self, image: torch.Tensor, kernel: torch.Tensor, prior: torch.Tensor) -> Maps:
        """-> heat ``(1, 1, h, w)``, size, offset ``(1, 2, h, w)``, region ``(1, K, h, w)``."""


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
    """

    name: str
    position: tuple[float, float]
    size: tuple[float, float]
    score: float

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
    """

    box: tuple[float, float, float, float]
    score: float
    parts: list[PartResult]

    def as_dict(self) -> dict[str, object]:
        """JSON-ready dictionary."""
        return {"box": list(self.box), "score": self.score,
                "parts": [{"name": p.name, "position": list(p.position), "size": list(p.size),
                           "score": p.score} for p in self.parts]}


@dataclass
class PartMaps:
    """The part detector's maps of the last frame, kept for baselines and visualisation.

    Attributes:
        heat: ``(K, h, w)`` part likelihood.
        size: ``(K, 2, h, w)`` part size in elements.
        offset: ``(K, 2, h, w)`` part offset in elements.
        product: ``(K, h, w)`` element product with the region maps.
        ratio: Size ratio between the original frame and the maps.
    """

    heat: torch.Tensor
    size: torch.Tensor
    offset: torch.Tensor
    product: torch.Tensor
    ratio: Ratio


@dataclass(frozen=True)
class TrackerSettings:
    """How the tracker decodes the maps; recorded in ``fit`` checkpoints and ONNX ``meta.json``.

    Attributes:
        prior_sigma: σ of the motion prior given to the subject model, as a fraction of the box's
            geometric-mean side.
        window_power: The subject box is decoded at the maximum of ``heat × prior ** window_power``
            (a motion window, as the cosine window of SiamFC / pysot); 0 decodes the heat alone.
        part_window: Each part is decoded at the maximum of its score (the element product, or
            :func:`~adaptrack.track.geometry.part_score` with ``part_exponent``) times a Gaussian at
            the part's previous position, σ = ``part_window`` × part size
            (:func:`~adaptrack.track.geometry.part_window`); 0 decodes the element product alone,
            as the patent's S205.
        part_exponent: Parts are decoded at ``part likelihood ** part_exponent × region map``
            (:func:`~adaptrack.track.geometry.part_score`); 1 is the patent's element product, a
            smaller value lets the region map outweigh a neighbour's more visible part.
    """

    prior_sigma: float = 0.5
    window_power: float = 0.0
    part_window: float = 0.0
    part_exponent: float = 1.0

    def __post_init__(self) -> None:
        for name in ("prior_sigma", "part_exponent"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("window_power", "part_window"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_meta(cls, meta: Mapping[str, object]) -> TrackerSettings:
        """Settings from a checkpoint's or export's metadata (absent keys keep their defaults)."""
        return cls(**{f.name: float(meta[f.name]) for f in fields(cls) if meta.get(f.name) is not None})

    def as_meta(self) -> dict[str, float]:
        """JSON-ready dictionary (the inverse of :meth:`from_meta`)."""
        return asdict(self)

    @property
    def output_name(self) -> str:
        """Name of the tracker's part output in evaluation tables: ``"element product"`` for the
        patent's bare decoding, else what is added to it (e.g. ``"heat^0.25 x region + part window"``)."""
        terms = []
        if self.part_exponent != 1:
            terms.append(f"heat^{self.part_exponent:g} x region")
        if self.part_window > 0:
            terms.append("+ part window")
        return " ".join(terms) or "element product"


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
    """Single-target part-aware tracker.

    Args:
        backend: Runs the networks (:class:`TorchBackend` or ``OnnxBackend``).
        parts: Part names, in map order.
        stride: Map stride of the networks.
        input_size: Side of the square network input.
        settings: How the maps are decoded (motion prior and windows).
    """

    def __init__(self, backend: Backend, parts: list[str], stride: int = 8, input_size: int = 256,
                 settings: TrackerSettings | None = None) -> None:
        if input_size % stride:
            raise ValueError(f"input_size {input_size} must be a multiple of the stride {stride}")
        self.backend = backend
        self.parts = list(parts)
        self.input_size = input_size
        self.map_hw = (input_size // stride, input_size // stride)
        self.net_ratio = size_ratio((input_size, input_size), self.map_hw[::-1])
        self.settings = settings or TrackerSettings()
        self.kernel: torch.Tensor | None = None
        self.box: torch.Tensor | None = None  # (4,) original pixels
        self.part_centre: torch.Tensor | None = None  # (K, 2) last decoded parts, original pixels
        self.part_size: torch.Tensor | None = None  # (K, 2)
        self.last_maps: PartMaps | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path, input_size: int = 256, settings: TrackerSettings | None = None,
                        ) -> Tracker:
        """PyTorch tracker from a ``fit`` checkpoint, with its recorded settings unless ``settings`` is given."""
        part, subject, meta = load_models(path)
        settings = settings or TrackerSettings.from_meta(meta.get("tracker", {}))
        return cls(TorchBackend(part, subject), meta["parts"], subject.stride, input_size, settings)

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
        x, scale = self._prepare(img)
        self.kernel = self.backend.template(x, scale_boxes(b, *scale)[None])  # (1, C, kh, kw)
        self.box = b
        self.part_centre = self.part_size = None
        if self.settings.part_window > 0:  # the parts' starting positions: S202-S205 on this frame
            self._locate(x, scale, (W, H), b)

    def _locate(self, x: torch.Tensor, scale: tuple[float, float], frame_wh: tuple[int, int],
                previous_box: torch.Tensor) -> tuple[TrackResult, torch.Tensor]:
        """S202-S205 on the network input ``x (1, 3, S, S)`` of a ``frame_wh`` frame, with the motion
        prior at ``previous_box (4,)``; updates the parts' state and :attr:`last_maps`.

        Returns:
            The result and the subject box ``(4,)`` in original pixels.
        """
        W, H = frame_wh
        sx, sy = scale
        part_heat, part_size, part_offset = self.backend.parts(x)  # (1, K, h, w), (1, K, 2, h, w) x2
        prior = self._prior(scale_boxes(previous_box, sx, sy))  # (1, 1, h, w)
        heat, size, offset, region = self.backend.subject(x, self.kernel, prior)
        h, w = heat.shape[-2:]
        ratio = size_ratio((W, H), (w, h))  # original frame vs map
        windowed = motion_window(heat[:, 0], prior[:, 0], self.settings.window_power)  # (1, h, w)
        centre, wh, _, cell = decode_peak(windowed, size, offset, ratio)  # (1, 2), (1, 2), (1,), (1, 2)
        score = gather_at(heat, cell)[:, 0]  # (1,) subject likelihood at the chosen peak
        box = centre_size_to_xywh(centre, wh)[0]  # (4,)
        product = part_heat[0] * region[0]  # (K, h, w)  S204
        exponent = self.settings.part_exponent
        decoded = product if exponent == 1 else part_score(part_heat[0], region[0], exponent)  # (K, h, w)
        if self.part_centre is not None and self.part_size is not None:
            decoded = part_window(decoded[None], self.part_centre[None], self.part_size[None], ratio,
                                  self.settings.part_window)[0]  # (K, h, w)
        pos, psize, _, pcell = decode_peak(decoded, part_size[0], part_offset[0], ratio)  # (K, 2) ...
        pscore = gather_at(product[:, None], pcell)[:, 0]  # (K,) element product at the chosen peaks
        if self.settings.part_window > 0:
            self.part_centre, self.part_size = pos, psize
        self.last_maps = PartMaps(part_heat[0], part_size[0], part_offset[0], product, ratio)
        parts = [PartResult(name, (float(pos[k, 0]), float(pos[k, 1])), (float(psize[k, 0]), float(psize[k, 1])),
                            float(pscore[k])) for k, name in enumerate(self.parts)]
        return TrackResult(tuple(float(v) for v in box), float(score[0]), parts), box

    def _prior(self, box_net: torch.Tensor) -> torch.Tensor:
        """Motion prior ``(1, 1, h, w)`` around ``box_net (4,)`` in network pixels."""
        sigma = (box_net[2:] / box_net.new_tensor(self.net_ratio)).clamp(min=1e-3).prod().sqrt()
        sigma = (sigma * self.settings.prior_sigma).clamp(min=1.0)
        return gaussian_maps(box_centre(box_net)[None, None], self.map_hw, self.net_ratio,
                             sigma=sigma.view(1, 1), normalization="peak1", rounded=False)[:, None]

    def track(self, frame: torch.Tensor | np.ndarray,
              prior_box: tuple[float, float, float, float] | None = None) -> TrackResult:
        """Locate the subject and its parts in the next frame (S201–S205).

        Args:
            frame: The next frame.
            prior_box: Centre the motion prior on this ``(x, y, w, h)`` box instead of the previous
                result (a re-detection, or the ground truth to measure association apart from
                tracking); ``None`` tracks on its own.

        Raises:
            RuntimeError: :meth:`initialize` was not called.
            ValueError: ``prior_box`` has no positive, finite size.
        """
        if self.kernel is None or self.box is None:
            raise RuntimeError("call Tracker.initialize(frame, box) before track()")
        previous = self.box if prior_box is None else valid_box(prior_box)  # (4,)
        if previous is None:
            raise ValueError(f"prior_box must be a finite (x, y, w, h) with positive size, got {prior_box}")
        img = frame_tensor(frame)
        x, scale = self._prepare(img)
        result, self.box = self._locate(x, scale, (img.shape[-1], img.shape[-2]), previous)
        return result
