"""Geometry: the ¶40–44 example, Gaussian correct-answer maps, CenterNet targets, peak decoding."""

from __future__ import annotations

import math

import pytest
import torch

from adaptrack.track.geometry import (
    box_iou,
    centernet_targets,
    centre_to_cell,
    decode_peak,
    gaussian_maps,
    local_peaks,
    motion_window,
    part_score,
    part_window,
    points_in_boxes,
    size_ratio,
    xywh_to_xyxy,
    xyxy_to_xywh,
)


def test_patent_example_paragraphs_40_to_44() -> None:
    ratio = size_ratio((720, 480), (24, 16))
    assert ratio == (30.0, 30.0)
    mu = centre_to_cell(torch.tensor([325.0, 40.0]), ratio)
    assert mu.tolist() == [11.0, 1.0]


def test_correct_answer_map_peaks_at_average_vector_with_formula_1_normalisation() -> None:
    gt = gaussian_maps(torch.tensor([[[325.0, 40.0]]]), (16, 24), (30.0, 30.0))  # (1, 16, 24)
    assert gt.shape == (1, 16, 24)
    y, x = divmod(int(gt[0].argmax()), 24)
    assert (x, y) == (11, 1)
    assert gt.max().item() == pytest.approx(1 / (2 * math.pi))
    # one element away: exp(-1/2) / (2π)
    assert gt[0, 1, 12].item() == pytest.approx(math.exp(-0.5) / (2 * math.pi))
    peak1 = gaussian_maps(torch.tensor([[[325.0, 40.0]]]), (16, 24), (30.0, 30.0), normalization="peak1")
    assert peak1.max().item() == pytest.approx(1.0)


def test_gaussian_maps_skip_nan_and_combine_by_max() -> None:
    centres = torch.tensor([[[8.0, 8.0], [float("nan"), float("nan")], [40.0, 8.0]]])
    g = gaussian_maps(centres, (8, 8), (8.0, 8.0), normalization="peak1")
    assert g[0, 1, 1] == 1.0 and g[0, 1, 5] == 1.0
    empty = gaussian_maps(torch.full((1, 1, 2), float("nan")), (8, 8), (8.0, 8.0))
    assert empty.abs().sum() == 0


def test_rounding_is_half_up_not_half_even() -> None:
    assert centre_to_cell(torch.tensor([75.0, 45.0]), (30.0, 30.0)).tolist() == [3.0, 2.0]  # 2.5 -> 3, 1.5 -> 2


def test_box_conversions_iou_and_containment() -> None:
    b = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    assert torch.equal(xyxy_to_xywh(xywh_to_xyxy(b)), b)
    assert box_iou(b, b).item() == pytest.approx(1.0)
    shifted = torch.tensor([[25.0, 20.0, 30.0, 40.0]])
    assert box_iou(b, shifted).item() == pytest.approx(15 * 40 / (2 * 30 * 40 - 15 * 40))
    pts = torch.tensor([[10.0, 20.0], [41.0, 30.0]])
    assert points_in_boxes(pts, b).tolist() == [True, False]


def test_centernet_targets_offset_and_size() -> None:
    boxes = torch.tensor([[[100.0, 50.0, 20.0, 10.0]]])  # centre (110, 55)
    heat, size, offset, mask = centernet_targets(boxes, (16, 24), (8.0, 8.0))
    cx, cy = round(110 / 8 + 1e-9), round(55 / 8)  # 13.75 -> 14, 6.875 -> 7
    assert mask[0].nonzero().tolist() == [[cy, cx]]
    assert heat[0, cy, cx] == 1.0
    assert offset[0, :, cy, cx].tolist() == pytest.approx([110 / 8 - 14, 55 / 8 - 7])
    assert size[0, :, cy, cx].tolist() == pytest.approx([20 / 8, 10 / 8])


def test_decode_peak_adds_offset_and_scales_size() -> None:
    score = torch.zeros(1, 16, 24)
    score[0, 1, 11] = 0.9
    size = torch.zeros(1, 2, 16, 24)
    offset = torch.zeros(1, 2, 16, 24)
    size[0, :, 1, 11] = torch.tensor([2.0, 3.0])
    offset[0, :, 1, 11] = torch.tensor([-0.2, 0.3])
    pos, wh, best, cell = decode_peak(score, size, offset, (30.0, 30.0))
    assert cell.tolist() == [[11, 1]]
    assert pos[0].tolist() == pytest.approx([11 * 30 - 0.2 * 30, 1 * 30 + 0.3 * 30])
    assert wh[0].tolist() == pytest.approx([60.0, 90.0])
    assert best.item() == pytest.approx(0.9)


