"""Loss terms: CenterNet focal loss, masked L1, and the patent's cross entropy of formula (2)."""

from __future__ import annotations

import torch

from adaptrack.track.geometry import Ratio, gaussian_maps
from adaptrack.track.models import PROB_EPS


def focal_loss(pred: torch.Tensor, gt: torch.Tensor, alpha: float = 2.0, beta: float = 4.0,
               keep: torch.Tensor | None = None) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss, normalised by the number of objects.

    Args:
        pred: ``(B, ..., h, w)`` probabilities in (0, 1).
        gt: Same shape, peak-1 Gaussian targets; elements equal to 1 are the object centres.
        alpha: Focusing exponent.
        beta: Penalty reduction exponent near the centres.
        keep: Optional bool mask of ``pred``'s shape: elements where it is false leave the loss
            (the ignored elements of pseudo targets); ``None`` keeps every element.

    Returns:
        Scalar loss.
    """
    pred = pred.clamp(PROB_EPS, 1 - PROB_EPS)
    pos = gt >= 1 - 1e-6
    neg = ~pos
    if keep is not None:
        pos, neg = pos & keep, neg & keep
    pos_loss = -torch.log(pred) * (1 - pred) ** alpha * pos
    neg_loss = -torch.log(1 - pred) * pred ** alpha * (1 - gt) ** beta * neg
    n_pos = pos.sum().clamp(min=1)
    return (pos_loss.sum() + neg_loss.sum()) / n_pos


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the masked elements.

    Args:
        pred: ``(B, C, h, w)``.
        target: ``(B, C, h, w)``.
        mask: ``(B, h, w)`` bool, the object centre elements.

    Returns:
        Scalar loss (0 when the mask is empty, still attached to ``pred``).
    """
    m = mask[:, None].to(pred.dtype)  # (B, 1, h, w)
    return ((pred - target).abs() * m).sum() / (m.sum() * pred.shape[1]).clamp(min=1)


def map_bce(pred: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross entropy of formula (2): ``1/N Σ [-M_gt log M_inf - (1 - M_gt) log(1 - M_inf)]``.

    Args:
        pred: ``M_inf``, any shape, probabilities (clamped to [1e-4, 1 - 1e-4] for finiteness).
        gt: ``M_gt``, same shape, in [0, 1].
        weight: Optional per-row weight broadcastable to ``pred`` (e.g. 0 for frames without a
            target); N then counts the weighted elements.

    Returns:
        Scalar loss.
    """
    p = pred.clamp(PROB_EPS, 1 - PROB_EPS)
    elem = -gt * torch.log(p) - (1 - gt) * torch.log(1 - p)
    if weight is None:
        return elem.mean()
    w = weight.to(elem.dtype).expand_as(elem)
    return (elem * w).sum() / w.sum().clamp(min=1)


def hard_negative_weights(centres: torch.Tensor, map_hw: tuple[int, int], ratio: Ratio, boost: float,
                          sigma: float = 1.0) -> torch.Tensor:
    """Per-element weights of formula (2) that emphasise other people's parts (hard negatives).

    ``1 + boost × G`` where ``G`` is the element-wise maximum of peak-1 Gaussians (σ in map
    elements) at the given part centres; elements far from every other part keep weight 1.

    Args:
        centres: ``(B, M, 2)`` pixel x, y of other people's part centres (NaN rows = absent).
        map_hw: ``(h, w)`` of the map.
        ratio: ``(rx, ry)`` size ratio between image and map.
        boost: Extra weight at the centres (0 gives all ones).
        sigma: Spread of the emphasis in map elements.

    Returns:
        ``(B, h, w)`` weights ≥ 1.
    """
    g = gaussian_maps(centres, map_hw, ratio, sigma=sigma, normalization="peak1")  # (B, h, w)
    return 1.0 + boost * g
