"""The tracker's per-frame decoding: one module, one settings object (S202–S205 and what guards them).

Training, validation and inference all decode the maps here:

* pure, batched functions — :func:`prior_maps` (the motion prior given to the subject model),
  :func:`decode_subject` (the subject box at the maximum of ``heat × prior ** window_power``) and
  :func:`decode_parts` (each part at the maximum of the element product, S204–S205, optionally
  ``part likelihood ** γ × region`` and a part window at its previous position) — called by the
  closed-loop rollouts of training (``TrackerModule._rollout``), by the validation that picks
  checkpoints (``TrackerModule.association_rates``) and by :class:`FrameDecoder`;
* :class:`FrameDecoder`, the online state of one track, called by the
  :class:`~adaptrack.track.inference.tracker.Tracker` every frame. On top of the pure functions it holds the
  levers against swapping to the person who crosses in front of the target, each a
  :class:`TrackerSettings` option, all off by default (today's decoding):

  - ``motion: velocity`` — a constant-velocity Kalman filter of the subject box
    (:class:`BoxKalman`): the prior sits on the predicted position and size, not on the last box;
  - ``gate`` — when the subject score at the chosen peak is below it (or, with
    ``coast_on_hidden_part``, every part score is below ``part_gate``), the tracker does not follow
    the response: it coasts on the motion model and marks the target ``occluded``;
  - ``redetect`` — on such a frame, a second pass with a flat prior searches the whole frame and
    re-acquires the target when the best template response is ≥ ``redetect_min`` and
    ≥ ``redetect_margin`` × the second best;
  - ``memory_weight`` — a second template, refreshed every ``memory_interval`` frames on confident,
    unoccluded frames (STARK / MixFormer style), blended into the kernel; the first template is
    never overwritten;
  - ``distractor_weight`` / ``jump_penalty`` — the ``top_k`` peaks of each frame are candidates;
    each is scored ``windowed × exp(-jump_penalty × jump) × exp(distractor_weight × (a_t - a_d))``:
    ``jump`` is the scale change ``|log(h / h_pred)|`` plus the foot-point shift over ``h_pred``
    (the person in front is nearer, so larger and lower in the frame), ``a_t`` the candidate's
    colour-histogram similarity to the target's first box and ``a_d`` its largest similarity
    (appearance × nearness to the predicted box) to the people tracked around the target — the
    other candidates, followed frame to frame (DaSiamRPN's distractor-aware scoring, KeepTrack's
    candidate association, with the colour model of Possegger et al.'s distractor-aware tracker,
    which costs no extra network pass);
  - ``part_gate`` — abstention: a part whose element-product score at its peak is below it, or of
    an occluded target, is reported with ``visible = False`` instead of as someone else's part.

Everything here works in network-input pixels (``S × S``); the tracker maps results to the frame.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Literal, Protocol

import numpy as np
import torch

from adaptrack.common.errors import ConfigError
from adaptrack.track.geometry import (
    Ratio,
    box_centre,
    box_iou,
    centre_size_to_xywh,
    decode_peak,
    gather_at,
    gaussian_maps,
    local_peaks,
    motion_window,
    part_score,
    part_window,
)

Maps = tuple[torch.Tensor, ...]
Motion = Literal["last", "velocity"]


class Backend(Protocol):
    """What the decoder needs from the networks (all tensors float32, batch 1)."""

    def template(self, image: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """``(1, 3, S, S)``, ``(1, 4)`` -> kernel ``(1, C, kh, kw)``."""

    def parts(self, image: torch.Tensor) -> Maps:
        """``(1, 3, S, S)`` -> heat ``(1, K, h, w)``, size, offset ``(1, K, 2, h, w)``."""

    def subject(self, image: torch.Tensor, kernel: torch.Tensor, prior: torch.Tensor) -> Maps:
        """-> heat ``(1, 1, h, w)``, size, offset ``(1, 2, h, w)``, region ``(1, K, h, w)``."""


@dataclass(frozen=True)
class TrackerSettings:
    """How the tracker decodes the maps; recorded under ``"tracker"`` in ``fit`` checkpoints and in
    the ONNX ``meta.json``, and given whole to the training module (``model.tracker`` in YAML).

    The defaults are the decoding before the levers existed, so older files decode as before.

    Attributes:
        prior_sigma: σ of the motion prior given to the subject model, as a fraction of the box's
            geometric-mean side.
        window_power: The subject box is decoded at the maximum of ``heat × prior ** window_power``
            (a motion window, as the cosine window of SiamFC / pysot); 0 decodes the heat alone.
        part_window: Each part is decoded at the maximum of its score times a Gaussian at the
            part's previous position, σ = ``part_window`` × part size; 0 decodes the element
            product alone, as the patent's S205.
        part_exponent: Parts are decoded at ``part likelihood ** part_exponent × region map``; 1 is
            the patent's element product.
        motion: ``"last"``: the prior sits on the last box; ``"velocity"``: on the box predicted
            by a constant-velocity Kalman filter (:class:`BoxKalman`).
        motion_noise: Process noise of the Kalman filter, per frame, as a fraction of the box
            height (larger follows accelerations faster, smaller smooths more).
        gate: Subject score (the heat at the chosen peak) below which the target is ``occluded``:
            the box coasts on the motion model; 0 never gates.
        part_gate: Element-product score at a part's peak below which that part is reported
            hidden (``visible = False``); 0 always reports parts visible.
        coast_on_hidden_part: Also coast (mark the target occluded) when every part is below
            ``part_gate``.
        redetect: On an occluded frame, search the whole frame (a second subject pass with a flat
            prior) and re-acquire the target when the response is clearly the best; needs ``gate``.
        redetect_min: Smallest subject score that re-acquires.
        redetect_margin: The re-acquired peak must be at least this many times the second peak.
        redetect_interval: Search on every this-many-th frame of an occlusion (the first included):
            each search is a second subject pass, so 1 costs the most.
        memory_weight: Weight of the second template in the kernel, ``(1 - w) × first + w ×
            memory``; 0 keeps the first template alone.
        memory_threshold: Smallest subject score of a frame whose box refreshes the memory template.
        memory_interval: Frames between memory refreshes.
        distractor_weight: Weight of the appearance term (similarity to the target minus the
            largest similarity to a tracked distractor) in the candidate score; 0 turns it off.
        jump_penalty: Weight of the scale and foot-position jump in the candidate score; 0 off.
        top_k: Candidates (local peaks of the windowed subject score) per frame for the two terms
            above and for the people tracked around the target.
        candidate_min: Smallest subject heat of a candidate.
        search_factor: Search-region tracking (SiamFC / pytracking): each frame, a square region of
            this many times the target's longer side, centred on its last box, is cut from the frame
            and resized to the network input; both networks run on it and the outputs are mapped
            back to frame pixels. 0 resizes the whole frame instead (the full-frame mode, for small
            frames). At 2.3 a person fills 0.43 of the region, as the synthetic targets fill
            0.38–0.5 of their frames, so a model trained on them sees real people at its scale.
            Re-detection then searches the region, not the whole frame.
        search_scale_rate: How fast the region's reference size follows the decoded box's longer
            side, per frame (exponential smoothing; 0 keeps the first box's size).
    """

    prior_sigma: float = 0.5
    window_power: float = 0.0
    part_window: float = 0.0
    part_exponent: float = 1.0
    motion: Motion = "last"
    motion_noise: float = 0.05
    gate: float = 0.0
    part_gate: float = 0.0
    coast_on_hidden_part: bool = False
    redetect: bool = False
    redetect_min: float = 0.5
    redetect_margin: float = 2.0
    redetect_interval: int = 1
    memory_weight: float = 0.0
    memory_threshold: float = 0.6
    memory_interval: int = 5
    distractor_weight: float = 0.0
    jump_penalty: float = 0.0
    top_k: int = 5
    candidate_min: float = 0.05
    search_factor: float = 0.0
    search_scale_rate: float = 0.1

    def __post_init__(self) -> None:
        for name in ("prior_sigma", "part_exponent", "motion_noise", "redetect_margin"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"tracker setting {name} must be > 0, got {getattr(self, name)}")
        for name in ("window_power", "part_window", "gate", "part_gate", "redetect_min", "memory_threshold",
                     "distractor_weight", "jump_penalty", "candidate_min"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"tracker setting {name} must be a finite number >= 0, got {value}")
        if not 0 <= self.memory_weight <= 1:
            raise ConfigError(f"tracker setting memory_weight must be in [0, 1], got {self.memory_weight}")
        for name in ("memory_interval", "top_k", "redetect_interval"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"tracker setting {name} must be >= 1, got {getattr(self, name)}")
        if self.motion not in ("last", "velocity"):
            raise ConfigError(f"tracker setting motion must be 'last' or 'velocity', got {self.motion!r}")
        if self.redetect and not (self.gate > 0 or (self.coast_on_hidden_part and self.part_gate > 0)):
            raise ConfigError("tracker setting redetect needs gate > 0 (re-detection runs on gated frames)")
        if not (self.search_factor == 0 or (math.isfinite(self.search_factor) and self.search_factor >= 1)):
            raise ConfigError("tracker setting search_factor must be 0 (whole frame) or >= 1, got "
                              f"{self.search_factor}")
        if not 0 <= self.search_scale_rate <= 1:
            raise ConfigError(f"tracker setting search_scale_rate must be in [0, 1], got {self.search_scale_rate}")
        if self.coast_on_hidden_part and not self.part_gate > 0:
            raise ConfigError("tracker setting coast_on_hidden_part needs part_gate > 0")

    @classmethod
    def from_meta(cls, meta: Mapping[str, object]) -> TrackerSettings:
        """Settings from a checkpoint's or export's metadata; absent keys keep their defaults, values
        are cast to each field's type (JSON and YAML may give ``2`` for ``2.0``).

        Raises:
            ValueError: A key the settings do not know (naming the valid ones), or a bad value.
        """
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(meta) - set(known))
        if unknown:
            raise ConfigError(f"unknown tracker settings {unknown}; valid: {sorted(known)}")
        cast = {float: float, int: int, bool: bool, "float": float, "int": int, "bool": bool}
        values: dict[str, object] = {}
        for name, value in meta.items():
            if value is None:
                continue
            kind = cast.get(known[name].type)
            values[name] = kind(value) if kind is not None else str(value)
        return cls(**values)  # type: ignore[arg-type]

    def as_meta(self) -> dict[str, object]:
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

    @property
    def levers(self) -> list[str]:
        """Names of the levers switched on (for tables), empty for the plain decoding."""
        on = [("velocity", self.motion == "velocity"), ("gate", self.gate > 0), ("redetect", self.redetect),
              ("memory", self.memory_weight > 0), ("distractors", self.distractor_weight > 0),
              ("jump", self.jump_penalty > 0), ("abstain", self.part_gate > 0), ("search", self.search_factor > 0)]
        return [name for name, is_on in on if is_on]


# ------------------------------------------------------------------------------ pure functions
def prior_maps(boxes: torch.Tensor, map_hw: tuple[int, int], ratio: Ratio, sigma_scale: float) -> torch.Tensor:
    """Motion prior: a peak-1 Gaussian at each box centre, σ = ``sigma_scale`` × the box's
    geometric-mean side (in map elements, at least 1).

    Args:
        boxes: ``(N, 4)`` boxes in the pixels of the image the maps cover.
        map_hw: ``(h, w)``.
        ratio: Image / map size ratio.
        sigma_scale: :attr:`TrackerSettings.prior_sigma`.

    Returns:
        ``(N, 1, h, w)``.
    """
    sigma = (boxes[:, 2:] / boxes.new_tensor(ratio)).clamp(min=1e-3).prod(-1).sqrt()  # (N,)
    sigma = (sigma * sigma_scale).clamp(min=1.0)
    return gaussian_maps(box_centre(boxes)[:, None], map_hw, ratio, sigma=sigma[:, None],
                         normalization="peak1", rounded=False)[:, None]


def decode_subject(heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, prior: torch.Tensor,
                   ratio: Ratio, window_power: float,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The subject box at the maximum of ``heat × prior ** window_power``.

    Args:
        heat: ``(N, 1, h, w)`` subject likelihood.
        size, offset: ``(N, 2, h, w)`` subject size and offset maps (elements).
        prior: ``(N, 1, h, w)`` the motion prior the maps were computed with.
        ratio: Image / map size ratio.
        window_power: :attr:`TrackerSettings.window_power`.

    Returns:
        ``box (N, 4)`` pixels, ``score (N,)`` the heat (not the windowed score) at the chosen
        element, ``cell (N, 2)`` that element.
    """
    windowed = motion_window(heat[:, 0], prior[:, 0], window_power)  # (N, h, w)
    centre, wh, _, cell = decode_peak(windowed, size, offset, ratio)  # (N, 2), (N, 2), (N,), (N, 2)
    return centre_size_to_xywh(centre, wh), gather_at(heat, cell)[:, 0], cell


def decode_parts(part_heat: torch.Tensor, region: torch.Tensor, part_size: torch.Tensor,
                 part_offset: torch.Tensor, ratio: Ratio, exponent: float = 1.0,
                 previous_centre: torch.Tensor | None = None, previous_size: torch.Tensor | None = None,
                 window: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each part at the maximum of its decoding score (S204–S205, claims 5–6).

    The score is the element product ``part_heat × region`` (``exponent = 1``) or
    :func:`~adaptrack.track.geometry.part_score`, times the part window at ``previous_centre``
    when ``window > 0`` and a previous part is given.

    Args:
        part_heat: ``(N, K, h, w)`` part likelihood (first model).
        region: ``(N, K, h, w)`` part region maps (second model).
        part_size, part_offset: ``(N, K, 2, h, w)`` part size and offset maps.
        ratio: Image / map size ratio.
        exponent: :attr:`TrackerSettings.part_exponent`.
        previous_centre, previous_size: ``(N, K, 2)`` previous parts in pixels (NaN: no window).
        window: :attr:`TrackerSettings.part_window`.

    Returns:
        ``position (N, K, 2)``, ``size (N, K, 2)``, ``score (N, K)`` the element product at the
        chosen element, ``product (N, K, h, w)`` the element product.
    """
    N, K, h, w = part_heat.shape
    product = part_heat * region  # (N, K, h, w)  S204
    decoded = product if exponent == 1 else part_score(part_heat, region, exponent)  # (N, K, h, w)
    if window > 0 and previous_centre is not None and previous_size is not None:
        decoded = part_window(decoded, previous_centre, previous_size, ratio, window)
    pos, size, _, cell = decode_peak(decoded.reshape(N * K, h, w), part_size.reshape(N * K, 2, h, w),
                                     part_offset.reshape(N * K, 2, h, w), ratio)  # (N*K, 2) ...
    score = gather_at(product.reshape(N * K, 1, h, w), cell)[:, 0]  # (N*K,)
    return pos.reshape(N, K, 2), size.reshape(N, K, 2), score.reshape(N, K), product


def candidate_peaks(score: torch.Tensor, heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor,
                    ratio: Ratio, top_k: int, min_heat: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``top_k`` local maxima of a subject score map, strongest first (the global maximum always
    included), with their boxes and heat.

    Args:
        score: ``(h, w)`` map to rank by (the windowed heat).
        heat: ``(h, w)`` subject likelihood (``min_heat`` applies to it).
        size, offset: ``(2, h, w)`` subject size and offset maps.
        ratio: Image / map size ratio.
        top_k: Most candidates.
        min_heat: Smallest heat of a candidate other than the global maximum.

    Returns:
        ``boxes (P, 4)`` pixels, ``scores (P,)`` ranked-by values, ``heats (P,)``; ``P ≥ 1``.
    """
    w = score.shape[-1]
    peaks = local_peaks(score[None], -math.inf)[0] & (heat >= min_heat)  # (h, w)
    flat = score.reshape(-1)
    best = int(flat.argmax())
    peaks.view(-1)[best] = True
    idx = torch.nonzero(peaks.reshape(-1)).squeeze(1)  # (P,)
    idx = idx[flat[idx].argsort(descending=True)][:top_k]
    cells = torch.stack([idx % w, idx // w], dim=1)  # (P, 2)
    r = score.new_tensor(ratio)
    centre = (cells.to(score.dtype) + gather_at(offset[None].expand(len(idx), -1, -1, -1), cells)) * r
    wh = gather_at(size[None].expand(len(idx), -1, -1, -1), cells) * r  # (P, 2)
    return centre_size_to_xywh(centre, wh), flat[idx], heat.reshape(-1)[idx]


def colour_histogram(image: torch.Tensor, box: torch.Tensor, bins: int = 8) -> torch.Tensor:
    """Normalised joint RGB histogram of ``image (3, S, S)`` in [0, 1] inside ``box (4,)``; ``(bins³,)``.

    A box that covers no pixel gives a uniform histogram.
    """
    S_h, S_w = image.shape[-2:]
    x0, y0 = int(max(0.0, math.floor(float(box[0])))), int(max(0.0, math.floor(float(box[1]))))
    x1 = int(min(S_w, math.ceil(float(box[0] + box[2]))))
    y1 = int(min(S_h, math.ceil(float(box[1] + box[3]))))
    if not (math.isfinite(float(box.sum())) and x1 > x0 and y1 > y0):
        return torch.full((bins ** 3,), 1.0 / bins ** 3)
    q = (image[:, y0:y1, x0:x1].clamp(0, 1) * (bins - 1e-3)).long()  # (3, h, w)
    idx = (q[0] * bins + q[1]) * bins + q[2]
    hist = torch.bincount(idx.reshape(-1), minlength=bins ** 3).float()
    return hist / hist.sum()


def similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Bhattacharyya coefficient of two normalised histograms, in [0, 1]."""
    return float((a * b).sqrt().sum())


def jump(box: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """Scale and foot-point jump of candidate boxes ``(P, 4)`` from the predicted box ``(4,)``:
    ``|log(h / h_pred)| + |foot - foot_pred| / h_pred``, the foot the bottom centre; ``(P,)``."""
    h_pred = predicted[3].clamp(min=1e-3)
    scale = (box[:, 3].clamp(min=1e-3) / h_pred).log().abs()
    foot = torch.stack([box[:, 0] + box[:, 2] / 2, box[:, 1] + box[:, 3]], dim=-1)  # (P, 2)
    foot_pred = torch.stack([predicted[0] + predicted[2] / 2, predicted[1] + predicted[3]])
    return scale + (foot - foot_pred).norm(dim=-1) / h_pred


# ---------------------------------------------------------------------------------- motion
class BoxKalman:
    """Constant-velocity Kalman filter of a box, state ``(cx, cy, w, h, vx, vy, vw, vh)``.

    Noise scales with the box height, as in SORT / DeepSORT: process noise ``noise × h`` on
    positions and sizes and ``noise / 8 × h`` on velocities per frame, measurement noise
    ``noise × h``.

    Args:
        box: Initial ``(x, y, w, h)``.
        noise: :attr:`TrackerSettings.motion_noise`.
    """

    def __init__(self, box: torch.Tensor, noise: float) -> None:
        self.noise = noise
        cx, cy, w, h = float(box[0] + box[2] / 2), float(box[1] + box[3] / 2), float(box[2]), float(box[3])
        self.x = np.array([cx, cy, w, h, 0, 0, 0, 0], dtype=np.float64)
        self.P = np.diag(np.r_[np.full(4, (noise * h) ** 2 * 4), np.full(4, (noise * h) ** 2 * 10)])
        self.F = np.eye(8)
        self.F[:4, 4:] = np.eye(4)
        self.H = np.eye(4, 8)

    def _q(self) -> np.ndarray:
        h = max(self.x[3], 1.0)
        return np.diag(np.r_[np.full(4, (self.noise * h) ** 2), np.full(4, (self.noise / 8 * h) ** 2)])

    def predict(self) -> torch.Tensor:
        """Advance one frame; returns the predicted ``(x, y, w, h)`` as a ``(4,)`` float tensor."""
        self.x = self.F @ self.x
        self.x[2:4] = np.maximum(self.x[2:4], 1.0)
        self.P = self.F @ self.P @ self.F.T + self._q()
        return self.box

    def update(self, box: torch.Tensor) -> None:
        """Correct with a measured ``(x, y, w, h)``."""
        z = np.array([float(box[0] + box[2] / 2), float(box[1] + box[3] / 2), float(box[2]), float(box[3])])
        R = np.eye(4) * (self.noise * max(self.x[3], 1.0)) ** 2
        S = self.H @ self.P @ self.H.T + R
        K = self.P @ self.H.T @ np.linalg.inv(S)
        self.x = self.x + K @ (z - self.H @ self.x)
        self.P = (np.eye(8) - K @ self.H) @ self.P

    @property
    def box(self) -> torch.Tensor:
        cx, cy, w, h = self.x[:4]
        return torch.tensor([cx - w / 2, cy - h / 2, w, h], dtype=torch.float32)


@dataclass
class _Distractor:
    box: torch.Tensor  # (4,)
    velocity: torch.Tensor  # (2,)
    hist: torch.Tensor
    missed: int = 0


# ------------------------------------------------------------------------------ online state
@dataclass
class Decoded:
    """One frame decoded by :class:`FrameDecoder`, in network-input pixels.

    Attributes:
        box: ``(4,)`` subject box (the motion model's prediction when ``occluded``).
        score: Subject heat at the chosen peak.
        occluded: The gate fired and re-detection (if on) did not re-acquire: the box coasted.
        redetected: Re-detection re-acquired the target this frame.
        part_position, part_size: ``(K, 2)`` decoded parts.
        part_score: ``(K,)`` element product at each part's peak.
        part_visible: ``(K,)`` bool, False where the part is reported hidden (abstention).
        part_heat, part_size_map, part_offset_map, product: The maps of the frame
            (``(K, h, w)``, ``(K, 2, h, w)`` ×2, ``(K, h, w)``), for baselines and drawing.
    """

    box: torch.Tensor
    score: float
    occluded: bool
    redetected: bool
    part_position: torch.Tensor
    part_size: torch.Tensor
    part_score: torch.Tensor
    part_visible: torch.Tensor
    part_heat: torch.Tensor
    part_size_map: torch.Tensor
    part_offset_map: torch.Tensor
    product: torch.Tensor


@dataclass
class FrameDecoder:
    """Per-track decoding state and the per-frame chain S202–S205 with the levers of the settings.

    Args:
        backend: Runs the networks.
        settings: The decoding settings.
        input_size: Side ``S`` of the square network input.
        stride: Map stride: maps are ``S / stride`` square.
    """

    backend: Backend
    settings: TrackerSettings
    input_size: int
    stride: int
    kernel: torch.Tensor | None = None
    memory: torch.Tensor | None = None
    box: torch.Tensor | None = None
    kalman: BoxKalman | None = None
    part_centre: torch.Tensor | None = None
    part_size: torch.Tensor | None = None
    target_hist: torch.Tensor | None = None
    distractors: list[_Distractor] = field(default_factory=list)
    frames_since_memory: int = 0
    occluded_run: int = 0  # consecutive occluded frames so far

    @property
    def map_hw(self) -> tuple[int, int]:
        return self.input_size // self.stride, self.input_size // self.stride

    @property
    def ratio(self) -> Ratio:
        return float(self.stride), float(self.stride)

    def start(self, x: torch.Tensor, box: torch.Tensor) -> Decoded | None:
        """Begin a track on the network input ``x (1, 3, S, S)`` at ``box (4,)`` (network pixels).

        Returns:
            The parts decoded on this frame when the part window needs their starting positions,
            else ``None``.
        """
        s = self.settings
        self.kernel = self.backend.template(x, box[None])  # (1, C, kh, kw)
        self.memory, self.frames_since_memory, self.occluded_run = None, 0, 0
        self.box = box.clone()
        self.kalman = BoxKalman(box, s.motion_noise) if s.motion == "velocity" else None
        self.part_centre = self.part_size = None
        self.target_hist = colour_histogram(x[0], box) if s.distractor_weight > 0 else None
        self.distractors = []
        if s.part_window > 0:  # the parts' starting positions: S202-S205 on this frame
            return self.step(x, prior_box=box, update=False)
        return None

    def reframe(self, a: float, b: torch.Tensor) -> None:
        """Move the track state into new input coordinates ``p_new = a × p_old + b`` (a new search region;
        :func:`~adaptrack.track.geometry.reframe_affine`): the box, the Kalman state, the parts' window
        and the tracked distractors. The template kernels are scale-free and stay."""
        def box(v: torch.Tensor) -> torch.Tensor:
            return torch.cat([v[:2] * a + b, v[2:] * a])

        if self.box is not None:
            self.box = box(self.box)
        if self.kalman is not None:
            k = self.kalman
            k.x = k.x * a
            k.x[:2] += b.double().numpy()
            k.P = k.P * a * a
        if self.part_centre is not None:
            self.part_centre = self.part_centre * a + b
        if self.part_size is not None:
            self.part_size = self.part_size * a
        for d in self.distractors:
            d.box, d.velocity = box(d.box), d.velocity * a

    def _kernel(self) -> torch.Tensor:
        assert self.kernel is not None
        w = self.settings.memory_weight
        if self.memory is None or w <= 0:
            return self.kernel
        return (1 - w) * self.kernel + w * self.memory

    def _subject(self, x: torch.Tensor, prior: torch.Tensor) -> Maps:
        return self.backend.subject(x, self._kernel(), prior)

    def step(self, x: torch.Tensor, prior_box: torch.Tensor | None = None, update: bool = True) -> Decoded:
        """Decode the next frame ``x (1, 3, S, S)``.

        Args:
            x: Network input.
            prior_box: ``(4,)`` centre this frame's prior here instead of the motion model's
                prediction (a given re-detection, or the ground truth to measure association
                apart from tracking); the state is updated as usual.
            update: Update the track state (False only for the start frame).
        """
        if self.kernel is None or self.box is None:
            raise RuntimeError("call start() before step()")
        s = self.settings
        predicted = self.box
        if self.kalman is not None and update:
            predicted = self.kalman.predict()
        if prior_box is not None:
            predicted = prior_box
        part_heat, part_size_map, part_offset_map = self.backend.parts(x)  # (1, K, h, w), (1, K, 2, h, w) x2
        prior = prior_maps(predicted[None], self.map_hw, self.ratio, s.prior_sigma)  # (1, 1, h, w)
        heat, size, offset, region = self._subject(x, prior)
        box, score = self._choose(x, heat, size, offset, prior, predicted)
        occluded = redetected = False
        parts = self._parts(part_heat, region, part_size_map, part_offset_map, None)
        hidden_parts = s.part_gate > 0 and bool((parts[2] < s.part_gate).all())
        if (s.gate > 0 and score < s.gate) or (s.coast_on_hidden_part and hidden_parts):
            occluded = True
            search = s.redetect and self.occluded_run % s.redetect_interval == 0
            found = self._redetect(x) if search else None
            if found is not None:  # the parts' window moves with the box to where it was found
                box, score, region = found
                occluded, redetected = False, True
                parts = self._parts(part_heat, region, part_size_map, part_offset_map,
                                    box_centre(box) - box_centre(self.box))
            else:
                box = predicted
        if occluded:  # parts move with the coasting box and are not trusted
            shift = box_centre(box) - box_centre(self.box)
            parts = self._parts(part_heat, region, part_size_map, part_offset_map, shift)
        pos, psize, pscore, product = parts
        visible = torch.full_like(pscore, not occluded, dtype=torch.bool)
        if s.part_gate > 0:
            visible &= pscore >= s.part_gate
        if update:
            self.occluded_run = self.occluded_run + 1 if occluded else 0
            self._update(x, box, score, occluded, redetected, pos, psize, visible)
        elif s.part_window > 0:
            self.part_centre, self.part_size = pos.clone(), psize.clone()
        return Decoded(box, score, occluded, redetected, pos, psize, pscore, visible, part_heat[0],
                       part_size_map[0], part_offset_map[0], product)

    def _parts(self, part_heat: torch.Tensor, region: torch.Tensor, size_map: torch.Tensor,
               offset_map: torch.Tensor, shift: torch.Tensor | None,
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.settings
        centre = self.part_centre
        if centre is not None and shift is not None:
            centre = centre + shift
        pos, psize, pscore, product = decode_parts(
            part_heat, region, size_map, offset_map, self.ratio, s.part_exponent,
            None if centre is None else centre[None], None if self.part_size is None else self.part_size[None],
            s.part_window)
        return pos[0], psize[0], pscore[0], product[0]

    def _choose(self, x: torch.Tensor, heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor,
                prior: torch.Tensor, predicted: torch.Tensor) -> tuple[torch.Tensor, float]:
        """The subject box and its heat: the windowed maximum, or the best-scored candidate."""
        s = self.settings
        if s.distractor_weight <= 0 and s.jump_penalty <= 0:
            box, score, _ = decode_subject(heat, size, offset, prior, self.ratio, s.window_power)
            return box[0], float(score[0])
        windowed = motion_window(heat[:, 0], prior[:, 0], s.window_power)[0]  # (h, w)
        boxes, ranked, heats = candidate_peaks(windowed, heat[0, 0], size[0], offset[0], self.ratio, s.top_k,
                                               s.candidate_min)
        total = ranked.clone()  # (P,)
        if s.jump_penalty > 0:
            total = total * torch.exp(-s.jump_penalty * jump(boxes, predicted))
        hists = [colour_histogram(x[0], b) for b in boxes] if s.distractor_weight > 0 else []
        if s.distractor_weight > 0 and self.target_hist is not None:
            to_target = torch.tensor([similarity(h, self.target_hist) for h in hists])
            to_others = torch.tensor([self._distractor_similarity(b, h) for b, h in zip(boxes, hists, strict=True)])
            total = total * torch.exp(s.distractor_weight * (to_target - to_others))
        best = int(total.argmax())
        if s.distractor_weight > 0:
            self._follow_distractors(boxes, hists, best)
        return boxes[best], float(heats[best])

    def _distractor_similarity(self, box: torch.Tensor, hist: torch.Tensor) -> float:
        """Largest (appearance × nearness to its predicted box) over the tracked distractors."""
        best = 0.0
        centre = box_centre(box)
        for d in self.distractors:
            predicted = box_centre(d.box) + d.velocity
            near = math.exp(-float((centre - predicted).norm() / max(float(d.box[3]), 1.0)) ** 2 / (2 * 0.25 ** 2))
            best = max(best, near * similarity(hist, d.hist))
        return best

    def _follow_distractors(self, boxes: torch.Tensor, hists: list[torch.Tensor], chosen: int) -> None:
        """Associate this frame's other candidates with the tracked distractors (nearest predicted
        centre within half a box height), start new ones, drop those unseen for 10 frames."""
        target = boxes[chosen]
        unmatched = list(self.distractors)
        for i, (b, h) in enumerate(zip(boxes, hists, strict=True)):
            if i == chosen or float(box_iou(b, target)) > 0.5:
                continue
            centre = box_centre(b)
            dists = [float((centre - box_centre(d.box) - d.velocity).norm()) for d in unmatched]
            j = int(np.argmin(dists)) if dists else -1
            if j >= 0 and dists[j] <= 0.5 * max(float(b[3]), 1.0):
                d = unmatched.pop(j)
                d.velocity = 0.5 * d.velocity + 0.5 * (centre - box_centre(d.box))
                d.box, d.hist, d.missed = b.clone(), 0.8 * d.hist + 0.2 * h, 0
            elif len(self.distractors) < 8:
                self.distractors.append(_Distractor(b.clone(), torch.zeros(2), h))
        for d in unmatched:
            d.missed += 1
            d.box = torch.cat([d.box[:2] + d.velocity, d.box[2:]])
        self.distractors = [d for d in self.distractors if d.missed <= 10]

    def _redetect(self, x: torch.Tensor) -> tuple[torch.Tensor, float, torch.Tensor] | None:
        """Whole-frame search with a flat prior; the box, heat and region maps of a clear winner."""
        s = self.settings
        h, w = self.map_hw
        flat = x.new_ones(1, 1, h, w)
        heat, size, offset, region = self._subject(x, flat)
        boxes, _, heats = candidate_peaks(heat[0, 0], heat[0, 0], size[0], offset[0], self.ratio, 2, 0.0)
        best = float(heats[0])
        second = float(heats[1]) if len(heats) > 1 else 0.0
        if best >= s.redetect_min and best >= s.redetect_margin * second:
            return boxes[0], best, region
        return None

    def _update(self, x: torch.Tensor, box: torch.Tensor, score: float, occluded: bool, redetected: bool,
                pos: torch.Tensor, psize: torch.Tensor, visible: torch.Tensor) -> None:
        s = self.settings
        previous = self.box
        assert previous is not None
        if self.kalman is not None:
            if redetected:
                self.kalman = BoxKalman(box, s.motion_noise)
            elif not occluded:
                self.kalman.update(box)
        if s.part_window > 0:
            if self.part_centre is None or self.part_size is None:
                self.part_centre, self.part_size = pos.clone(), psize.clone()
            else:  # hidden parts move with the box; visible ones are where they were decoded
                shift = box_centre(box) - box_centre(previous)
                keep = visible[:, None]
                self.part_centre = torch.where(keep, pos, self.part_centre + shift)
                self.part_size = torch.where(keep, psize, self.part_size)
        self.box = box.clone()
        self.frames_since_memory += 1
        if (s.memory_weight > 0 and not occluded and score >= s.memory_threshold
                and bool(visible.all()) and self.frames_since_memory >= s.memory_interval):
            self.memory = self.backend.template(x, box[None])
            self.frames_since_memory = 0
