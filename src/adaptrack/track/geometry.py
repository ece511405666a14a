"""Box, map and heatmap geometry of the part-aware tracker (pure functions, no state).

Conventions (pytracking ``processing_utils`` style):

* Boxes are ``(x, y, w, h)`` in image pixels, ``x, y`` the top-left corner (PoseTrack18/COCO).
* A map of ``h × w`` elements covers an image of ``H × W`` pixels; the *size ratio* is
  ``(W / w, H / h)`` (¶41: 720/24 = 480/16 = 30).
* A pixel position ``p`` falls on map element ``round(p / ratio)`` (¶41–44, rounding half up).
* Offset and size maps are in map elements ("cells"): the decoded position is
  ``peak × ratio + offset × ratio`` and the decoded size ``size × ratio`` (¶60–61), so the same maps
  decode into any image size the input was resized from.

One vocabulary with :mod:`adaptrack.track.data.geometry`: an idea both modules implement has the same
name in both (``box_centre``, ``box_iou``, ``scale_boxes``), on tensors here and on float tuples there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch

Normalization = Literal["patent", "peak1"]
Ratio = tuple[float, float]


# --------------------------------------------------------------------------------------- boxes
def xywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """Top-left/size boxes to corner boxes; ``(..., 4) -> (..., 4)``."""
    x, y, w, h = boxes.unbind(-1)
    return torch.stack([x, y, x + w, y + h], dim=-1)


def xyxy_to_xywh(boxes: torch.Tensor) -> torch.Tensor:
    """Corner boxes to top-left/size boxes; ``(..., 4) -> (..., 4)``."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([x0, y0, x1 - x0, y1 - y0], dim=-1)


def box_centre(boxes: torch.Tensor) -> torch.Tensor:
    """Centres of ``(x, y, w, h)`` boxes; ``(..., 4) -> (..., 2)``."""
    return boxes[..., :2] + 0.5 * boxes[..., 2:]


