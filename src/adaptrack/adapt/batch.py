"""The mini-batch a training step receives (S1, S31): labeled source, unlabeled target, labeled target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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
        make_strong: Computes ``target_strong`` when it is ``None`` (the view is made only when a
            step reads it, through :meth:`strong_target`); ``None`` when ``target_strong`` is given.
    """

    source: torch.Tensor
    source_labels: torch.Tensor
    target: torch.Tensor
    target_strong: torch.Tensor | None
    target_report_labels: torch.Tensor
    target_index: torch.Tensor
    labeled: torch.Tensor
    labeled_labels: torch.Tensor
    source_index: torch.Tensor | None = None
    make_strong: Callable[[], torch.Tensor] | None = field(default=None, repr=False, compare=False)

    def strong_target(self) -> torch.Tensor:
        """``target_strong`` ``(Bt, C, H, W)``, made (once) by ``make_strong`` if it was deferred."""
        if self.target_strong is None:
            if self.make_strong is None:
                raise ValueError("this batch has no strong target view and nothing to make it with")
            self.target_strong = self.make_strong()
            self.make_strong = None
        return self.target_strong
