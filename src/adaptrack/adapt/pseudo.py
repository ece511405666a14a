"""Pseudo labels (S7, S8 and the modifications S12–S18) and the masking-rule registry.

A *masking rule* decides what happens to the target images whose score (maximum softmax) is equal
to or less than the threshold (claims 14, 15): each is a small object in :data:`MASKING_RULES` with
one method, ``masks(scores, threshold, lower_threshold) -> (masked_max, masked_full)``. Adding a rule
touches this file and its test; the names the CLI accepts come from the registry.

Boundaries follow claims 13–15 exactly: an image gets a pseudo label used as teacher data when its
score *exceeds* the threshold; masking applies when the score is *equal to or less than* it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class MaskingRule:
    """Contract of a masking rule.

    ``masks(scores, threshold, lower_threshold)`` takes the ``(B,)`` scores of a mini-batch and
    returns two ``(B,)`` bool tensors, disjoint and both false wherever ``scores > threshold``:
    ``masked_max`` (the maximum logit is replaced by the mask value, negative feedback, FIG. 7B) and
    ``masked_full`` (every logit replaced, neutral feedback, FIG. 7C). Masked images keep their
    argmax as pseudo label (S16) and enter the self-learning loss.

    Attributes:
        description: One line for ``--help`` and reports.
        max_below: Apply max masking to ``scores <= threshold`` (``scores < lower_threshold`` when
            ``full_from_lower`` is also set).
        full_from_lower: Apply full masking to ``lower_threshold <= scores <= threshold``.
        full_below: Apply full masking to every ``scores <= threshold``.
    """

    description: str
    max_below: bool = False
    full_from_lower: bool = False
    full_below: bool = False

    def masks(self, scores: torch.Tensor, threshold: float, lower_threshold: float) -> tuple[torch.Tensor,
                                                                                          torch.Tensor]:
        below = scores <= threshold  # (B,) claims 14, 15: "equal to or less than"
        none = torch.zeros_like(below)
        if self.full_from_lower:  # FIG. 10 / S14, S15
            full = below & (scores >= lower_threshold)
            return (below & ~full) if self.max_below else none, full
        return (below if self.max_below else none), (below if self.full_below else none)


MASKING_RULES: dict[str, MaskingRule] = {
    "none": MaskingRule("FIG. 7A: images at or below the threshold do not enter the self-learning loss"),
    "max": MaskingRule("FIG. 7B / S12: the maximum logit of images at or below the threshold is masked",
                       max_below=True),
    "full": MaskingRule("FIG. 7C / S13: every logit of images at or below the threshold is masked", full_below=True),
    "dual": MaskingRule("FIG. 10 / S14, S15: full mask for t2 <= score <= t1, max mask below t2",
                        max_below=True, full_from_lower=True),
}
"""Every masking rule, by name."""

MaskingName = Literal[tuple(MASKING_RULES)]  # type: ignore[valid-type]


@dataclass
class PseudoLabels:
    """Diagnostics of one pseudo-labeling pass over a target mini-batch.

    Attributes:
        labels: ``(B,)`` argmax class of every image (S7/S16), selected or not.
        scores: ``(B,)`` maximum softmax value (the "score" of S7).
        selected: ``(B,)`` bool, images whose pseudo label is used as teacher data (S8, S17, S18).
        masked_max: ``(B,)`` bool, images whose maximum logit was masked (FIG. 7B / S14).
        masked_full: ``(B,)`` bool, images whose logits were all masked (FIG. 7C / S15).
        confident: ``(B,)`` bool, images whose score exceeds the threshold, before any cap.
    """

    labels: torch.Tensor
    scores: torch.Tensor
    selected: torch.Tensor
    masked_max: torch.Tensor
    masked_full: torch.Tensor
    confident: torch.Tensor

    @property
    def contributing(self) -> torch.Tensor:
        """``(B,)`` bool: images that enter the self-learning loss (selected or masked)."""
        return self.selected | self.masked_max | self.masked_full


def class_ranks(labels: torch.Tensor, order: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Rank of each image within its class when the images are visited in ``order``.

    Args:
        labels: ``(B,)`` class of each image.
        order: ``(B,)`` permutation; ``order[0]`` is visited first.
        num_classes: Number of classes (at least ``labels.max() + 1``).

    Returns:
        ``(B,)`` int64, 0 for the first image of its class in ``order``, 1 for the second, …
    """
    onehot = F.one_hot(labels[order], num_classes)  # (B, K) in visiting order
    ranks_sorted = (onehot.cumsum(0) * onehot).sum(1) - 1  # (B,)
    ranks = torch.empty_like(ranks_sorted)
    ranks[order] = ranks_sorted
    return ranks


