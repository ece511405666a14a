"""Synthetic-to-real adaptation of the part detector: the domain-adaptation patent's S1–S9 on dense maps.

The generator's scenes are the labeled source; unlabeled real frames are the target. One training
step of :class:`~adaptrack.track.train.module.PartDetectorModule` with an
:class:`PartAdaptConfig` (the patent's Expression (1), its third embodiment's minority-shot term
included)::

    loss = θs · L_source + θd · L_domain + θp · L_self + θm · L_minority

* ``L_source`` (S2): the detector's CenterNet loss on synthetic crops, as without adaptation.
* ``L_domain`` (S3/S33): :class:`DenseDomainHead` reads the backbone's feature map through
  :class:`~adaptrack.adapt.networks.GradientReversal` (coefficient
  :func:`~adaptrack.adapt.networks.grl_coefficient` of the training progress) and gives two logits
  per map element (pixel-level DANN / DA-Faster's image-level head);
  :func:`dense_domain_loss` is :func:`adaptrack.adapt.losses.domain_loss` over every element
  (source elements label 0, every target element — unlabeled or labeled — label 1, ¶165).
* ``L_self`` (S7–S9): :class:`DensePseudoLabeler` turns the detector's own heatmap peaks on the
  target crops into pseudo head boxes; :func:`self_learning_focal_loss` trains on them, started
  and stopped by :class:`~adaptrack.adapt.schedule.SelfLearningGate` (S4, S11) fed with the
  source heat loss.
* ``L_minority`` (S32, third embodiment): the source loss on crops of the few labeled real
  frames (:class:`~adaptrack.track.train.target.LabeledTargetCrops`), drawn every step.

The weights θ are :class:`adaptrack.adapt.config.LossWeights` (Expression (2) included), the gate
:class:`adaptrack.adapt.config.GateConfig`: the same groups as system 1, not copies.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from adaptrack.adapt.config import GateConfig, LossWeights
from adaptrack.adapt.losses import domain_loss
from adaptrack.adapt.networks import GradientReversal
from adaptrack.adapt.pseudo import MASKING_RULES
from adaptrack.adapt.schedule import SelfLearningGate, loss_weight_decay
from adaptrack.common.errors import ConfigError
from adaptrack.common.training import as_group
from adaptrack.track.geometry import Ratio, centernet_targets, centre_size_to_xywh, local_peaks
from adaptrack.track.train.losses import focal_loss

IGNORE_RULE = MASKING_RULES["dual"]
"""The masking rule whose *full* mask (``t2 <= score <= t1``, FIG. 10 / S15: neutral feedback) is the
dense ignore band: heat elements between the ignore threshold and the threshold leave the loss."""


@dataclass(frozen=True)
class DensePseudoConfig:
    """Which heatmap peaks of the target crops become pseudo boxes (S7, S8) and what is ignored.

    Attributes:
        threshold: A local maximum of the heat map whose value *exceeds* it is a pseudo object
            (claim 13's strict boundary).
        ignore_threshold: Elements with ``ignore_threshold <= heat <= threshold`` (not a pseudo
            object's centre) are masked out of the self-learning loss; below it they count as
            background. Equal to ``threshold``: nothing is ignored.
        max_per_image: At most this many pseudo objects per crop and part, the strongest first
            (the per-image counterpart of S17/S18's caps).
        sigma_scale: σ of the pseudo targets' Gaussians as a fraction of the box side (None: the
            module's own ``sigma_scale``).
    """

    threshold: float = 0.5
    ignore_threshold: float = 0.2
    max_per_image: int = 16
    sigma_scale: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.ignore_threshold <= self.threshold <= 1.0:
            raise ConfigError(f"model.adaptation.pseudo needs 0 <= ignore_threshold <= threshold <= 1, got "
                              f"ignore_threshold={self.ignore_threshold}, threshold={self.threshold}")
        if self.max_per_image < 1:
            raise ConfigError(f"model.adaptation.pseudo.max_per_image={self.max_per_image} must be >= 1")
        if self.sigma_scale is not None and not self.sigma_scale > 0:
            raise ConfigError(f"model.adaptation.pseudo.sigma_scale={self.sigma_scale} must be > 0 or null")


@dataclass(frozen=True)
class PartAdaptConfig:
    """The part detector's adaptation settings (``model.adaptation`` in YAML).

    Attributes:
        weights: θ of Expression (1) (``source``, ``domain``, ``self_learning``, ``minority_shot``)
            and the optional Expression (2) schedule: system 1's :class:`LossWeights`.
        gate: S4 start / S11 stop of self-learning: system 1's :class:`GateConfig`; it watches the
            source *heat* loss (``stop_watch: domain`` watches the domain loss).
        pseudo: Dense pseudo-labeling (:class:`DensePseudoConfig`).
        grl_gamma: γ of the gradient-reversal ramp ``2 / (1 + exp(-γ p)) - 1``.
        domain_hidden: Width of the dense domain classifier's hidden 1×1 layer.
        self_learning: Run S7–S9 at all (``false``: domain-adversarial only).
    """

    weights: LossWeights = field(default_factory=lambda: LossWeights(domain=0.1))
    gate: GateConfig = field(default_factory=lambda: GateConfig(start_window=50))
    pseudo: DensePseudoConfig = field(default_factory=DensePseudoConfig)
    grl_gamma: float = 10.0
    domain_hidden: int = 32
    self_learning: bool = True

    def __post_init__(self) -> None:
        for key, cls in (("weights", LossWeights), ("gate", GateConfig), ("pseudo", DensePseudoConfig)):
            object.__setattr__(self, key, as_group(cls, getattr(self, key), f"adaptation.{key}"))
        if self.domain_hidden < 1:
            raise ConfigError(f"model.adaptation.domain_hidden={self.domain_hidden} must be >= 1")

    def weights_at(self, gate: SelfLearningGate, progress: float) -> LossWeights:
        """θ at this progress: Expression (2) applied once self-learning has started (as system 1)."""
        w = self.weights
        if w.schedule and gate.state.started:
            f = loss_weight_decay(gate.progress_since_start(progress), w.schedule_start, w.schedule_stop)
            return replace(w, source=w.source * f, domain=w.domain * f, self_learning=w.self_learning * (2.0 - f))
        return w


@dataclass
class DensePseudoLabels:
    """Output of :class:`DensePseudoLabeler` for ``N`` maps of ``h × w`` elements.

    Attributes:
        boxes: ``(N, P, 4)`` pixel x, y, w, h of the pseudo objects, strongest first; NaN rows
            pad to ``P = max_per_image``.
        scores: ``(N, P)`` heat at each pseudo object's peak (NaN for padding).
        confident: ``(N,)`` local maxima above the threshold before the cap.
        target: ``(N, h, w)`` peak-1 Gaussian CenterNet targets of the boxes.
        centre: ``(N, h, w)`` bool, the pseudo objects' centre elements (positives).
        ignore: ``(N, h, w)`` bool, elements masked out of the self-learning loss.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    confident: torch.Tensor
    target: torch.Tensor
    centre: torch.Tensor
    ignore: torch.Tensor

    @property
    def selected(self) -> torch.Tensor:
        """``(N, P)`` bool: real (not padding) pseudo objects."""
        return torch.isfinite(self.scores)

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Pseudo boxes per map, their mean peak score (0 when there is none), the ignored share."""
        sel = self.selected
        n = sel.sum()
        mean_score = torch.where(sel, self.scores, torch.zeros_like(self.scores)).sum() / n.clamp(min=1)
        return {"pseudo_per_image": sel.float().sum(1).mean(), "pseudo_score": mean_score,
                "ignored_share": self.ignore.float().mean()}


class DensePseudoLabeler(nn.Module):
    """Pseudo objects from a detector's own heat, size and offset maps (S7, S8 on dense maps).

    Contract (the style of :class:`adaptrack.adapt.pseudo.PseudoLabeler`):
        input ``heat (N, h, w)`` in (0, 1), ``size (N, 2, h, w)`` and ``offset (N, 2, h, w)`` in
        elements, the image / map ``ratio`` (detached inside); output :class:`DensePseudoLabels`.

    :class:`~adaptrack.adapt.pseudo.PseudoLabeler` is not reused for the selection: it scores whole
    images by their maximum softmax and caps per class over a mini-batch, while a detector needs
    many objects per image, each located and sized, capped per image. Its boundaries are kept
    (a peak is selected when it *exceeds* the threshold) and the ignore band is
    :data:`IGNORE_RULE` — the ``dual`` :class:`~adaptrack.adapt.pseudo.MaskingRule`'s full
    (neutral) mask.

    Math, for one map with heat ``p``:

    * peaks ``Π = {i : p_i = max_{3×3 around i} p  and  p_i > t}``; the selected set ``S`` is the
      ``max_per_image`` largest of ``Π``;
    * each ``i ∈ S`` gives the box centred at ``(i + o_i) · r`` of size ``s_i · r`` (``o``, ``s``
      the offset and size maps, ``r`` the ratio); :func:`~adaptrack.track.geometry.centernet_targets`
      turns the boxes into the Gaussian target ``g`` and the centre elements ``C``;
    * ignored elements ``I = {i ∉ C : t_low <= p_i <= t} ∪ {i : p_i > t, g_i < 1/2}`` — the
      uncertain band, and the confident elements no selected box explains (peaks beyond the cap).

    Args:
        threshold: ``t``.
        ignore_threshold: ``t_low`` (``<= t``).
        max_per_image: Cap per map.
        sigma_scale, min_sigma: Of the Gaussian targets (as :func:`centernet_targets`).
    """

    def __init__(self, threshold: float = 0.5, ignore_threshold: float = 0.2, max_per_image: int = 16,
                 sigma_scale: float = 0.15, min_sigma: float = 0.6) -> None:
        super().__init__()
        DensePseudoConfig(threshold, ignore_threshold, max_per_image, sigma_scale)  # validates
        self.threshold = threshold
        self.ignore_threshold = ignore_threshold
        self.max_per_image = max_per_image
        self.sigma_scale = sigma_scale
        self.min_sigma = min_sigma

    @torch.no_grad()
    def forward(self, heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, ratio: Ratio,
                ) -> DensePseudoLabels:
        heat, size, offset = heat.detach().float(), size.detach().float(), offset.detach().float()
        N, h, w = heat.shape
        peaks = local_peaks(heat, -float("inf")) & (heat > self.threshold)  # (N, h, w) S8: "exceeds"
        ranked = torch.where(peaks, heat, torch.full_like(heat, -1.0)).reshape(N, -1)  # (N, h*w)
        P = min(self.max_per_image, h * w)
        values, idx = ranked.topk(P, dim=1)  # (N, P)
        sel = values > self.threshold  # (N, P)
        cells = torch.stack([idx % w, idx // w], dim=-1)  # (N, P, 2) x, y
        rows = torch.arange(N, device=heat.device)[:, None].expand(N, P)
        off = offset[rows, :, cells[..., 1], cells[..., 0]]  # (N, P, 2)
        wh = size[rows, :, cells[..., 1], cells[..., 0]]  # (N, P, 2)
        r = heat.new_tensor(ratio)
        boxes = centre_size_to_xywh((cells.to(heat.dtype) + off) * r, wh * r)  # (N, P, 4) pixels
        boxes = torch.where(sel[..., None], boxes, torch.full_like(boxes, float("nan")))
        scores = torch.where(sel, values, torch.full_like(values, float("nan")))
        target, _, _, centre = centernet_targets(boxes, (h, w), ratio, self.sigma_scale, self.min_sigma)
        band = IGNORE_RULE.masks(heat.reshape(-1), self.threshold, self.ignore_threshold)[1].view(N, h, w)
        ignore = (band & ~centre) | ((heat > self.threshold) & (target < 0.5))  # (N, h, w)
        return DensePseudoLabels(boxes, scores, peaks.reshape(N, -1).sum(1), target, centre, ignore)


def self_learning_focal_loss(heat: torch.Tensor, pseudo: DensePseudoLabels) -> torch.Tensor:
    """Third loss (S9) on dense maps: the CenterNet focal loss against the pseudo targets, ignored
    elements left out.

    Math: with ``p`` the heat (with gradient), ``g`` and ``C`` the pseudo targets and centres and
    ``K`` the kept elements (not :attr:`DensePseudoLabels.ignore`),
    ``L = 1/max(1, |C|) · Σ_{i∈K} [i∈C] (1-p_i)^2 (-log p_i) + [i∉C] (1-g_i)^4 p_i^2 (-log(1-p_i))``.
    Crops without pseudo objects contribute their confident background (``p < t_low``) only.

    Args:
        heat: ``(N, h, w)`` heat of the target crops.
        pseudo: The labeler's output for the same maps.

    Returns:
        Scalar loss.
    """
    return focal_loss(heat, pseudo.target, keep=~pseudo.ignore)


class DenseDomainHead(nn.Module):
    """Domain classifier on a feature map, per element, behind the gradient reversal layer.

    ``1×1 conv → ReLU → 1×1 conv`` to two logits per element (source, target). Set
    :attr:`grl`'s ``coefficient`` before each step. Not part of the saved
    :class:`~adaptrack.track.models.PartDetector` (the tracker loads ``part_model.*`` only).

    Args:
        channels: Channels of the feature map.
        hidden: Hidden width.
    """

    def __init__(self, channels: int, hidden: int = 32) -> None:
        super().__init__()
        self.grl = GradientReversal()
        self.net = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, 2, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``(N, C, h, w)`` features -> ``(N, 2, h, w)`` domain logits (gradient reversed into the features)."""
        return self.net(self.grl(features))


def dense_domain_loss(logits: torch.Tensor, n_source: int) -> torch.Tensor:
    """:func:`adaptrack.adapt.losses.domain_loss` over every element: ``(N, 2, h, w)`` logits of the
    source crops (first ``n_source``) then the target crops; the mean cross entropy over all elements."""
    N, _, h, w = logits.shape
    flat = logits.permute(0, 2, 3, 1).reshape(N * h * w, 2)  # (N*h*w, 2), crop-major
    return domain_loss(flat, n_source * h * w)


def dense_domain_accuracy(logits: torch.Tensor, n_source: int) -> torch.Tensor:
    """Share of elements the domain head assigns to their own domain (0.5 = features indistinguishable)."""
    pred = logits.argmax(1)  # (N, h, w)
    truth = torch.ones_like(pred)
    truth[:n_source] = 0
    return (pred == truth).float().mean()


@contextmanager
def captured_output(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Record ``module``'s outputs while the context is open (a forward hook, removed at exit)."""
    out: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, o: out.append(o))
    try:
        yield out
    finally:
        handle.remove()
