"""Batch-wise augmentation and normalization with kornia, so data never bottlenecks a CPU step."""

from __future__ import annotations

from typing import Literal

import kornia.augmentation as K
import torch
import torch.nn.functional as F
from torch import nn

Strength = Literal["none", "weak", "strong"]


IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""ImageNet's per-channel (R, G, B) mean of images scaled to [0, 1]."""

IMAGENET_STD = (0.229, 0.224, 0.225)
"""ImageNet's per-channel (R, G, B) standard deviation of images scaled to [0, 1]."""


def imagenet_affine() -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)``, each ``(3,)``: ``x * scale + shift`` maps :func:`to_float`'s [-1, 1] images to
    ImageNet normalisation ``(u - mean) / std`` of ``u = x / 2 + 1 / 2`` in [0, 1]."""
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)  # (3,), (3,)
    return 0.5 / std, (0.5 - mean) / std


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, C, H, W)`` in [0, 255] → float in [−1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a uint8 ``(N, C, H, W)`` set to ``size × size`` (bilinear, antialiased), in chunks."""
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty(images.shape[0], images.shape[1], size, size, dtype=torch.uint8)
    for start in range(0, images.shape[0], 4096):
        chunk = images[start:start + 4096].float()  # (n, C, H, W)
        resized = F.interpolate(chunk, size=(size, size), mode="bilinear", align_corners=False,
                                antialias=chunk.shape[-1] > size)
        out[start:start + 4096] = resized.round_().clamp_(0, 255).to(torch.uint8)
    return out


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` → ``(N, channels, H, W)``: gray repeated to RGB, RGB to luminance."""
    c = images.shape[1]
    if c == channels:
        return images
    if c == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise ValueError(f"cannot convert {c}-channel images to {channels} channels")


def build_augmentation(strength: Strength, channels: int, rotation: float = 10.0, translate: float = 0.1,
                       scale: tuple[float, float] = (0.9, 1.1)) -> nn.Module:
    """A kornia pipeline applied to a whole float batch in [−1, 1].

    Args:
        strength: ``none`` (identity), ``weak`` (small affine jitter) or ``strong`` (twice the
            affine range, shear, contrast/brightness and random erasing; the second target view).
        channels: 1 or 3; colour jitter is added for RGB.
        rotation: Max rotation in degrees of the weak pipeline.
        translate: Max translation (fraction of the size) of the weak pipeline.
        scale: Scale range of the weak pipeline.
    """
    if strength == "none":
        return nn.Identity()
    if strength == "weak":
        ops: list[nn.Module] = [K.RandomAffine(degrees=rotation, translate=(translate, translate), scale=scale,
                                               p=1.0, padding_mode="border")]
    else:
        lo, hi = scale
        ops = [
            K.RandomAffine(degrees=2 * rotation, translate=(1.5 * translate, 1.5 * translate),
                           scale=(lo - (1 - lo), hi + (hi - 1)), shear=10.0, p=1.0, padding_mode="border"),
            K.RandomErasing(scale=(0.02, 0.15), ratio=(0.3, 3.3), value=0.0, p=0.5),
        ]
        if channels == 3:
            ops.append(K.ColorJitter(0.3, 0.3, 0.3, 0.05, p=0.8))
        ops.append(K.RandomGaussianNoise(mean=0.0, std=0.1, p=0.5))
    return K.AugmentationSequential(*ops, data_keys=["input"])
