"""The settings of :class:`~adaptrack.adapt.module.DomainAdaptationModule`, grouped as the patent groups them.

Each group is a frozen dataclass passed whole to the module (and set from YAML as a nested block,
``model.pseudo.threshold``, ``model.gate.start_ratio``, …). Every group checks its own values when it
is built, so a contradictory option fails at start-up with the key and the value, before anything is
trained or written. Checks that span groups live in :func:`check_consistent`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from adaptrack.adapt.networks import HUB_WEIGHTS, PRESETS, PresetName
from adaptrack.adapt.pseudo import MASKING_RULES, MaskingName
from adaptrack.common.errors import ConfigError

WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
"""Weight files ``model.network.weights`` reads (safetensors, or ``torch.save`` with ``weights_only``)."""

UpdateName = Literal["joint", "two_stage"]
"""``joint``: one back-propagation of Expression (1) through all three networks (FIG. 3).
``two_stage``: the second embodiment (FIG. 19): source + domain loss update all three networks,
then the self-learning loss, on a fresh forward pass, updates the feature extractor and the class
classifier only."""


def _finite(key: str, value: float | None) -> None:
    if value is not None and not math.isfinite(float(value)):
        raise ConfigError(f"{key}={value} must be a finite number")


def _check_all_finite(prefix: str, obj: Any) -> None:
    for f in fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, float):
            _finite(f"{prefix}.{f.name}", value)


@dataclass(frozen=True)
class NetworkConfig:
    """FIG. 4's three networks.

    Attributes:
        preset: ``lenet`` (28×28), ``dtn`` (32×32), ``convnet``, ``resnet18``, ``resnet34`` or ``resnet50``
            (see :data:`~adaptrack.adapt.networks.PRESETS`).
        conv_channels: Override of the feature extractor's conv widths (widening); for the ResNets,
            the 4 stage widths (e.g. ``[8, 16, 32, 64]`` for a tiny one).
        class_hidden: Override of the class classifier's hidden widths (narrowing).
        domain_hidden: Override of the domain classifier's hidden widths (narrowing).
        dropout: Override of the preset's dropout rate.
        grl_gamma: Steepness γ of the gradient-reversal ramp ``2/(1+exp(-γp))-1``.
        domain_call: ``joint`` feeds source and target features to the domain classifier in one call,
            so its batch norms see both domains together; ``per_domain`` calls it once per domain
            (each domain normalised on its own, as adaptrack ≤ 0.1 did).
        bottleneck_dim: Override of the ResNet presets' bottleneck width (Linear → BN → ReLU after pooling).
        weights: Pretrained backbone weights, a ``.safetensors`` or ``.pth`` file in torchvision's
            naming (e.g. torchvision's ImageNet ``resnet50-11ad3fa6.pth``; its ``fc`` layer is
            ignored), or a name of :data:`~adaptrack.adapt.networks.HUB_WEIGHTS`
            (``torchvision:resnet50``: downloaded once, checksum checked, cached). Loaded when ``fit``
            starts a run (a resumed run takes its checkpoint's weights;
            ``validate``/``test``/``predict`` and :func:`adaptrack.adapt.load` never read it).
    """

    preset: PresetName = "lenet"
    conv_channels: tuple[int, ...] | None = None
    class_hidden: tuple[int, ...] | None = None
    domain_hidden: tuple[int, ...] | None = None
    dropout: float | None = None
    grl_gamma: float = 10.0
    domain_call: Literal["joint", "per_domain"] = "joint"
    bottleneck_dim: int | None = None
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"model.network.preset={self.preset!r} is unknown; choose one of {sorted(PRESETS)}")
        resnet = PRESETS[self.preset].backbone == "resnet"
        if self.bottleneck_dim is not None and (not resnet or self.bottleneck_dim < 1):
            raise ConfigError(f"model.network.bottleneck_dim={self.bottleneck_dim} must be a width >= 1 and needs a "
                              f"resnet preset (preset={self.preset!r})")
        if resnet and self.conv_channels is not None and len(self.conv_channels) != 4:
            raise ConfigError(f"model.network.conv_channels={list(self.conv_channels)}: a ResNet has 4 stage widths")
        named = self.weights in HUB_WEIGHTS
        if self.weights is not None and not named and Path(self.weights).suffix not in WEIGHT_SUFFIXES:
            raise ConfigError(f"model.network.weights={self.weights!r} must be a {' or '.join(WEIGHT_SUFFIXES)} file "
                              f"or one of {sorted(HUB_WEIGHTS)}")
        for key in ("conv_channels", "class_hidden", "domain_hidden"):
            value = getattr(self, key)
            if value is not None:
                object.__setattr__(self, key, tuple(int(v) for v in value))
                if not value or min(value) < 1:
                    raise ConfigError(f"model.network.{key}={list(value)} must be a non-empty list of widths >= 1")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.network.dropout={self.dropout} must be in [0, 1)")
        _check_all_finite("model.network", self)


@dataclass(frozen=True)
class LossWeights:
    """The weights θ of Expression (1) and the optional schedule of Expression (2) (seventh modification).

    Attributes:
        source: θs, source loss (S2).
        domain: θd, domain loss (S3, S33).
        self_learning: θp, self-learning loss (S9, S39).
        minority_shot: θm, minority-shot loss of the labeled target images (S32, third embodiment).
        schedule: Apply Expression (2) once self-learning has started: θs and θd are multiplied by
            ``f(λ)`` and θp by ``2 - f(λ)`` (claim 6: lower the first two, raise the third).
        schedule_start: ``s`` of Expression (2), as a fraction λ of the self-learning period.
        schedule_stop: ``max`` of Expression (2); must exceed ``schedule_start``.
    """

    source: float = 1.0
    domain: float = 0.3
    self_learning: float = 1.0
    minority_shot: float = 1.0
    schedule: bool = False
    schedule_start: float = 0.5
    schedule_stop: float = 1.5

    def __post_init__(self) -> None:
        _check_all_finite("model.weights", self)
        for key in ("source", "domain", "self_learning", "minority_shot"):
            if getattr(self, key) < 0:
                raise ConfigError(f"model.weights.{key}={getattr(self, key)} must be >= 0")
        if self.schedule and self.schedule_stop <= self.schedule_start:
            raise ConfigError(f"Expression (2) needs max > s: model.weights.schedule_stop={self.schedule_stop} <= "
                              f"model.weights.schedule_start={self.schedule_start}")

    def of(self, term: str) -> float:
        """θ of a loss term by its name (a field of this class)."""
        if term not in {"source", "domain", "self_learning", "minority_shot"}:
            raise KeyError(f"no weight for loss term {term!r}; add a field to LossWeights")
        return float(getattr(self, term))


PerClassCap = int | float | Literal["equalize"] | None


@dataclass(frozen=True)
class PseudoLabelConfig:
    """Steps S7–S9 and their modifications: which target images get a pseudo label and how they teach.

    Attributes:
        threshold: A pseudo label is given when the maximum softmax *exceeds* it (S8, claim 13).
        masking: Rule for images whose score is *equal to or less than* the threshold (claims 14, 15):
            a name of :data:`~adaptrack.adapt.pseudo.MASKING_RULES` (``none`` FIG. 7A, ``max`` FIG. 7B,
            ``full`` FIG. 7C, ``dual`` FIG. 10).
        lower_threshold: t2 of FIG. 10 (``dual`` only); must be below ``threshold``.
        mask_value: The value written into masked logits (zero in the patent; any value, ¶105).
        per_class_cap: Fifth modification (S17, FIGS. 12A/B): at most this many pseudo labels per
            class in a mini-batch; an int is a count, a float in (0, 1) a fraction of the mini-batch,
            ``"equalize"`` the count of the smallest non-empty class; ``None`` no cap. Under DDP the
            mini-batch is each process's own (``data.batch_size`` target images): the cap applies per
            process, so N processes select up to N times the count per global batch.
        total_cap: Sixth modification (S18): at most this share of the mini-batch is pseudo-labeled
            (under DDP: of each process's mini-batch, as ``per_class_cap``).
        scope: ``batch`` (claim 12, S10): labels are computed inside each mini-batch and never reused;
            ``epoch``: labels are computed once per epoch over the whole unlabeled target set (in eval
            mode) and reused for every mini-batch of that epoch — the opposite, to measure claim 12.
        teacher: Networks' mode when the labels are computed inside a mini-batch: ``train`` (the same
            forward pass as the losses, with dropout and batch statistics) or ``eval`` (a separate
            no-gradient pass without dropout, with running statistics).
        view: The pseudo-labeled image fed again to the feature extractor (¶56–59, claim 1): ``same``
            (the very image that was labeled) or ``strong`` (a second, strongly augmented view of it).
    """

    threshold: float = 0.95
    masking: MaskingName = "none"
    lower_threshold: float = 0.5
    mask_value: float = 0.0
    per_class_cap: PerClassCap = None
    total_cap: float | None = None
    scope: Literal["batch", "epoch"] = "batch"
    teacher: Literal["train", "eval"] = "train"
    view: Literal["same", "strong"] = "strong"

    def __post_init__(self) -> None:
        _check_all_finite("model.pseudo", self)
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError(f"model.pseudo.threshold={self.threshold} must be in [0, 1]")
        if self.masking not in MASKING_RULES:
            raise ConfigError(f"model.pseudo.masking={self.masking!r} is unknown; choose one of {list(MASKING_RULES)}")
        if self.masking == "dual" and not 0.0 <= self.lower_threshold < self.threshold:
            raise ConfigError(f"masking 'dual' needs 0 <= t2 < t1: model.pseudo.lower_threshold={self.lower_threshold}"
                              f", model.pseudo.threshold={self.threshold}")
        cap = self.per_class_cap
        if isinstance(cap, bool) or (isinstance(cap, str) and cap != "equalize"):
            raise ConfigError(f"model.pseudo.per_class_cap={cap!r} must be a count >= 1, a fraction in (0, 1), "
                              "'equalize' or null")
        if isinstance(cap, int) and cap < 1:
            raise ConfigError(f"model.pseudo.per_class_cap={cap} must be a count >= 1 (or a fraction in (0, 1))")
        if isinstance(cap, float) and not 0.0 < cap < 1.0:
            raise ConfigError(f"model.pseudo.per_class_cap={cap} must be a fraction in (0, 1) (or a count >= 1)")
        if self.total_cap is not None and not 0.0 < self.total_cap <= 1.0:
            raise ConfigError(f"model.pseudo.total_cap={self.total_cap} must be in (0, 1] or null")


@dataclass(frozen=True)
class GateConfig:
    """When self-learning runs: the start gate S4 (first determination unit 13) and the stop S11.

    Self-learning starts at the first of: the source loss plateaus (the mean over a window of
    ``start_window`` steps fell by less than ``start_min_delta``, relative, from the window before);
    the source loss is at or below ``start_source_loss`` (claim 7); the processed-epoch ratio reaches
    ``start_ratio``.

    Attributes:
        start_window: Steps per plateau window; 0 disables the plateau test.
        start_min_delta: Relative decrease under which the source loss counts as no longer decreasing.
        start_ratio: Processed-epoch ratio at which self-learning starts at the latest (> 1: never by ratio).
        start_source_loss: Claim 7: start once a step's source loss is <= this; ``None`` disables it.
        stop_loss: Once started, self-learning stops while the watched loss of a step is >= this
            (second modification S11, claim 4); ``None`` never stops.
        stop_watch: The watched loss: ``source`` (¶93) or ``domain`` (claim 4).
        stop_mode: ``suspend``: self-learning resumes when the watched loss falls below the threshold
            again; ``permanent``: it stops for good the first time.
    """

    start_window: int = 100
    start_min_delta: float = 0.02
    start_ratio: float = 0.3
    start_source_loss: float | None = None
    stop_loss: float | None = None
    stop_watch: Literal["source", "domain"] = "source"
    stop_mode: Literal["suspend", "permanent"] = "suspend"

    def __post_init__(self) -> None:
        _check_all_finite("model.gate", self)
        _finite("model.gate.start_source_loss", self.start_source_loss)
        _finite("model.gate.stop_loss", self.stop_loss)
        if self.start_window < 0:
            raise ConfigError(f"model.gate.start_window={self.start_window} must be >= 0 (0 disables the plateau test)")
        if self.start_ratio < 0:
            raise ConfigError(f"model.gate.start_ratio={self.start_ratio} must be >= 0")
        for key in ("start_source_loss", "stop_loss"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ConfigError(f"model.gate.{key}={value} must be >= 0 or null")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and learning-rate schedule.

    Attributes:
        optimizer: ``adam`` (AdamW) or ``sgd`` (momentum 0.9, Nesterov).
        lr: Learning rate.
        weight_decay: Weight decay.
        lr_schedule: ``cosine``, ``dann`` (``lr/(1+10p)^0.75``) or ``constant``.
        backbone_lr_mult: The backbone's learning rate is ``lr × backbone_lr_mult`` (0.1 for a
            pretrained ResNet, as the Office benchmarks train it); the bottleneck and both heads
            keep ``lr``. The schedule scales both groups alike. 1.0: one parameter group.
    """

    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 5e-4
    lr_schedule: Literal["cosine", "dann", "constant"] = "cosine"
    backbone_lr_mult: float = 1.0

    def __post_init__(self) -> None:
        _check_all_finite("model.optim", self)
        if not self.lr > 0:
            raise ConfigError(f"model.optim.lr={self.lr} must be > 0")
        if self.weight_decay < 0:
            raise ConfigError(f"model.optim.weight_decay={self.weight_decay} must be >= 0")
        if not self.backbone_lr_mult > 0:
            raise ConfigError(f"model.optim.backbone_lr_mult={self.backbone_lr_mult} must be > 0")


GROUPS: dict[str, type] = {"network": NetworkConfig, "weights": LossWeights, "pseudo": PseudoLabelConfig,
                           "gate": GateConfig, "optim": OptimConfig}
"""The module's grouped arguments by name, for rebuilding them from a checkpoint's plain dicts."""

