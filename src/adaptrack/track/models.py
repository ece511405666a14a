"""The two networks of the patent, sized for real-time CPU inference at 256×256.

* :class:`PartDetector` — the *first model* (S102, ¶31–32): full frame in, per part a likelihood
  map (sigmoid), a size map and an offset map at stride ``s``.
* :class:`SubjectModel` — the *second model* (S103, ¶33–34, ¶62): a Siamese, fully convolutional,
  template-conditioned tracker. The template kernel is pooled once from the first frame's features
  inside the target box (:meth:`SubjectModel.encode_template`); each search frame then gives, at the
  same stride, the subject likelihood map, subject size and offset maps, and K part *region* maps.

Both take images as float ``(B, 3, H, W)`` in ``[0, 1]``; H and W must be multiples of the stride.
Maps are ``(B, ·, H / s, W / s)``; sizes and offsets are in map elements (see :mod:`geometry`).

The feature extractor of both is chosen by ``backbone``: ``"mobile"`` (:class:`Backbone`, the default,
trained from scratch) or ``"resnet18"`` / ``"resnet34"`` / ``"resnet50"`` (:class:`ResNetBackbone`:
system 1's :class:`~adaptrack.adapt.networks.ResNet` truncated after ``layer2`` at stride 8, optionally
filled from an ImageNet weights file ``backbone_weights``).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from adaptrack.adapt.networks import (
    IGNORED_WEIGHT_PREFIXES,
    PRESETS,
    BasicBlock,
    Bottleneck,
    ResNet,
    load_backbone_weights,
)

BackboneKind = Literal["mobile", "resnet18", "resnet34", "resnet50"]
BACKBONES: tuple[str, ...] = ("mobile", "resnet18", "resnet34", "resnet50")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PROB_EPS = 1e-4  # sigmoid outputs are clamped to [eps, 1 - eps] (CenterNet), so BCE stays finite


def _prob(logits: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(logits).clamp(PROB_EPS, 1 - PROB_EPS)


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """An inference copy of ``model`` with every batch norm folded into the convolution before it.

    Applies to ``Conv2d`` → ``BatchNorm2d`` pairs inside ``nn.Sequential`` containers and to the
    ``convN`` / ``bnN`` pairs of the ResNet stem and blocks (all of them in these networks); the
    outputs are those of ``model.eval()`` up to float rounding, with fewer kernels per frame.
    ``model`` itself is left untouched.
    """
    folded = copy.deepcopy(model).eval()
    for m in folded.modules():
        if isinstance(m, ResNet | BasicBlock | Bottleneck):
            for i in (1, 2, 3):
                conv, bn = getattr(m, f"conv{i}", None), getattr(m, f"bn{i}", None)
                if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                    setattr(m, f"conv{i}", fuse_conv_bn_eval(conv, bn))
                    setattr(m, f"bn{i}", nn.Identity())
    for seq in folded.modules():
        if not isinstance(seq, nn.Sequential):
            continue
        names = list(seq._modules)
        for a, b in itertools.pairwise(names):
            conv, bn = seq._modules[a], seq._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()
    return folded


class ConvBNReLU(nn.Sequential):
    """3×3 convolution, batch norm, ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class SeparableBlock(nn.Module):
    """Depthwise-separable 3×3 block (MobileNet), with a residual when shapes match.

    Args:
        cin: Input channels.
        cout: Output channels.
        stride: Spatial stride of the depthwise convolution.
        dilation: Dilation of the depthwise convolution (widens the receptive field for free).
    """

    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.dw = nn.Sequential(nn.Conv2d(cin, cin, 3, stride, dilation, dilation, groups=cin, bias=False),
                                nn.BatchNorm2d(cin), nn.ReLU(inplace=True))
        self.pw = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.dw(x))
        return F.relu(y + x if self.residual else y)


