"""Pseudo labels (S7, S8, S12–S18): the masking-rule registry, the claim 13–15 boundaries and the caps."""

from __future__ import annotations

import pytest
import torch

from adaptrack.adapt.pseudo import MASKING_RULES, PseudoLabeler, class_ranks, per_class_limit


def logits_from_probs(probs: list[list[float]]) -> torch.Tensor:
    return torch.tensor(probs).log()


@pytest.mark.parametrize("name", list(MASKING_RULES))
def test_masking_rule_contract(name: str) -> None:
    """Every rule: disjoint masks, never on an image above the threshold, argmax kept as label (S16)."""
    scores = torch.tensor([0.99, 0.9, 0.9000001, 0.7, 0.5, 0.3, 0.1])
    masked_max, masked_full = MASKING_RULES[name].masks(scores, 0.9, 0.5)
    assert masked_max.dtype == masked_full.dtype == torch.bool
    assert not (masked_max & masked_full).any()
    assert not (masked_max | masked_full)[scores > 0.9].any()
    assert MASKING_RULES[name].description


def test_threshold_boundary_claims_13_to_15() -> None:
    """A score equal to the threshold gets no teacher label (claim 13: exceeds) and is masked (claims 14, 15)."""
    logits = torch.tensor([[0.0, 0.0], [1.0, 0.0]])  # scores 0.5 and 0.731
    pseudo = PseudoLabeler(threshold=0.5, masking="max")(logits)
    assert pseudo.selected.tolist() == [False, True]
    assert pseudo.masked_max.tolist() == [True, False]
    full = PseudoLabeler(threshold=0.5, masking="full")(logits)
    assert full.masked_full.tolist() == [True, False]


def test_dual_rule_fig_10() -> None:
    probs = [[0.95, 0.03, 0.02], [0.7, 0.2, 0.1], [0.5, 0.3, 0.2], [0.4, 0.35, 0.25]]
    pseudo = PseudoLabeler(threshold=0.9, masking="dual", lower_threshold=0.5)(logits_from_probs(probs))
    assert pseudo.selected.tolist() == [True, False, False, False]
    assert pseudo.masked_full.tolist() == [False, True, True, False]  # t2 <= score <= t1
    assert pseudo.masked_max.tolist() == [False, False, False, True]  # score < t2
    assert pseudo.labels.tolist() == [0, 0, 0, 0]


def test_none_rule_fig_7a() -> None:
    pseudo = PseudoLabeler(threshold=0.9, masking="none")(logits_from_probs([[0.5, 0.5], [0.95, 0.05]]))
    assert pseudo.contributing.tolist() == [False, True]


def test_per_class_count_cap_keeps_highest_scores_s17() -> None:
    probs = [[0.97, 0.03], [0.99, 0.01], [0.98, 0.02], [0.02, 0.98]]
    pseudo = PseudoLabeler(threshold=0.9, per_class_cap=2)(logits_from_probs(probs))
    assert pseudo.selected.tolist() == [False, True, True, True]
    assert pseudo.confident.tolist() == [True, True, True, True]


def test_per_class_fraction_cap_is_a_share_of_the_mini_batch() -> None:
    probs = [[0.97, 0.03]] * 6 + [[0.02, 0.98]] * 2  # B = 8: 0.25 -> 2 per class
    pseudo = PseudoLabeler(threshold=0.9, per_class_cap=0.25)(logits_from_probs(probs))
    assert int(pseudo.selected[:6].sum()) == 2 and int(pseudo.selected[6:].sum()) == 2


def test_equalize_caps_every_class_at_the_smallest_non_empty_class_fig_12b() -> None:
    probs = [[0.97, 0.02, 0.01]] * 5 + [[0.02, 0.97, 0.01]] * 2 + [[0.4, 0.3, 0.3]]  # class 2: none confident
    pseudo = PseudoLabeler(threshold=0.9, per_class_cap="equalize")(logits_from_probs(probs))
    counts = torch.bincount(pseudo.labels[pseudo.selected], minlength=3).tolist()
    assert counts == [2, 2, 0]


def test_total_cap_limits_share_s18() -> None:
    probs = [[0.97, 0.03], [0.99, 0.01], [0.98, 0.02], [0.015, 0.985]]
    pseudo = PseudoLabeler(threshold=0.9, total_cap=0.5)(logits_from_probs(probs))
    assert pseudo.selected.tolist() == [False, True, False, True]


def test_caps_combine_per_class_first_then_total() -> None:
    probs = [[0.99, 0.01], [0.98, 0.02], [0.97, 0.03], [0.02, 0.98]]
    pseudo = PseudoLabeler(threshold=0.9, per_class_cap=1, total_cap=0.5)(logits_from_probs(probs))
    assert pseudo.selected.tolist() == [True, False, False, True]


def test_class_ranks_and_limit_helpers() -> None:
    labels = torch.tensor([1, 0, 1, 1, 0])
    order = torch.tensor([4, 3, 2, 1, 0])
    assert class_ranks(labels, order, 2).tolist() == [2, 1, 1, 0, 0]
    selected = torch.tensor([True, True, True, False, False])
    assert per_class_limit("equalize", selected, labels, 3) == 1
    assert per_class_limit(0.5, selected, labels, 3) == 3
    assert per_class_limit(4, selected, labels, 3) == 4
    assert per_class_limit(None, selected, labels, 3) is None


def test_labeler_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="threshold"):
        PseudoLabeler(threshold=1.5)
    with pytest.raises(ValueError, match="per_class_cap"):
        PseudoLabeler(per_class_cap=0)
    with pytest.raises(ValueError, match="per_class_cap"):
        PseudoLabeler(per_class_cap="most")
    with pytest.raises(ValueError, match="total_cap"):
        PseudoLabeler(total_cap=0.0)
    with pytest.raises(ValueError, match="lower_threshold"):
        PseudoLabeler(threshold=0.9, masking="dual", lower_threshold=0.9)
    with pytest.raises(ValueError, match="unknown masking"):
        PseudoLabeler(masking="half")
