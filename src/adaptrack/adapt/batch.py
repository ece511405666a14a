"""The mini-batch a training step receives (S1, S31): labeled source, unlabeled target, labeled target."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RawBatch:
    """One mini-batch as the loader yields it: uint8 images, not yet augmented.

    Attributes:
        source: ``(Bs, C, H, W)`` uint8 source images.
        source_labels: ``(Bs,)`` int64.
        target: ``(Bt, C, H, W)`` uint8 unlabeled target images.
        target_report_labels: ``(Bt,)`` int64 true labels where known, −1 otherwise (reporting only).
        target_index: ``(Bt,)`` int64 index of each target image in the unlabeled pool.
        labeled: ``(Bl, C, H, W)`` uint8 labeled target images (``Bl = 0`` without them).
        labeled_labels: ``(Bl,)`` int64.
        source_index: ``(Bs,)`` int64 index of each source image in the source training set, or
            ``None`` (bookkeeping: which images a rank read under DDP).
    """

    source: torch.Tensor
    source_labels: torch.Tensor
    target: torch.Tensor
    target_report_labels: torch.Tensor
    target_index: torch.Tensor
    labeled: torch.Tensor
    labeled_labels: torch.Tensor
    source_index: torch.Tensor | None = None


@dataclass
class AdaptBatch:
    """One training mini-batch, augmented and normalized.

    Attributes:
        source: ``(Bs, C, H, W)`` float source images.
        source_labels: ``(Bs,)`` int64 source labels.
        target: ``(Bt, C, H, W)`` float unlabeled target images, weak view (domain loss, S7).
        target_strong: ``(Bt, C, H, W)`` float, a second, strongly augmented view of the same target
            images (the image fed again with ``pseudo.view: strong``).
        target_report_labels: ``(Bt,)`` int64 true target labels where known (−1 otherwise). Used
            only to *report* pseudo-label accuracy; no loss ever reads them.
        target_index: ``(Bt,)`` int64 index of each target image in the unlabeled pool (per-epoch labels).
        labeled: ``(Bl, C, H, W)`` float labeled target images (third embodiment), weak view; ``Bl`` may be 0.
        labeled_labels: ``(Bl,)`` int64 their labels (the minority-shot loss, S32).
        source_index: ``(Bs,)`` int64 index of each source image in the source training set, or ``None``.
    """

    source: torch.Tensor
    source_labels: torch.Tensor
    target: torch.Tensor
    target_strong: torch.Tensor
    target_report_labels: torch.Tensor
    target_index: torch.Tensor
    labeled: torch.Tensor
    labeled_labels: torch.Tensor
    source_index: torch.Tensor | None = None