class Backbone(nn.Module):
    """Stem plus separable stages down to ``stride``, then dilated context blocks.

    Args:
        channels: Channels per stage; the first is the stem (stride 2), each further one halves
            the resolution until ``stride`` is reached, the rest keep it.
        stride: Output stride, 4 or 8 (or 16).
        dilations: Dilations of the context blocks appended at the output stride.
    """

    def __init__(self, channels: Sequence[int] = (16, 24, 32, 48), stride: int = 8,
                 dilations: Sequence[int] = (2, 4)) -> None:
        super().__init__()
        if stride not in (4, 8, 16):
            raise ValueError(f"stride must be 4, 8 or 16, got {stride}")
        n_down = {4: 2, 8: 3, 16: 4}[stride]
        if len(channels) < n_down:
            raise ValueError(f"stride {stride} needs at least {n_down} channel entries, got {list(channels)}")
        layers: list[nn.Module] = [ConvBNReLU(3, channels[0], stride=2)]
        for i in range(1, len(channels)):
            layers.append(SeparableBlock(channels[i - 1], channels[i], stride=2 if i < n_down else 1))
        layers += [SeparableBlock(channels[-1], channels[-1], dilation=d) for d in dilations]
        self.body = nn.Sequential(*layers)
        self.out_channels = channels[-1]
        self.stride = stride
        self.fine_index = n_down - 2  # the layer whose output is at stride s / 2
        self.fine_channels = channels[self.fine_index]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> ``(B, C, H / s, W / s)``."""
        return self.body(image - 0.5)

    def forward_pyramid(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features at stride s ``(B, C, H / s, W / s)`` and at s / 2 ``(B, C_fine, 2H / s, 2W / s)``."""
        x = image - 0.5
        fine = x
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i == self.fine_index:
                fine = x
        return x, fine