def test_decode_peak_with_empty_valid_mask_is_nan() -> None:
    score = torch.rand(2, 4, 4)
    z = torch.zeros(2, 2, 4, 4)
    valid = torch.zeros(2, 4, 4, dtype=torch.bool)
    valid[0, 2, 3] = True
    pos, _, best, _ = decode_peak(score, z, z, (8.0, 8.0), valid=valid)
    assert pos[0].tolist() == [24.0, 16.0]
    assert math.isnan(pos[1, 0].item()) and best[1].item() == 0.0


def test_local_peaks() -> None:
    s = torch.zeros(1, 5, 5)
    s[0, 1, 1], s[0, 1, 2], s[0, 4, 4] = 0.8, 0.5, 0.6
    assert local_peaks(s, 0.3)[0].nonzero().tolist() == [[1, 1], [4, 4]]


def test_hard_negative_weights_peak_at_other_parts_and_stay_one_elsewhere() -> None:
    from adaptrack.track.train.losses import hard_negative_weights

    centres = torch.tensor([[[20.0, 12.0], [float("nan"), float("nan")]]])  # (1, 2, 2), one absent
    w = hard_negative_weights(centres, (8, 8), (4.0, 4.0), boost=3.0)  # (1, 8, 8)
    assert w.shape == (1, 8, 8)
    assert w[0, 3, 5].item() == pytest.approx(4.0)  # round(20 / 4) = 5, round(12 / 4) = 3
    assert w.min().item() == pytest.approx(1.0, abs=1e-6) and w.argmax().item() == 3 * 8 + 5
    assert torch.equal(hard_negative_weights(centres, (8, 8), (4.0, 4.0), boost=0.0), torch.ones(1, 8, 8))


def test_motion_window_weights_the_heat_by_the_prior() -> None:
    heat = torch.tensor([[[0.9, 0.8]]])  # (1, 1, 2): the far element is higher
    prior = torch.tensor([[[0.5, 1.0]]])
    assert torch.equal(motion_window(heat, prior, 0.0), heat)
    windowed = motion_window(heat, prior, 2.0)
    assert torch.allclose(windowed, torch.tensor([[[0.225, 0.8]]]))
    assert int(windowed.flatten().argmax()) == 1


def test_part_score_lets_the_region_map_outweigh_a_more_visible_neighbour() -> None:
    heat = torch.tensor([[1.0, 0.3]])  # the neighbour's head fully visible, the target's half hidden
    region = torch.tensor([[0.4, 0.9]])  # the region map marks the target's
    assert torch.equal(part_score(heat, region), heat * region)  # exponent 1: the element product
    assert int(part_score(heat, region).argmax()) == 0
    flat = part_score(heat, region, 0.25)
    assert torch.allclose(flat, torch.tensor([[0.4, 0.3 ** 0.25 * 0.9]]))
    assert int(flat.argmax()) == 1
    with pytest.raises(ValueError, match="exponent"):
        part_score(heat, region, 0.0)


def test_part_window_is_a_gaussian_at_the_previous_part_scaled_by_its_size() -> None:
    product = torch.ones(1, 2, 8, 8)
    centre = torch.tensor([[[8.0, 12.0], [float("nan"), float("nan")]]])  # part 0 at element (2, 3)
    size = torch.tensor([[[16.0, 16.0], [16.0, 16.0]]])  # 4 elements at ratio 4
    out = part_window(product, centre, size, (4.0, 4.0), sigma=0.5)  # σ = 2 elements
    assert out[0, 0, 3, 2] == 1.0 and out[0, 0].argmax() == 3 * 8 + 2
    assert out[0, 0, 3, 6] == pytest.approx(math.exp(-16 / 8))  # 4 elements away
    assert torch.equal(out[0, 1], product[0, 1])  # no previous position: unchanged
    assert torch.equal(part_window(product, centre, size, (4.0, 4.0), sigma=0.0), product)
    tiny = part_window(product, centre, torch.full((1, 2, 2), 1e-6), (4.0, 4.0), sigma=0.5)
    assert tiny[0, 0, 3, 3] == pytest.approx(math.exp(-1 / (2 * 0.25)))  # σ floor of half an element
