"""The three networks of FIG. 4 and the gradient reversal layer.

* Feature extractor (first neural network 5n): conv → BN → ReLU blocks whose channel count widens
  block by block (``lenet``, ``dtn``, ``convnet``), or a ResNet-18/34/50 backbone (``resnet*``:
  BasicBlock / Bottleneck stages in torchvision's layout and parameter names, so an ImageNet state
  dict in torchvision naming loads unchanged, see :func:`load_backbone_weights`) followed by global
  average pooling and a bottleneck layer (Linear → BN → ReLU) whose output both heads read.
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
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from adaptrack.common.errors import DataError
from adaptrack.common.files import safe_torch_load

PresetName = Literal["lenet", "dtn", "convnet", "resnet18", "resnet34", "resnet50"]

BackboneName = Literal["conv", "resnet"]
"""``conv``: the conv–BN–ReLU stack of :class:`FeatureExtractor`; ``resnet``: :class:`ResNet`."""


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
        backbone: ``conv`` (:class:`FeatureExtractor`) or ``resnet`` (:class:`ResNet` + bottleneck).
        block: ResNet residual block: ``basic`` (ResNet-18/34) or ``bottleneck`` (ResNet-50).
        layers: ResNet blocks per stage (one per entry of ``channels``).
        bottleneck_dim: Width of the bottleneck layer between the ResNet's pooled features and the
            heads (Linear → BN → ReLU); ``None``: the heads read the pooled features directly.
    """

    channels: tuple[int, ...] = (32, 64, 128)
    kernel_size: int = 3
    padding: int = 1
    downsample: Literal["pool", "stride"] = "pool"
    class_hidden: tuple[int, ...] = (256, 128)
    domain_hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.1
    backbone: BackboneName = "conv"
    block: Literal["basic", "bottleneck"] = "basic"
    layers: tuple[int, ...] = ()
    bottleneck_dim: int | None = None


def _resnet(block: Literal["basic", "bottleneck"], layers: tuple[int, int, int, int]) -> NetworkSpec:
    # torchvision's stage widths; the heads of the Office benchmarks (TLlib's DANN): a 256-wide
    # bottleneck, a linear class classifier, a 1024-1024 domain classifier.
    return NetworkSpec(channels=(64, 128, 256, 512), kernel_size=3, padding=1, downsample="stride",
                       class_hidden=(), domain_hidden=(1024, 1024), dropout=0.0, backbone="resnet",
                       block=block, layers=layers, bottleneck_dim=256)


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
    # ResNets of the Office-31 / Office-Home / VisDA literature (224x224 RGB, ImageNet weights
    # through model.network.weights); stage widths can be narrowed through conv_channels.
    "resnet18": _resnet("basic", (2, 2, 2, 2)),
    "resnet34": _resnet("basic", (3, 4, 6, 3)),
    "resnet50": _resnet("bottleneck", (3, 4, 6, 3)),
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


