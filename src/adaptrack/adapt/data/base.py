"""The in-memory image set every adapt loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ImageSet:
    """A whole split held in memory.

    Attributes:
        images: ``(N, C, H, W)`` uint8, C = 1 (gray) or 3 (RGB), original size of the format.
        labels: ``(N,)`` int64 class indices into ``classes``, or ``None`` when unlabeled.
        classes: Class names; index i is label i. Digit sets use ``["0", ..., "9"]``.
        name: Human-readable name, e.g. ``"mnist/train"``.
        files: Source file of each image (folder datasets), else ``None``.
    """

    images: torch.Tensor
    labels: torch.Tensor | None
    classes: list[str]
    name: str
    files: list[str] | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"{self.name}: images must be (N, C, H, W) uint8, got "
                             f"{tuple(self.images.shape)} {self.images.dtype}")
        if self.labels is not None and self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"{self.name}: {self.images.shape[0]} images but labels of shape "
                             f"{tuple(self.labels.shape)}")
        if self.files is not None and len(self.files) != self.images.shape[0]:
            raise ValueError(f"{self.name}: {self.images.shape[0]} images but {len(self.files)} file names")

    def __len__(self) -> int:
        return int(self.images.shape[0])