def _projection(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ResNetBackbone(nn.Module):
    """System 1's :class:`~adaptrack.adapt.networks.ResNet` truncated at stride 8, with :class:`Backbone`'s contract.

    Stem (``conv1``, ``bn1``, max-pool; stride 4), ``layer1`` (stride 4, the fine features) and
    ``layer2`` (stride 8); ``layer3`` / ``layer4`` are dropped: at 256×256 the truncated ResNet-18 is
    1.29 GMACs, a ``layer3`` dilated to keep stride 8 would add 2.15 GMACs (2.7× the cost, for both
    models every frame; see ``benchmarks/track_speed.py`` for the measured times). A 1×1 projection
    (conv, BN, ReLU) brings each output to the head widths of the mobile backbone, so the rest of the
    models is unchanged. The input is ImageNet-normalised inside (the models are fed [0, 1] RGB).
    The ResNet's parameter names are torchvision's under ``resnet.`` (e.g. ``resnet.layer1.0.conv1.weight``).

    Args:
        name: ``resnet18``, ``resnet34`` or ``resnet50`` (system 1's presets,
            :data:`~adaptrack.adapt.networks.PRESETS`).
        out_channels: Width of the stride-8 output (the projection of ``layer2``).
        fine_channels: Width of the stride-4 output (the projection of ``layer1``).
        weights: ImageNet weights file (``.pth`` / ``.safetensors`` in torchvision naming, or a
            ``torchvision:resnet18`` name) read by system 1's loader: strict on the stem, ``layer1`` and
            ``layer2``; ``layer3``, ``layer4`` and ``fc`` entries are ignored. ``None``: random (torchvision's init).
        stride: Output stride; only 8.

    Raises:
        ValueError: Unknown ``name`` or a stride other than 8.
        DataError: The weights file is unreadable or does not fit (names the file and the keys).
    """

    UNUSED_PREFIXES = (*IGNORED_WEIGHT_PREFIXES, "layer3.", "layer4.")

    def __init__(self, name: str, out_channels: int, fine_channels: int, weights: str | Path | None = None,
                 stride: int = 8) -> None:
        super().__init__()
        if name not in BACKBONES or name == "mobile":
            raise ValueError(f"unknown ResNet backbone {name!r}; choose one of {list(BACKBONES[1:])}")
        if stride != 8:
            raise ValueError(f"a ResNet backbone has stride 8 (stem + layer1 + layer2), got stride {stride}")
        spec = PRESETS[name]
        # layer3 / layer4 are built one block of width 1 (cheap) and dropped: not run, not in the state dict
        resnet = ResNet(spec.block, (*spec.layers[:2], 1, 1), (*spec.channels[:2], 1, 1))
        del resnet.layer3, resnet.layer4, resnet.avgpool
        if weights is not None:
            load_backbone_weights(resnet, weights, ignore_prefixes=self.UNUSED_PREFIXES)
        self.resnet = resnet
        expansion = 4 if spec.block == "bottleneck" else 1
        self.fine_proj = _projection(spec.channels[0] * expansion, fine_channels)
        self.proj = _projection(spec.channels[1] * expansion, out_channels)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.name = name
        self.out_channels = out_channels
        self.fine_channels = fine_channels
        self.stride = stride

    def _trunk(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r = self.resnet
        x = (image - self.mean) / self.std  # (B, 3, H, W) ImageNet-normalised
        x = r.maxpool(r.relu(r.bn1(r.conv1(x))))  # (B, 64, H/4, W/4)
        fine = r.layer1(x)  # (B, 64·e, H/4, W/4)
        return r.layer2(fine), fine  # (B, 128·e, H/8, W/8), (B, 64·e, H/4, W/4)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> ``(B, C, H / 8, W / 8)``."""
        return self.proj(self._trunk(image)[0])

    def forward_pyramid(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features at stride 8 ``(B, C, H / 8, W / 8)`` and at 4 ``(B, C_fine, H / 4, W / 4)``."""
        coarse, fine = self._trunk(image)
        return self.proj(coarse), self.fine_proj(fine)


def build_backbone(backbone: str, channels: Sequence[int], stride: int, dilations: Sequence[int],
                   weights: str | Path | None = None) -> Backbone | ResNetBackbone:
    """The feature extractor of :class:`PartDetector` / :class:`SubjectModel`.

    Args:
        backbone: ``mobile`` (:class:`Backbone`) or ``resnet18`` / ``resnet34`` / ``resnet50``
            (:class:`ResNetBackbone`, stride 8, its widths those ``channels`` gives the mobile one).
        channels: Mobile backbone channels per stage (for a ResNet: the output widths are the
            mobile backbone's ``out_channels`` and ``fine_channels`` at the same ``stride``).
        stride: Output stride.
        dilations: Dilations of the mobile backbone's context blocks (unused by a ResNet).
        weights: Weights file of a ResNet backbone; the mobile one has none.

    Raises:
        ValueError: Unknown ``backbone``, or ``weights`` for the mobile one.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}; choose one of {list(BACKBONES)}")
    if backbone == "mobile":
        if weights is not None:
            raise ValueError(f"backbone_weights {str(weights)!r} need a ResNet backbone (resnet18/34/50), "
                             "the mobile backbone is trained from scratch")
        return Backbone(channels, stride, dilations)
    n_down = {4: 2, 8: 3, 16: 4}.get(stride, 3)
    if len(channels) < n_down:
        raise ValueError(f"stride {stride} needs at least {n_down} channel entries, got {list(channels)}")
    return ResNetBackbone(backbone, channels[-1], channels[n_down - 2], weights, stride)


def backbone_parameter_groups(model: nn.Module, lr: float, backbone_lr_mult: float = 1.0) -> list[dict]:
    """Optimizer groups of a model with a ``backbone`` attribute, as system 1's ``backbone_lr_mult``.

    One group of all parameters (the optimizer's ``lr``) when ``backbone_lr_mult`` is 1; otherwise the
    backbone's parameters at ``lr × backbone_lr_mult`` (group ``backbone``), then the rest at ``lr`` (``heads``).

    Raises:
        ValueError: ``backbone_lr_mult`` is not > 0.
    """
    if not backbone_lr_mult > 0:
        raise ValueError(f"backbone_lr_mult must be > 0, got {backbone_lr_mult}")
    params = list(model.parameters())
    if backbone_lr_mult == 1.0:
        return [{"params": params}]
    ids = {id(p) for p in model.backbone.parameters()}
    return [{"params": [p for p in params if id(p) in ids], "lr": lr * backbone_lr_mult, "name": "backbone"},
            {"params": [p for p in params if id(p) not in ids], "lr": lr, "name": "heads"}]


class FineNeck(nn.Module):
    """Upsampling neck (FPN style): stride-s features, ×2 bilinear, plus the backbone's stride-s/2
    features, then a separable block; the maps come out at s / 2 (heads 8 px apart stay apart).

    Args:
        coarse_channels: Channels of the stride-s input.
        fine_channels: Channels of the backbone's stride-s/2 features.
        out_channels: Output channels.
    """

    def __init__(self, coarse_channels: int, fine_channels: int, out_channels: int) -> None:
        super().__init__()
        self.top = nn.Sequential(nn.Conv2d(coarse_channels, out_channels, 1, bias=False),
                                 nn.BatchNorm2d(out_channels))
        self.lateral = nn.Sequential(nn.Conv2d(fine_channels, out_channels, 1, bias=False),
                                     nn.BatchNorm2d(out_channels))
        self.block = SeparableBlock(out_channels, out_channels)

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        """``(B, Cc, h, w)``, ``(B, Cf, 2h, 2w)`` -> ``(B, C, 2h, 2w)``."""
        up = F.interpolate(self.top(coarse), size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(F.relu(up + self.lateral(fine)))  # (B, C, 2h, 2w)


class PartDetector(nn.Module):
    """First model: part likelihood, size and offset maps for every person's parts.

    Args:
        num_parts: K, the number of part types.
        channels: Backbone channels per stage.
        stride: Backbone stride; the maps' stride s is this, or half of it with ``fine_maps``.
        dilations: Dilations of the backbone's context blocks.
        fine_maps: Maps at half the backbone stride, through a :class:`FineNeck`.
        backbone: ``mobile`` (:class:`Backbone`) or ``resnet18`` / ``resnet34`` / ``resnet50``
            (:class:`ResNetBackbone`, stride 8); see :func:`build_backbone`.
        backbone_weights: ImageNet weights file of a ResNet backbone (``None``: random).
    """

    def __init__(self, num_parts: int = 1, channels: Sequence[int] = (16, 24, 32, 48), stride: int = 8,
                 dilations: Sequence[int] = (2,), fine_maps: bool = False, backbone: BackboneKind = "mobile",
                 backbone_weights: str | Path | None = None) -> None:
        super().__init__()
        self.num_parts = num_parts
        self.backbone = build_backbone(backbone, channels, stride, dilations, backbone_weights)
        c = self.backbone.out_channels
        self.neck = None
        if fine_maps:  # at 4x the elements, the neck and head work at the fine features' narrower width
            self.neck = FineNeck(c, self.backbone.fine_channels, self.backbone.fine_channels)
            c = self.backbone.fine_channels
        self.head = nn.Conv2d(c, 5 * num_parts, 1)  # K heat + 2K size + 2K offset
        nn.init.constant_(self.head.bias[:num_parts], -4.0)  # CenterNet prior: background everywhere

    @property
    def stride(self) -> int:
        """Stride of the output maps."""
        return self.backbone.stride // 2 if self.neck is not None else self.backbone.stride

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run the detector.

        Args:
            image: ``(B, 3, H, W)`` float in [0, 1].

        Returns:
            ``heat (B, K, h, w)`` likelihood in (0, 1); ``size (B, K, 2, h, w)`` part w, h in elements;
            ``offset (B, K, 2, h, w)`` sub-element x, y offset in elements.
        """
        if self.neck is not None:
            out = self.head(self.neck(*self.backbone.forward_pyramid(image)))  # (B, 5K, h, w)
        else:
            out = self.head(self.backbone(image))  # (B, 5K, h, w)
        B, _, h, w = out.shape
        K = self.num_parts
        heat = _prob(out[:, :K])  # (B, K, h, w)
        size = F.softplus(out[:, K:3 * K]).view(B, K, 2, h, w)  # (B, K, 2, h, w)
        offset = out[:, 3 * K:].view(B, K, 2, h, w)  # (B, K, 2, h, w)
        return heat, size, offset


class SubjectModel(nn.Module):
    """Second model: template-conditioned Siamese tracker with part region maps.

    The template kernel is the search backbone's features pooled inside the target box of the first
    frame (so template and search share weights and scale). Per search frame, a depthwise
    cross-correlation with the kernel and a channel gate from the template's mean feature are
    concatenated with the search features and a motion prior (a Gaussian at the previous position);
    a small dilated head turns them into the output maps.

    Args:
        num_parts: K, the number of part region maps.
        channels: Backbone channels per stage.
        stride: Output stride s (must equal the part detector's).
        dilations: Dilations of the backbone's context blocks.
        head_channels: Width of the prediction head.
        head_dilations: Dilations of the head's separable blocks.
        kernel_size: ``(rows, cols)`` of the template kernel (odd numbers).
        context: Extra border around the target box when pooling the template, as a fraction of
            the box size.
        region_dilations: Dilations of a separate region branch that sees the head features, the
            subject heat logit and the motion prior, so the part region map is placed relative
            to the predicted subject (e.g. ``[2, 4]``); empty: the region maps come from the
            shared head.
        fine_maps: Maps at half the backbone stride: correlation and head run at the backbone
            stride, a :class:`FineNeck` brings them to s / 2 for the output maps (the motion prior
            is then given at s / 2 and average-pooled for the correlation head).
        backbone: ``mobile`` or ``resnet18`` / ``resnet34`` / ``resnet50``; see :func:`build_backbone`.
        backbone_weights: ImageNet weights file of a ResNet backbone (``None``: random).
    """

    def __init__(self, num_parts: int = 1, channels: Sequence[int] = (16, 24, 32, 48), stride: int = 8,
                 dilations: Sequence[int] = (2,), head_channels: int = 48,
                 head_dilations: Sequence[int] = (1, 2, 4), kernel_size: Sequence[int] = (5, 3),
                 context: float = 0.1, region_dilations: Sequence[int] = (), fine_maps: bool = False,
                 backbone: BackboneKind = "mobile", backbone_weights: str | Path | None = None) -> None:
        super().__init__()
        if any(k % 2 == 0 for k in kernel_size):
            raise ValueError(f"kernel_size entries must be odd, got {list(kernel_size)}")
        self.num_parts = num_parts
        self.kernel_size = (int(kernel_size[0]), int(kernel_size[1]))
        self.context = context
        self.backbone = build_backbone(backbone, channels, stride, dilations, backbone_weights)
        c = self.backbone.out_channels
        self.template_proj = nn.Conv2d(c, c, 1)
        self.gate = nn.Linear(c, c)
        self.fuse = nn.Sequential(nn.Conv2d(2 * c + 1, head_channels, 1, bias=False),
                                  nn.BatchNorm2d(head_channels), nn.ReLU(inplace=True))
        self.head_body = nn.Sequential(*[SeparableBlock(head_channels, head_channels, dilation=d)
                                         for d in head_dilations])
        self.neck = None
        ch = head_channels  # width of the map heads
        if fine_maps:
            ch = self.backbone.fine_channels
            self.neck = FineNeck(head_channels, ch, ch)
        self.region_branch: nn.Module | None = None
        if region_dilations:
            self.head = nn.Conv2d(ch, 5, 1)  # heat, size 2, offset 2
            self.region_branch = nn.Sequential(
                nn.Conv2d(ch + 2, ch, 1, bias=False), nn.BatchNorm2d(ch), nn.ReLU(inplace=True),
                *[SeparableBlock(ch, ch, dilation=d) for d in region_dilations],
                nn.Conv2d(ch, num_parts, 1))
        else:
            self.head = nn.Conv2d(ch, 5 + num_parts, 1)  # heat, size 2, offset 2, K regions
        nn.init.constant_(self.head.bias[0], -4.0)

    @property
    def stride(self) -> int:
        """Stride of the output maps."""
        return self.backbone.stride // 2 if self.neck is not None else self.backbone.stride

    def features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Backbone features ``(B, C, H / sb, W / sb)`` and, with ``fine_maps``, the stride-sb/2
        features (else ``None``); sb is the backbone stride."""
        if self.neck is None:
            return self.backbone(image), None
        return self.backbone.forward_pyramid(image)

    def template_grid(self, box: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
        """Sampling grid of the template kernel inside ``box (B, 4)`` pixels; ``(B, kh, kw, 2)`` in [-1, 1]."""
        H, W = image_hw
        kh, kw = self.kernel_size
        pad = box[:, 2:] * self.context  # (B, 2)
        x0 = box[:, 0:1] - pad[:, 0:1]  # (B, 1)
        y0 = box[:, 1:2] - pad[:, 1:2]
        bw = box[:, 2:3] + 2 * pad[:, 0:1]
        bh = box[:, 3:4] + 2 * pad[:, 1:2]
        tx = (torch.arange(kw, dtype=box.dtype, device=box.device) + 0.5) / kw  # (kw,)
        ty = (torch.arange(kh, dtype=box.dtype, device=box.device) + 0.5) / kh  # (kh,)
        gx = (x0 + bw * tx) / W * 2 - 1  # (B, kw) normalised, align_corners=False
        gy = (y0 + bh * ty) / H * 2 - 1  # (B, kh)
        return torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)  # (B, kh, kw, 2)

    def encode_template(self, image: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """Template kernel from the first frame.

        Args:
            image: ``(B, 3, H, W)`` float in [0, 1].
            box: ``(B, 4)`` target box x, y, w, h in pixels of ``image``.

        Returns:
            ``(B, C, kh, kw)`` kernel.
        """
        feat = self.backbone(image)  # (B, C, h, w)
        return self.template_from_features(feat, box, image.shape[-2:])

    def template_from_features(self, feat: torch.Tensor, box: torch.Tensor,
                               image_hw: tuple[int, int] | torch.Size) -> torch.Tensor:
        """Pool the kernel from backbone features ``(B, C, h, w)``; returns ``(B, C, kh, kw)``."""
        grid = self.template_grid(box, (int(image_hw[0]), int(image_hw[1])))  # (B, kh, kw, 2)
        pooled = F.grid_sample(feat, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return self.template_proj(pooled)  # (B, C, kh, kw)

    def forward(self, image: torch.Tensor, kernel: torch.Tensor, prior: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Track in one search frame per row.

        Args:
            image: ``(B, 3, H, W)`` float in [0, 1].
            kernel: ``(B, C, kh, kw)`` from :meth:`encode_template`.
            prior: ``(B, 1, h, w)`` motion prior (peak-1 Gaussian at the previous position), at
                the map stride :attr:`stride`.

        Returns:
            ``subject heat (B, 1, h, w)`` likelihood in (0, 1); ``size (B, 2, h, w)`` subject w, h in
            elements; ``offset (B, 2, h, w)`` in elements; ``region (B, K, h, w)`` part region maps
            in (0, 1).
        """
        feat, fine = self.features(image)  # (B, C, hb, wb), (B, C_fine, 2hb, 2wb) or None
        return self.forward_features(feat, kernel, prior, fine)

    def forward_features(self, feat: torch.Tensor, kernel: torch.Tensor, prior: torch.Tensor,
                         fine: torch.Tensor | None = None,
                         ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`forward` from the :meth:`features` ``feat (B, C, h, w)`` and ``fine``."""
        B, C, h, w = feat.shape
        kh, kw = self.kernel_size
        corr = F.conv2d(feat.reshape(1, B * C, h, w), kernel.reshape(B * C, 1, kh, kw),
                        padding=(kh // 2, kw // 2), groups=B * C).reshape(B, C, h, w)  # (B, C, h, w)
        corr = corr / (kh * kw)
        gate = torch.sigmoid(self.gate(kernel.mean(dim=(2, 3))))[:, :, None, None]  # (B, C, 1, 1)
        coarse_prior = prior if self.neck is None else F.avg_pool2d(prior, 2)  # (B, 1, h, w)
        x = self.fuse(torch.cat([corr, feat * gate, coarse_prior], dim=1))  # (B, Ch, h, w)
        body = self.head_body(x)  # (B, Ch, h, w)
        if self.neck is not None:
            if fine is None:
                raise ValueError("a fine_maps SubjectModel needs the stride-s/2 features (see features())")
            body = self.neck(body, fine)  # (B, Ch, 2h, 2w)
        out = self.head(body)  # (B, 5 + K, h', w'), or (B, 5, h', w') with the region branch
        heat = _prob(out[:, 0:1])  # (B, 1, h', w')
        size = F.softplus(out[:, 1:3])  # (B, 2, h', w')
        offset = out[:, 3:5]  # (B, 2, h', w')
        if self.region_branch is not None:
            region = _prob(self.region_branch(torch.cat([body, out[:, 0:1], prior], dim=1)))  # (B, K, h', w')
        else:
            region = _prob(out[:, 5:])  # (B, K, h', w')
        return heat, size, offset, region