class BasicBlock(nn.Module):
    """ResNet-18/34 residual block: two 3×3 convolutions (torchvision's names: conv1, bn1, conv2, bn2, downsample)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)  # (B, planes, H/s, W/s)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, planes, H/s, W/s)
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet-50 residual block: 1×1 → 3×3 (stride here, as torchvision's v1.5) → 1×1 ×4 widening."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)  # (B, 4·planes, H/s, W/s)
        out = self.relu(self.bn1(self.conv1(x)))  # (B, planes, H, W)
        out = self.relu(self.bn2(self.conv2(out)))  # (B, planes, H/s, W/s)
        out = self.bn3(self.conv3(out))  # (B, 4·planes, H/s, W/s)
        return self.relu(out + identity)


class ResNet(nn.Module):
    """ResNet body without its ``fc`` layer: ``(B, C, H, W)`` → pooled features ``(B, widths[-1]·expansion)``.

    Module and parameter names are torchvision's (``conv1``, ``bn1``, ``layer1.0.conv1``,
    ``layer2.0.downsample.0``, …), so ``load_state_dict`` takes an ImageNet checkpoint in torchvision
    naming as it is, less its ``fc.*`` entries.

    Args:
        block: ``basic`` (:class:`BasicBlock`) or ``bottleneck`` (:class:`Bottleneck`).
        layers: Blocks per stage (4 stages).
        widths: Stage widths (torchvision: 64, 128, 256, 512); the stem has ``widths[0]`` channels.
        in_channels: Image channels (3 for ImageNet weights).
    """

    def __init__(self, block: Literal["basic", "bottleneck"], layers: tuple[int, ...], widths: tuple[int, ...],
                 in_channels: int = 3) -> None:
        super().__init__()
        if len(layers) != 4 or len(widths) != 4:
            raise ValueError(f"a ResNet has 4 stages: got layers={list(layers)} and widths={list(widths)}")
        kind: type[BasicBlock] | type[Bottleneck] = BasicBlock if block == "basic" else Bottleneck
        self.conv1 = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.in_planes = widths[0]
        self.layer1 = self._stage(kind, widths[0], layers[0], 1)
        self.layer2 = self._stage(kind, widths[1], layers[1], 2)
        self.layer3 = self._stage(kind, widths[2], layers[2], 2)
        self.layer4 = self._stage(kind, widths[3], layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_features = widths[3] * kind.expansion
        for m in self.modules():  # torchvision's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stage(self, kind: type[BasicBlock] | type[Bottleneck], planes: int, blocks: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.in_planes != planes * kind.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.in_planes, planes * kind.expansion, 1, stride=stride, bias=False),
                                       nn.BatchNorm2d(planes * kind.expansion))
        stage = [kind(self.in_planes, planes, stride, downsample)]
        self.in_planes = planes * kind.expansion
        stage += [kind(self.in_planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # (B, w0, H/4, W/4)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, w3·e, H/32, W/32)
        return self.avgpool(x).flatten(1)  # (B, w3·e)


class ResNetFeatureExtractor(nn.Module):
    """First neural network (5n) of the ``resnet*`` presets: :class:`ResNet` + bottleneck (Linear → BN → ReLU).

    ``backbone`` holds the (pretrainable) ResNet, ``bottleneck`` the new layer trained from scratch.
    """

    def __init__(self, in_channels: int, spec: NetworkSpec) -> None:
        super().__init__()
        self.backbone = ResNet(spec.block, spec.layers, spec.channels, in_channels)
        width = self.backbone.out_features
        if spec.bottleneck_dim is None:
            self.bottleneck: nn.Module = nn.Identity()
        else:
            self.bottleneck = nn.Sequential(nn.Linear(width, spec.bottleneck_dim), nn.BatchNorm1d(spec.bottleneck_dim),
                                            nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bottleneck(self.backbone(x))  # (B, C, H, W) -> (B, D)


class AdaptationNetwork(nn.Module):
    """Feature extractor + class classifier + domain classifier (FIG. 4).

    ``forward`` returns class logits (the inference path of FIG. 30); training code calls
    :meth:`features`, :attr:`classifier` and :meth:`domain_logits` separately.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int, spec: NetworkSpec) -> None:
        super().__init__()
        self.spec = spec
        resnet = spec.backbone == "resnet"
        self.feature_extractor: FeatureExtractor | ResNetFeatureExtractor = (
            ResNetFeatureExtractor(in_channels, spec) if resnet else FeatureExtractor(in_channels, spec))
        if isinstance(self.feature_extractor, ResNetFeatureExtractor):  # global pooling: any size gives D
            feature_dim = spec.bottleneck_dim or self.feature_extractor.backbone.out_features
        else:
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

    @property
    def backbone(self) -> nn.Module:
        """The part of the feature extractor that pretrained weights fill (the ResNet; the conv stack)."""
        fe = self.feature_extractor
        return fe.backbone if isinstance(fe, ResNetFeatureExtractor) else fe.body

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
                  domain_hidden: tuple[int, ...] | None = None, dropout: float | None = None,
                  bottleneck_dim: int | None = None) -> AdaptationNetwork:
    """Build a preset from :data:`PRESETS`, optionally overriding its sizes.

    Args:
        preset: ``lenet`` (28×28), ``dtn`` (32×32), ``convnet`` (sized by the other arguments), or
            ``resnet18`` / ``resnet34`` / ``resnet50`` (any size; 224×224 RGB for ImageNet weights).
        in_channels: 1 (gray) or 3 (RGB).
        num_classes: Number of classes (logits of the class classifier).
        image_size: Square input size, used to size the first FC layer.
        channels: Conv block widths, or the 4 ResNet stage widths; ``None`` keeps the preset's.
        class_hidden: Class classifier hidden widths; ``None`` keeps the preset's.
        domain_hidden: Domain classifier hidden widths; ``None`` keeps the preset's.
        dropout: Dropout rate; ``None`` keeps the preset's.
        bottleneck_dim: Width of the ResNet presets' bottleneck layer; ``None`` keeps the preset's.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown network preset {preset!r}; choose one of {sorted(PRESETS)}")
    spec = PRESETS[preset]
    overrides = {k: v for k, v in {"channels": channels, "class_hidden": class_hidden,
                                   "domain_hidden": domain_hidden, "dropout": dropout,
                                   "bottleneck_dim": bottleneck_dim}.items() if v is not None}
    overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
    if "bottleneck_dim" in overrides and spec.backbone != "resnet":
        raise ValueError(f"bottleneck_dim is an option of the resnet presets, not of {preset!r}")
    return AdaptationNetwork(in_channels, num_classes, image_size, replace(spec, **overrides))


IGNORED_WEIGHT_PREFIXES = ("fc.",)
"""Entries of an ImageNet classifier's state dict that are not part of the backbone (its 1000-way head)."""