def centre_size_to_xywh(centre: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Box from centre ``(..., 2)`` and size ``(..., 2)``; returns ``(..., 4)``."""
    return torch.cat([centre - 0.5 * size, size], dim=-1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-wise IoU of ``(x, y, w, h)`` boxes; ``(..., 4), (..., 4) -> (...)``; NaN in, NaN out."""
    a0, b0 = xywh_to_xyxy(a), xywh_to_xyxy(b)
    lt = torch.maximum(a0[..., :2], b0[..., :2])  # (..., 2)
    rb = torch.minimum(a0[..., 2:], b0[..., 2:])  # (..., 2)
    inter = (rb - lt).clamp(min=0).prod(-1)  # (...)
    union = a[..., 2:].prod(-1) + b[..., 2:].prod(-1) - inter  # (...)
    return inter / union.clamp(min=1e-9)


def points_in_boxes(points: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Whether each point lies inside the matching box (edges included); NaN boxes contain nothing.

    Args:
        points: ``(..., 2)`` x, y.
        boxes: ``(..., 4)`` x, y, w, h, broadcastable against ``points``.

    Returns:
        ``(...)`` bool.
    """
    x, y = points[..., 0], points[..., 1]
    bx, by, bw, bh = boxes.unbind(-1)
    return (x >= bx) & (x <= bx + bw) & (y >= by) & (y <= by + bh)


def scale_boxes(boxes: torch.Tensor, sx: float, sy: float) -> torch.Tensor:
    """Scale ``(..., 4)`` boxes from one image size to another (x by ``sx``, y by ``sy``)."""
    return boxes * boxes.new_tensor([sx, sy, sx, sy])


# ----------------------------------------------------------------------------------- map grid
def size_ratio(image_size: Sequence[float], map_size: Sequence[int]) -> Ratio:
    """Size ratio between an image and a map (¶41).

    Args:
        image_size: ``(W, H)`` of the image in pixels.
        map_size: ``(w, h)`` of the map in elements.

    Returns:
        ``(W / w, H / h)``.
    """
    return float(image_size[0]) / float(map_size[0]), float(image_size[1]) / float(map_size[1])


def round_half_up(x: torch.Tensor) -> torch.Tensor:
    """"Rounding off" as in ¶42 (10.5 -> 11), unlike ``torch.round``'s half-to-even."""
    return torch.floor(x + 0.5)


def centre_to_cell(centre: torch.Tensor, ratio: Ratio) -> torch.Tensor:
    """Average vector of the correct-answer map: ``round(centre / ratio)`` (¶41–44).

    Args:
        centre: ``(..., 2)`` pixel x, y.
        ratio: ``(rx, ry)`` size ratio.

    Returns:
        ``(..., 2)`` float element coordinates (whole numbers; NaN stays NaN).
    """
    return round_half_up(centre / centre.new_tensor(ratio))


def gaussian_maps(centres: torch.Tensor, map_hw: tuple[int, int], ratio: Ratio,
                  sigma: float | torch.Tensor = 1.0, normalization: Normalization = "patent",
                  rounded: bool = True) -> torch.Tensor:
    """2D Gaussian likelihood maps centred at ``round(centre / ratio)`` (formula (1), claim 2).

    Several centres on one map combine by element-wise maximum; NaN centres are skipped.

    Args:
        centres: ``(B, N, 2)`` pixel x, y of the part centres (NaN rows = absent).
        map_hw: ``(h, w)`` of the map.
        ratio: ``(rx, ry)`` size ratio between image and map.
        sigma: Standard deviation in map elements; a scalar or ``(B, N)``. Formula (1) is σ = 1.
        normalization: ``"patent"`` multiplies by ``1 / (2πσ²)`` as formula (1) (peak 0.159 at
            σ = 1); ``"peak1"`` leaves the peak at 1 (CenterNet style).
        rounded: Centre the Gaussian on the rounded element (the patent); ``False`` keeps the
            sub-element centre (used for the tracker's search prior).

    Returns:
        ``(B, h, w)`` maps; all zeros where a batch row has no valid centre.
    """
    h, w = map_hw
    mu = centres / centres.new_tensor(ratio)  # (B, N, 2) in elements
    if rounded:
        mu = round_half_up(mu)
    valid = torch.isfinite(mu).all(-1)  # (B, N)
    mu = torch.where(valid[..., None], mu, torch.zeros_like(mu))
    sig = torch.as_tensor(sigma, dtype=centres.dtype, device=centres.device)
    sig = sig.expand(valid.shape) if sig.dim() == 0 else sig  # (B, N)
    sig = torch.where(torch.isfinite(sig) & (sig > 0), sig, torch.ones_like(sig))
    ys = torch.arange(h, dtype=centres.dtype, device=centres.device)  # (h,)
    xs = torch.arange(w, dtype=centres.dtype, device=centres.device)  # (w,)
    dx2 = (xs[None, None, None, :] - mu[..., 0, None, None]) ** 2  # (B, N, 1, w)
    dy2 = (ys[None, None, :, None] - mu[..., 1, None, None]) ** 2  # (B, N, h, 1)
    var = sig[..., None, None] ** 2  # (B, N, 1, 1)
    g = torch.exp(-(dx2 + dy2) / (2 * var))  # (B, N, h, w)
    if normalization == "patent":
        g = g / (2 * math.pi * var)
    elif normalization != "peak1":
        raise ValueError(f"normalization must be 'patent' or 'peak1', got {normalization!r}")
    g = g * valid[..., None, None]
    if g.shape[1] == 0:
        return g.new_zeros(g.shape[0], h, w)
    return g.amax(dim=1)  # (B, h, w)


def centernet_targets(boxes: torch.Tensor, map_hw: tuple[int, int], ratio: Ratio,
                      sigma_scale: float = 0.15, min_sigma: float = 0.6,
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """CenterNet training targets for boxes: peak-1 heatmap, size and offset maps, centre mask.

    The centre element is ``round(centre / ratio)``; the offset is what the rounding removed,
    ``centre / ratio - element`` (in elements), the size is ``(w, h) / ratio``.

    Args:
        boxes: ``(B, N, 4)`` pixel x, y, w, h; NaN rows are absent objects.
        map_hw: ``(h, w)`` of the maps.
        ratio: ``(rx, ry)`` size ratio.
        sigma_scale: Gaussian σ as a fraction of the box's geometric-mean side (in elements).
        min_sigma: Lower bound of σ in elements.

    Returns:
        ``heat (B, h, w)``, ``size (B, 2, h, w)``, ``offset (B, 2, h, w)``, ``mask (B, h, w)`` bool
        (True at every object centre element).
    """
    B = boxes.shape[0]
    h, w = map_hw
    r = boxes.new_tensor(ratio)
    centre = box_centre(boxes) / r  # (B, N, 2) elements
    wh = boxes[..., 2:] / r  # (B, N, 2) elements
    valid = torch.isfinite(boxes).all(-1)  # (B, N)
    cell = round_half_up(centre)  # (B, N, 2)
    inside = valid & (cell[..., 0] >= 0) & (cell[..., 0] < w) & (cell[..., 1] >= 0) & (cell[..., 1] < h)
    sigma = (wh.clamp(min=1e-3).prod(-1).sqrt() * sigma_scale).clamp(min=min_sigma)  # (B, N)
    heat = gaussian_maps(torch.where(inside[..., None], boxes[..., :2] + 0.5 * boxes[..., 2:],
                                     torch.full_like(centre, float("nan"))),
                         map_hw, ratio, sigma=sigma, normalization="peak1")  # (B, h, w)
    size = boxes.new_zeros(B, 2, h, w)
    offset = boxes.new_zeros(B, 2, h, w)
    mask = torch.zeros(B, h, w, dtype=torch.bool, device=boxes.device)
    b_idx, n_idx = inside.nonzero(as_tuple=True)
    cx = cell[b_idx, n_idx, 0].long()
    cy = cell[b_idx, n_idx, 1].long()
    size[b_idx, :, cy, cx] = wh[b_idx, n_idx]
    offset[b_idx, :, cy, cx] = centre[b_idx, n_idx] - cell[b_idx, n_idx]
    mask[b_idx, cy, cx] = True
    return heat, size, offset, mask


# ------------------------------------------------------------------------------------ decoding
def gather_at(maps: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
    """Values of ``(B, C, h, w)`` maps at one element per row, ``cell (B, 2)`` long x, y; ``(B, C)``."""
    B, C, h, w = maps.shape
    flat = (cell[:, 1] * w + cell[:, 0]).view(B, 1, 1).expand(B, C, 1)  # (B, C, 1)
    return maps.reshape(B, C, h * w).gather(2, flat).squeeze(2)


def decode_peak(score: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, ratio: Ratio,
                valid: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decode the maximum of a score map into an image position and size (¶60–61, claim 6).

    ``position = peak × ratio + offset × ratio`` and ``size = size_map[peak] × ratio``.

    Args:
        score: ``(B, h, w)`` map (element product, likelihood, …).
        size: ``(B, 2, h, w)`` size map in elements (w, h).
        offset: ``(B, 2, h, w)`` offset map in elements (x, y).
        ratio: ``(rx, ry)`` size ratio between the image to report in and the map.
        valid: Optional ``(B, h, w)`` bool; elements outside it are not considered. A row with no
            valid element decodes as NaN with score 0.

    Returns:
        ``position (B, 2)`` pixel x, y; ``size (B, 2)`` pixel w, h; ``peak score (B,)``;
        ``peak element (B, 2)`` long x, y.
    """
    B, h, w = score.shape
    s = score if valid is None else score.masked_fill(~valid, float("-inf"))
    best, idx = s.reshape(B, h * w).max(dim=1)  # (B,), (B,)
    cell = torch.stack([idx % w, idx // w], dim=1)  # (B, 2)
    r = score.new_tensor(ratio)
    position = (cell.to(score.dtype) + gather_at(offset, cell)) * r  # (B, 2)
    wh = gather_at(size, cell) * r  # (B, 2)
    empty = ~torch.isfinite(best)
    if bool(empty.any()):
        position = position.masked_fill(empty[:, None], float("nan"))
        wh = wh.masked_fill(empty[:, None], float("nan"))
        best = best.masked_fill(empty, 0.0)
    return position, wh, best, cell


def motion_window(heat: torch.Tensor, prior: torch.Tensor, power: float) -> torch.Tensor:
    """Subject score with a motion window: ``heat × prior ** power`` (``heat`` itself for power 0).

    Args:
        heat: ``(B, h, w)`` subject likelihood.
        prior: ``(B, h, w)`` peak-1 Gaussian at the previous position.
        power: Window strength (≥ 0); larger keeps the box nearer the previous position.

    Returns:
        ``(B, h, w)`` score to decode the subject box at.
    """
    return heat * prior ** power if power else heat


def part_score(heat: torch.Tensor, region: torch.Tensor, exponent: float = 1.0) -> torch.Tensor:
    """Map the parts are decoded at: ``heat ** exponent × region``.

    ``exponent = 1`` is the patent's element product (S204). A smaller exponent flattens the part
    likelihood, so the region map decides between two detected heads: where the tracked person's
    head is half hidden behind a neighbour's, the detector scores the neighbour's head higher and
    the plain product follows it although the region map marks the right one.

    Args:
        heat: ``(..., h, w)`` part likelihood in [0, 1].
        region: ``(..., h, w)`` part region map in [0, 1].
        exponent: Weight of the part likelihood, > 0.

    Returns:
        ``(..., h, w)`` score map.
    """
    if not exponent > 0:
        raise ValueError(f"exponent must be > 0, got {exponent}")
    return (heat if exponent == 1 else heat.clamp(min=0) ** exponent) * region


def part_window(product: torch.Tensor, centre: torch.Tensor, size: torch.Tensor, ratio: Ratio,
                sigma: float) -> torch.Tensor:
    """Element product with a part-level motion window at each part's previous position.

    ``product × exp(-d² / 2σ²)``, ``d`` the distance in map elements to the previous part centre,
    ``σ = sigma × sqrt(part w × h)`` (also in elements, at least 0.5). Heads of neighbours are
    typically one to two head sizes apart while a head moves a fraction of its size per frame, so a
    window of a fraction of the part size keeps the decoded part on the same person.

    Args:
        product: ``(B, K, h, w)`` element product maps.
        centre: ``(B, K, 2)`` previous part centres in pixels (NaN: no window for that part).
        size: ``(B, K, 2)`` previous part sizes in pixels.
        ratio: Image / map size ratio.
        sigma: Window σ as a fraction of the part's geometric-mean side; 0 returns ``product``.

    Returns:
        ``(B, K, h, w)`` windowed maps.
    """
    if sigma <= 0:
        return product
    B, K, h, w = product.shape
    side = (size / size.new_tensor(ratio)).clamp(min=1e-3).prod(-1).sqrt()  # (B, K) elements
    sig = (sigma * side).nan_to_num(1.0).clamp(min=0.5)  # (B, K)
    g = gaussian_maps(centre.reshape(B * K, 1, 2), (h, w), ratio, sigma=sig.reshape(B * K, 1),
                      normalization="peak1", rounded=False).reshape(B, K, h, w)
    valid = torch.isfinite(centre).all(-1) & torch.isfinite(size).all(-1)  # (B, K)
    return torch.where(valid[..., None, None], product * g, product)


def cell_centres(map_hw: tuple[int, int], ratio: Ratio, device: torch.device | None = None) -> torch.Tensor:
    """Pixel position ``element × ratio`` of every map element; ``(h, w, 2)`` x, y."""
    h, w = map_hw
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32, device=device),
                            torch.arange(w, dtype=torch.float32, device=device), indexing="ij")
    return torch.stack([xs * ratio[0], ys * ratio[1]], dim=-1)


def local_peaks(score: torch.Tensor, threshold: float) -> torch.Tensor:
    """3×3 non-maximum suppression; ``(B, h, w) -> (B, h, w)`` bool of peaks ≥ ``threshold``."""
    pooled = torch.nn.functional.max_pool2d(score[:, None], 3, stride=1, padding=1)[:, 0]  # (B, h, w)
    return (score == pooled) & (score >= threshold)


# ------------------------------------------------------------------------------ search regions
Window = tuple[int, int, int]
"""A square search region ``(x0, y0, side)`` in integer frame pixels (it may reach past the frame)."""


def search_window(box: torch.Tensor, factor: float, side: float | None = None) -> Window:
    """The square search region centred on ``box (4,)``, as SiamFC / pytracking crop around the target.

    Args:
        box: ``(x, y, w, h)`` in frame pixels.
        factor: Region side as a multiple of ``side`` (default the box's longer side): at 2.3 a person fills
            0.43 of the region, as the synthetic scenes' targets fill 0.38–0.5 of their frames.
        side: The reference length the factor multiplies (e.g. a smoothed box size); default ``max(w, h)``.

    Returns:
        ``(x0, y0, side)``, rounded to whole pixels, side at least 8.
    """
    ref = float(max(box[2], box[3])) if side is None else float(side)
    s = max(round(factor * ref), 8)
    cx, cy = float(box[0] + box[2] / 2), float(box[1] + box[3] / 2)
    return (round(cx - s / 2), round(cy - s / 2), s)


def jittered_window(box: torch.Tensor, factor: float, scale_jitter: float, shift_jitter: float,
                    u: Sequence[float]) -> Window:
    """:func:`search_window` with its side scaled by ``exp(scale_jitter × u0)`` and its centre moved by
    ``shift_jitter × (u1, u2) ×`` the side; ``u`` are three numbers in ``[-1, 1]`` (the caller's random draw)."""
    ref = float(max(box[2], box[3]))
    s = max(round(factor * ref * math.exp(scale_jitter * u[0])), 8)
    cx = float(box[0] + box[2] / 2) + shift_jitter * u[1] * s
    cy = float(box[1] + box[3] / 2) + shift_jitter * u[2] * s
    return (round(cx - s / 2), round(cy - s / 2), s)


def to_window(boxes: torch.Tensor, window: Window, size: int) -> torch.Tensor:
    """Frame-pixel boxes ``(..., 4)`` into the pixels of ``window`` resized to ``size × size``; ``(..., 4)``."""
    x0, y0, side = window
    s = size / side
    shift = boxes.new_tensor([x0, y0, 0.0, 0.0])
    return (boxes - shift) * s


def from_window(boxes: torch.Tensor, window: Window, size: int) -> torch.Tensor:
    """Inverse of :func:`to_window`: window-input boxes ``(..., 4)`` back to frame pixels."""
    x0, y0, side = window
    return boxes * (side / size) + boxes.new_tensor([x0, y0, 0.0, 0.0])


def reframe_affine(old: Window, new: Window, size: int) -> tuple[float, torch.Tensor]:
    """The map ``p_new = a × p_old + b`` from one window's input pixels to another's.

    A position ``p`` in the input of window ``(x0, y0, side)`` is the frame point ``(x0, y0) + p × side / S``.

    Returns:
        ``a`` (float) and ``b (2,)``.
    """
    a = old[2] / new[2]
    b = torch.tensor([old[0] - new[0], old[1] - new[1]], dtype=torch.float32) * (size / new[2])
    return a, b