def per_class_limit(cap: int | float | str | None, selected: torch.Tensor, labels: torch.Tensor,
                    num_classes: int) -> int | None:
    """The per-class cap of S17 for one mini-batch as a count (``None``: no cap).

    Args:
        cap: A count (int ≥ 1), a fraction of the mini-batch (float in (0, 1), rounded up), or
            ``"equalize"``: the number of confident images of the smallest class that has any
            (FIG. 12B: every class brought to the same count).
        selected: ``(B,)`` confident images before the cap.
        labels: ``(B,)`` their classes.
        num_classes: Number of classes.
    """
    if cap is None:
        return None
    if cap == "equalize":
        counts = torch.bincount(labels[selected], minlength=num_classes)  # (K,)
        nonzero = counts[counts > 0]
        return int(nonzero.min()) if nonzero.numel() else 0
    if isinstance(cap, float):
        return max(1, math.ceil(cap * selected.numel()))
    return int(cap)


class PseudoLabeler(nn.Module):
    """Assign pseudo labels inside one mini-batch (S7, S8 and the modifications S12–S18).

    Contract:
        input ``logits`` ``(B, C)`` of target images (detached inside);
        output :class:`PseudoLabels`.

    Selection: image i is selected when ``score_i = max_c softmax(logits_i)_c > threshold`` (S8).
    Then, optionally, at most ``per_class_cap`` selected images per class are kept, the
    highest-scoring first (fifth modification, S17), and at most ``ceil(total_cap * B)`` in total,
    again highest first (sixth modification, S18). The images at or below the threshold are then
    masked by the rule ``masking`` of :data:`MASKING_RULES`.

    Args:
        threshold: Score above which a pseudo label is used (t1 in FIG. 10).
        masking: Name of the masking rule for the images at or below ``threshold``.
        lower_threshold: t2 of FIG. 10 (rule ``dual``).
        per_class_cap: See :func:`per_class_limit`; ``None`` = no cap.
        total_cap: Maximum share of the mini-batch that may be selected; ``None`` = no cap.
    """

    def __init__(self, threshold: float = 0.95, masking: str = "none", lower_threshold: float = 0.5,
                 per_class_cap: int | float | str | None = None, total_cap: float | None = None) -> None:
        super().__init__()
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if masking not in MASKING_RULES:
            raise ValueError(f"unknown masking rule {masking!r}; choose one of {list(MASKING_RULES)}")
        if masking == "dual" and not 0.0 <= lower_threshold < threshold:
            raise ValueError(f"lower_threshold must be in [0, threshold={threshold}), got {lower_threshold}")
        if per_class_cap is not None and not (per_class_cap == "equalize" or (
                isinstance(per_class_cap, int) and per_class_cap >= 1) or (
                isinstance(per_class_cap, float) and 0 < per_class_cap < 1)):
            raise ValueError(f"per_class_cap must be a count >= 1, a fraction in (0, 1), 'equalize' or None, "
                             f"got {per_class_cap!r}")
        if total_cap is not None and not 0.0 < total_cap <= 1.0:
            raise ValueError(f"total_cap must be in (0, 1] or None, got {total_cap}")
        self.threshold = threshold
        self.rule = MASKING_RULES[masking]
        self.lower_threshold = lower_threshold
        self.per_class_cap = per_class_cap
        self.total_cap = total_cap

    @torch.no_grad()
    def forward(self, logits: torch.Tensor) -> PseudoLabels:
        probs = logits.detach().float().softmax(dim=1)  # (B, C)
        scores, labels = probs.max(dim=1)  # (B,), (B,)
        confident = scores > self.threshold  # (B,) S8, claim 13: "exceeds"
        selected = self._cap(confident, scores, labels, probs.shape[1])
        masked_max, masked_full = self.rule.masks(scores, self.threshold, self.lower_threshold)
        return PseudoLabels(labels, scores, selected, masked_max, masked_full, confident)

    def _cap(self, confident: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor,
             num_classes: int) -> torch.Tensor:
        """S17 then S18, highest scores first, vectorised."""
        if self.per_class_cap is None and self.total_cap is None:
            return confident
        order = torch.argsort(torch.where(confident, scores, torch.full_like(scores, -1.0)), descending=True)
        keep = confident.clone()
        limit = per_class_limit(self.per_class_cap, confident, labels, num_classes)
        if limit is not None:
            keep &= class_ranks(labels, order, num_classes) < limit
        if self.total_cap is not None:
            total = math.ceil(self.total_cap * confident.numel())
            rank = torch.empty_like(order)
            rank[order] = torch.cumsum(keep[order].long(), 0) - 1  # (B,) rank among the kept
            keep &= rank < total
        return keep