HUB_WEIGHTS: dict[str, str] = {
    "torchvision:resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "torchvision:resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
    "torchvision:resnet50": "https://download.pytorch.org/models/resnet50-11ad3fa6.pth",
    "torchvision:resnet50_v1": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
}
"""ImageNet weights ``model.network.weights`` accepts by name (online once; cached by ``torch.hub``).

Each file name carries the first digits of its SHA-256, which :func:`torch.hub.load_state_dict_from_url`
checks after the download (``check_hash=True``), so a corrupted or substituted file is refused."""


def fetch_hub_weights(name: str) -> dict[str, torch.Tensor]:
    """Download (once; later from the ``torch.hub`` cache, ``$TORCH_HOME``) the weights ``name`` of :data:`HUB_WEIGHTS`.

    Raises:
        DataError: Unknown name, the download failed (offline: give a local file instead) or its
            checksum does not match.
    """
    url = HUB_WEIGHTS.get(name)
    if url is None:
        raise DataError(f"unknown weights name; known: {', '.join(sorted(HUB_WEIGHTS))} (or give a local file)", name)
    try:
        state = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=True, check_hash=True,
                                                   weights_only=True)
    except Exception as exc:  # URLError offline, RuntimeError on a hash mismatch, UnpicklingError
        raise DataError(f"could not fetch {url} ({type(exc).__name__}: {exc}); offline, download it elsewhere and "
                        "pass the local file as model.network.weights", name) from exc
    return state


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a weights file: ``.safetensors``, or ``.pth`` / ``.pt`` / ``.bin`` (``torch.load(weights_only=True)``),
    or a name of :data:`HUB_WEIGHTS` (:func:`fetch_hub_weights`).

    A ``.pth`` holding ``{"state_dict": {...}}`` (a training checkpoint's layout) is unwrapped.

    Raises:
        DataError: The file is missing, unreadable, needs pickled code, or holds no tensor mapping.
    """
    if str(path) in HUB_WEIGHTS:
        return fetch_hub_weights(str(path))
    path = Path(path)
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise DataError("weights file not found", path)
        try:
            from safetensors.torch import load_file
        except ImportError as exc:  # a declared dependency; missing only in a hand-made environment
            raise DataError("reading .safetensors needs the safetensors package (pip install safetensors)",
                            path) from exc
        try:
            state: Any = load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own SafetensorError (and OSError) on a bad file
            raise DataError(f"not a readable safetensors file ({exc})", path) from exc
    else:
        state = safe_torch_load(path)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError("not a state dict (a mapping of parameter names to tensors)", path)
    return state


def load_backbone_weights(backbone: nn.Module, path: str | Path,
                          ignore_prefixes: tuple[str, ...] = IGNORED_WEIGHT_PREFIXES) -> None:
    """Fill ``backbone`` (e.g. :attr:`AdaptationNetwork.backbone`) from a weights file, strictly.

    Every parameter and buffer of ``backbone`` must be in the file and the file must hold nothing
    else, except the entries under ``ignore_prefixes`` (default an ImageNet head, ``fc.*``) and the
    BN ``num_batches_tracked`` counters (absent from old torchvision files; kept at their current value).

    Args:
        backbone: The module to fill (its names are torchvision's for the ResNets).
        path: ``.safetensors`` or ``.pth`` file (see :func:`read_state_dict`).
        ignore_prefixes: Key prefixes of the file that are skipped (layers ``backbone`` does not
            have, e.g. ``("fc.", "layer3.", "layer4.")`` for a ResNet truncated after ``layer2``).

    Raises:
        DataError: Unreadable file, missing or unexpected keys, or a tensor of the wrong shape; the
            message names the file and the keys.
    """
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith(ignore_prefixes)}
    own = backbone.state_dict()
    missing = sorted(k for k in own if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in own)
    if missing or unexpected:
        raise DataError(f"the weights do not fit the {type(backbone).__name__} backbone: "
                        f"{len(missing)} missing key(s) {_few(missing)}, {len(unexpected)} unexpected key(s) "
                        f"{_few(unexpected)} (torchvision's parameter names are expected, e.g. "
                        "'layer1.0.conv1.weight')", path)
    wrong = [f"{k}: file {tuple(state[k].shape)}, model {tuple(v.shape)}" for k, v in own.items()
             if k in state and state[k].shape != v.shape]
    if wrong:
        raise DataError(f"the weights do not fit the backbone's shapes ({'; '.join(wrong[:3])}"
                        f"{'; …' if len(wrong) > 3 else ''}); ImageNet weights need data.channels 3 and the "
                        "preset's stage widths", path)
    with torch.no_grad():
        for k, v in own.items():
            if k in state:
                v.copy_(state[k].to(v.dtype))


def _few(keys: list[str], n: int = 5) -> str:
    return "[" + ", ".join(keys[:n]) + (", …" if len(keys) > n else "") + "]"
