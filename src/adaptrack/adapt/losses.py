"""Loss terms of Expression (1) and the pseudo-labeler of steps S7–S9.

Each is a small module with a written contract and returns its diagnostics next to the loss.

Expression (1)::

    loss = theta_d * domain_loss + theta_s * source_loss + theta_p * selftrain_loss
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

MaskingMode = Literal["none", "max", "full", "dual"]


def domain_loss(source_logits: torch.Tensor, target_logits: torch.Tensor) -> torch.Tensor:
    """Second loss (S3): cross entropy of the domain classifier, source = 0, target = 1.

    Args:
        source_logits: ``(Bs, 2)`` domain logits of source features.
        target_logits: ``(Bt, 2)`` domain logits of target features.

    Returns:
        Scalar mean cross entropy over all ``Bs + Bt`` images.
    """
    logits = torch.cat([source_logits, target_logits])  # (Bs+Bt, 2)
    labels = torch.cat([
        torch.zeros(source_logits.shape[0], dtype=torch.long, device=logits.device),
        torch.ones(target_logits.shape[0], dtype=torch.long, device=logits.device),
    ])  # (Bs+Bt,)
    return F.cross_entropy(logits, labels)


@dataclass
class PseudoLabels:
    """Diagnostics of one pseudo-labeling pass over a target mini-batch.

    Attributes:
        labels: ``(B,)`` argmax class of every image (S7/S16), selected or not.
        scores: ``(B,)`` maximum softmax value (the "score" of S7).
        selected: ``(B,)`` bool, images whose pseudo label is used as teacher data (S8, S17, S18).
        masked_max: ``(B,)`` bool, images whose maximum logit was masked (FIG. 7B / S14).
        masked_full: ``(B,)`` bool, images whose logits were all masked (FIG. 7C / S15).
    """

    labels: torch.Tensor
    scores: torch.Tensor
    selected: torch.Tensor
    masked_max: torch.Tensor
    masked_full: torch.Tensor

    @property
    def contributing(self) -> torch.Tensor:
        """``(B,)`` bool: images that enter the self-learning loss (selected or masked)."""
        return self.selected | self.masked_max | self.masked_full


class PseudoLabeler(nn.Module):
    """Assign pseudo labels inside one mini-batch (S7, S8 and the modifications S12–S18).

    Contract:
        input ``logits`` ``(B, C)`` of target images (detached inside);
        output :class:`PseudoLabels`.

    Selection: image i is selected when ``score_i = max_c softmax(logits_i)_c > threshold`` (S8).
    Then, optionally, at most ``per_class_cap`` selected images per class are kept, the
    highest-scoring first (fifth modification, S17), and at most ``ceil(total_cap * B)`` in total,
    again highest first (sixth modification, S18).

    Masking of the images below the threshold (third / fourth modifications):
        * ``none``: they do not contribute (FIG. 7A as the issue specifies).
        * ``max``: the maximum logit is masked (FIG. 7B, S12), pseudo label = argmax (S16).
        * ``full``: all logits are masked (FIG. 7C, S13).
        * ``dual``: score in ``[lower_threshold, threshold)`` → full mask (S15);
          score ``< lower_threshold`` → max mask (S14) (FIG. 10).

    Args:
        threshold: Score above which a pseudo label is used (t1 in FIG. 10).
        masking: Masking mode for the images below ``threshold``.
        lower_threshold: t2 of FIG. 10, only for ``masking="dual"``.
        per_class_cap: Maximum selected images per class in one mini-batch; ``None`` = no cap.
        total_cap: Maximum share of the mini-batch that may be selected; ``None`` = no cap.
    """

    def __init__(self, threshold: float = 0.95, masking: MaskingMode = "none", lower_threshold: float = 0.5,
                 per_class_cap: int | None = None, total_cap: float | None = None) -> None:
        super().__init__()
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if masking == "dual" and not 0.0 <= lower_threshold <= threshold:
            raise ValueError(f"lower_threshold must be in [0, threshold={threshold}], got {lower_threshold}")
        if per_class_cap is not None and per_class_cap < 1:
            raise ValueError(f"per_class_cap must be >= 1 or None, got {per_class_cap}")
        if total_cap is not None and not 0.0 < total_cap <= 1.0:
            raise ValueError(f"total_cap must be in (0, 1] or None, got {total_cap}")
        self.threshold = threshold
        self.masking = masking
        self.lower_threshold = lower_threshold
        self.per_class_cap = per_class_cap
        self.total_cap = total_cap

    @torch.no_grad()
    def forward(self, logits: torch.Tensor) -> PseudoLabels:
        probs = logits.detach().float().softmax(dim=1)  # (B, C)
        scores, labels = probs.max(dim=1)  # (B,), (B,)
        selected = scores > self.threshold  # (B,)
        if self.per_class_cap is not None or self.total_cap is not None:
            selected = self._cap(selected, scores, labels)
        below = scores <= self.threshold
        no = torch.zeros_like(selected)
        if self.masking == "none":
            masked_max, masked_full = no, no
        elif self.masking == "max":
            masked_max, masked_full = below, no
        elif self.masking == "full":
            masked_max, masked_full = no, below
        else:  # dual, FIG. 10
            masked_full = below & (scores >= self.lower_threshold)
            masked_max = scores < self.lower_threshold
        return PseudoLabels(labels, scores, selected, masked_max, masked_full)

    def _cap(self, selected: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        order = torch.argsort(torch.where(selected, scores, torch.full_like(scores, -1.0)), descending=True)
        keep = torch.zeros_like(selected)
        per_class = torch.zeros(int(labels.max().item()) + 1, dtype=torch.long, device=labels.device)
        total_limit = selected.numel() if self.total_cap is None else int(
            torch.ceil(torch.tensor(self.total_cap * selected.numel())).item())
        kept = 0
        for i in order.tolist():  # B is a mini-batch: a short loop
            if not bool(selected[i]) or kept >= total_limit:
                break
            c = int(labels[i])
            if self.per_class_cap is not None and per_class[c] >= self.per_class_cap:
                continue
            keep[i] = True
            per_class[c] += 1
            kept += 1
        return keep


def self_learning_loss(logits: torch.Tensor, pseudo: PseudoLabels, mask_value: float = 0.0) -> torch.Tensor:
    """Third loss (S9): cross entropy of target logits against their pseudo labels.

    Math: with ``l`` the logits of image i after masking (the maximum logit set to
    ``mask_value`` for ``masked_max`` images, every logit set to ``mask_value`` for ``masked_full``
    images), ``loss = (1/B) * sum_{i contributing} -log softmax(l_i)[y_i]`` where ``y_i`` is the
    pseudo label. Dividing by the batch size B (not by the number selected) makes the term grow
    with the share of confident images, as in TLlib's confidence-based self-training loss.

    Args:
        logits: ``(B, C)`` class logits of the pseudo-labeled target images (with gradient).
        pseudo: Output of :class:`PseudoLabeler` for the same images.
        mask_value: Value written into masked logits (the patent uses zero).

    Returns:
        Scalar loss; exactly 0 (still differentiable) when no image contributes.
    """
    rows = torch.arange(logits.shape[0], device=logits.device)
    masked = logits.clone()  # (B, C)
    masked[rows[pseudo.masked_max], pseudo.labels[pseudo.masked_max]] = mask_value
    masked[pseudo.masked_full] = mask_value
    per_image = F.cross_entropy(masked, pseudo.labels, reduction="none")  # (B,)
    return (per_image * pseudo.contributing.float()).sum() / max(1, logits.shape[0])
