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


@dataclass
class FileSet:
    """A split listed, not decoded: image files with their labels, read from disk when used (streaming).

    Attributes:
        files: Path of each image.
        labels: ``(N,)`` int64 class indices into ``classes``, or ``None`` when unlabeled.
        classes: Class names; index i is label i (folder names, as for :class:`ImageSet`).
        name: Human-readable name, e.g. ``"office31/amazon"``.
    """

    files: list[str]
    labels: torch.Tensor | None
    classes: list[str]
    name: str

    def __post_init__(self) -> None:
        if self.labels is not None and self.labels.shape != (len(self.files),):
            raise ValueError(f"{self.name}: {len(self.files)} files but labels of shape {tuple(self.labels.shape)}")

    def __len__(self) -> int:
        return len(self.files)


AnySet = ImageSet | FileSet
"""A split in memory (:class:`ImageSet`) or on disk (:class:`FileSet`)."""


def take(data: AnySet, index: torch.Tensor) -> AnySet:
    """The items ``index`` (``(M,)`` int64 or ``(N,)`` bool) of a set, of the same kind, in that order."""
    if index.dtype == torch.bool:
        index = index.nonzero().flatten()  # (M,) int64
    labels = None if data.labels is None else data.labels[index]  # (M,)
    picked = index.tolist()
    if isinstance(data, FileSet):
        return FileSet([data.files[i] for i in picked], labels, list(data.classes), data.name)
    files = None if data.files is None else [data.files[i] for i in picked]
    return ImageSet(data.images[index], labels, list(data.classes), data.name, files)
