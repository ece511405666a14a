"""The mini-batch a training step receives (S1): labeled source images and unlabeled target images."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AdaptBatch:
    """One training mini-batch, already augmented and normalized.

    Attributes:
        source: ``(Bs, C, H, W)`` float source images.
        source_labels: ``(Bs,)`` int64 source labels.
        target: ``(Bt, C, H, W)`` float target images, weak view (domain loss, pseudo labeling S7).
        target_strong: ``(Bt, C, H, W)`` float, a second, stronger view of the same target images:
            the pseudo-labeled images fed again to the feature extractor (S9).
        target_report_labels: ``(Bt,)`` int64 true target labels where known (−1 otherwise). Used
            only to *report* pseudo-label accuracy; no loss ever reads them.
    """

    source: torch.Tensor
    source_labels: torch.Tensor
    target: torch.Tensor
    target_strong: torch.Tensor
    target_report_labels: torch.Tensor
