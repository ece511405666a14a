"""The three networks of FIG. 4 and the gradient reversal layer.

* Feature extractor (first neural network 5n): conv → BN → ReLU blocks whose channel count widens
  block by block.
* Class classifier (second neural network 6n) and domain classifier (third neural network 7n):
  fully connected stacks whose widths narrow layer by layer and end in logits; softmax is applied
  by the losses / at inference, not inside the network.
* Gradient reversal layer (GRL): identity forward, gradient multiplied by ``-coefficient`` backward,
  with the usual ramp ``2 / (1 + exp(-gamma * p)) - 1`` over training progress ``p`` in [0, 1].

Presets live in one explicit registry, :data:`PRESETS`; :func:`build_network` is its typed factory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch
from torch import nn

PresetName = Literal["lenet", "dtn", "convnet"]


def grl_coefficient(progress: float, gamma: float = 10.0) -> float:
    """DANN's ramp ``2 / (1 + exp(-gamma * p)) - 1``: 0 at the start, approaching 1 at the end.

    Args:
        progress: Training progress ``p`` in [0, 1] (clamped).
        gamma: Steepness; 10 in the DANN paper.
    """
    p = min(max(progress, 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


class _ReverseGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, coefficient: float) -> torch.Tensor:
        ctx.coefficient = coefficient  # type: ignore[attr-defined]
        return x.view_as(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coefficient * grad, None  # type: ignore[attr-defined]


def reverse_gradient(x: torch.Tensor, coefficient: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the incoming gradient by ``-coefficient``."""
    return _ReverseGrad.apply(x, coefficient)


class GradientReversal(nn.Module):
    """Module form of :func:`reverse_gradient`; set ``coefficient`` before each step."""

    def __init__(self, coefficient: float = 1.0) -> None:
        super().__init__()
        self.coefficient = coefficient

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reverse_gradient(x, self.coefficient)


@dataclass(frozen=True)
class NetworkSpec:
    """Architecture of the three networks.

    Attributes:
        channels: Output channels of each conv block of the feature extractor (widening).
        kernel_size: Convolution kernel size.
        padding: Convolution padding (0 = "valid" as in LeNet).
        downsample: ``"pool"`` (2×2 max-pool after each block) or ``"stride"`` (stride-2 convs).
        class_hidden: Hidden widths of the class classifier (narrowing), before the logits.
        domain_hidden: Hidden widths of the domain classifier (narrowing), before the 2 logits.
        dropout: Dropout after each conv block and hidden FC layer.
    """

    channels: tuple[int, ...] = (32, 64, 128)
    kernel_size: int = 3
    padding: int = 1
    downsample: Literal["pool", "stride"] = "pool"
    class_hidden: tuple[int, ...] = (256, 128)
    domain_hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.1


PRESETS: dict[str, NetworkSpec] = {
    # LeNet variant of the MNIST<->USPS literature (DANN, ADDA, TLlib's LeNet): 28x28 input,
    # two 5x5 valid convolutions with max-pooling; heads narrow 256 -> 128 -> logits.
    "lenet": NetworkSpec(channels=(32, 64), kernel_size=5, padding=0, downsample="pool",
                         class_hidden=(256, 128), domain_hidden=(256, 128), dropout=0.1),
    # DTN of the SVHN->MNIST literature (Long et al., TLlib's DTN): 32x32 input, three 5x5
    # stride-2 convolutions 64-128-256.
    "dtn": NetworkSpec(channels=(64, 128, 256), kernel_size=5, padding=2, downsample="stride",
                       class_hidden=(512, 256), domain_hidden=(512, 256), dropout=0.2),
    # Generic preset; sized through the constructor arguments of build_network.
    "convnet": NetworkSpec(),
}


def _fc_stack(in_features: int, hidden: tuple[int, ...], out_features: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.BatchNorm1d(h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


class FeatureExtractor(nn.Module):
    """First neural network (5n): conv–BN–ReLU blocks with widening channels, flattened output."""

    def __init__(self, in_channels: int, spec: NetworkSpec) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = in_channels
        stride = 2 if spec.downsample == "stride" else 1
        for out in spec.channels:
            blocks += [
                nn.Conv2d(width, out, spec.kernel_size, stride=stride, padding=spec.padding, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
            ]
            if spec.downsample == "pool":
                blocks.append(nn.MaxPool2d(2))
            if spec.dropout > 0:
                blocks.append(nn.Dropout2d(spec.dropout))
            width = out
        self.body = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).flatten(1)  # (B, C, H, W) -> (B, D)


class AdaptationNetwork(nn.Module):
    """Feature extractor + class classifier + domain classifier (FIG. 4).

    ``forward`` returns class logits (the inference path of FIG. 30); training code calls
    :meth:`features`, :attr:`classifier` and :meth:`domain_logits` separately.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        self.feature_extractor = FeatureExtractor(in_channels, spec)
        with torch.no_grad():
            was_training = self.feature_extractor.training
            self.feature_extractor.eval()
            feature_dim = self.feature_extractor(torch.zeros(1, in_channels, image_size, image_size)).shape[1]
            self.feature_extractor.train(was_training)
        if feature_dim == 0:
            raise ValueError(f"image_size={image_size} is too small for this network ({spec})")
        self.feature_dim = int(feature_dim)
        self.classifier = _fc_stack(self.feature_dim, spec.class_hidden, num_classes, spec.dropout)
        self.domain_classifier = _fc_stack(self.feature_dim, spec.domain_hidden, 2, spec.dropout)
        self.grl = GradientReversal()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_extractor(x)  # (B, C, H, W) -> (B, D)

    def domain_logits(self, z: torch.Tensor, grl_coefficient: float) -> torch.Tensor:
        """Domain logits of features ``z`` (B, D) through the GRL; (B, 2)."""
        self.grl.coefficient = grl_coefficient
        return self.domain_classifier(self.grl(z))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # (B, num_classes) logits


def build_network(preset: PresetName, in_channels: int, num_classes: int, image_size: int,
                  channels: tuple[int, ...] | None = None, class_hidden: tuple[int, ...] | None = None,
                  domain_hidden: tuple[int, ...] | None = None, dropout: float | None = None) -> AdaptationNetwork:
    """Build a preset from :data:`PRESETS`, optionally overriding its sizes.

    Args:
        preset: ``lenet`` (28×28), ``dtn`` (32×32) or ``convnet`` (sized by the other arguments).
        in_channels: 1 (gray) or 3 (RGB).
        num_classes: Number of classes (logits of the class classifier).
        image_size: Square input size, used to size the first FC layer.
        channels: Conv block widths; ``None`` keeps the preset's.
        class_hidden: Class classifier hidden widths; ``None`` keeps the preset's.
        domain_hidden: Domain classifier hidden widths; ``None`` keeps the preset's.
        dropout: Dropout rate; ``None`` keeps the preset's.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown network preset {preset!r}; choose one of {sorted(PRESETS)}")
    spec = PRESETS[preset]
    overrides = {k: v for k, v in {"channels": channels, "class_hidden": class_hidden,
                                   "domain_hidden": domain_hidden, "dropout": dropout}.items() if v is not None}
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    return AdaptationNetwork(in_channels, num_classes, image_size, replace(spec, **overrides))
