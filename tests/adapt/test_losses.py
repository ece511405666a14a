"""Loss math on hand-made tensors: domain loss, pseudo labeling (S7, S8, S12–S18), self-learning loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from adaptrack.adapt.losses import PseudoLabeler, domain_loss, self_learning_loss


def logits_from_probs(probs: list[list[float]]) -> torch.Tensor:
    return torch.tensor(probs).log()


def test_domain_loss_labels_source_zero_target_one() -> None:
    s = torch.tensor([[2.0, 0.0]])
    t = torch.tensor([[0.0, 3.0], [1.0, 1.0]])
    expected = (-F.log_softmax(s, 1)[0, 0] - F.log_softmax(t, 1)[0, 1] - F.log_softmax(t, 1)[1, 1]) / 3
    assert domain_loss(s, t).item() == pytest.approx(expected.item())


def test_threshold_selects_confident_images_only() -> None:
    logits = logits_from_probs([[0.96, 0.02, 0.02], [0.1, 0.85, 0.05], [0.01, 0.01, 0.98]])
    pseudo = PseudoLabeler(threshold=0.95)(logits)
    assert pseudo.labels.tolist() == [0, 1, 2]
    assert pseudo.selected.tolist() == [True, False, True]
    assert torch.allclose(pseudo.scores, torch.tensor([0.96, 0.85, 0.98]))
    loss = self_learning_loss(logits, pseudo)
    assert loss.item() == pytest.approx((-math.log(0.96) - math.log(0.98)) / 3, rel=1e-5)


def test_loss_is_zero_and_differentiable_without_selection() -> None:
    logits = logits_from_probs([[0.5, 0.5]]).requires_grad_()
    pseudo = PseudoLabeler(threshold=0.9)(logits)
    loss = self_learning_loss(logits, pseudo)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.all(logits.grad == 0)


def test_max_logit_masking_fig_7b() -> None:
    logits = torch.tensor([[5.0, 0.0, 0.0], [1.0, 2.0, 0.5]])  # second is below 0.9
    pseudo = PseudoLabeler(threshold=0.9, masking="max")(logits)
    assert pseudo.selected.tolist() == [True, False]
    assert pseudo.masked_max.tolist() == [False, True]
    masked_second = torch.tensor([[1.0, 0.0, 0.5]])  # max logit (class 1) masked to zero
    expected = F.cross_entropy(logits[:1], torch.tensor([0])) + F.cross_entropy(masked_second, torch.tensor([1]))
    assert self_learning_loss(logits, pseudo).item() == pytest.approx(expected.item() / 2, rel=1e-5)
    # Negative feedback: masking raises the loss of that image.
    assert F.cross_entropy(masked_second, torch.tensor([1])) > F.cross_entropy(logits[1:], torch.tensor([1]))


def test_full_logit_masking_fig_7c_is_neutral() -> None:
    logits = torch.tensor([[1.0, 2.0, 0.5]], requires_grad=True)
    pseudo = PseudoLabeler(threshold=0.9, masking="full")(logits)
    loss = self_learning_loss(logits, pseudo)
    assert loss.item() == pytest.approx(math.log(3), rel=1e-5)  # uniform softmax
    loss.backward()
    assert torch.all(logits.grad == 0)  # neutral feedback


def test_dual_threshold_masking_fig_10() -> None:
    probs = [[0.95, 0.03, 0.02], [0.7, 0.2, 0.1], [0.4, 0.35, 0.25]]
    pseudo = PseudoLabeler(threshold=0.9, masking="dual", lower_threshold=0.5)(logits_from_probs(probs))
    assert pseudo.selected.tolist() == [True, False, False]
    assert pseudo.masked_full.tolist() == [False, True, False]  # t2 <= score < t1
    assert pseudo.masked_max.tolist() == [False, False, True]  # score < t2


def test_per_class_cap_keeps_highest_scores_s17() -> None:
    probs = [[0.97, 0.03], [0.99, 0.01], [0.98, 0.02], [0.02, 0.98]]
    pseudo = PseudoLabeler(threshold=0.9, per_class_cap=2)(logits_from_probs(probs))
    assert pseudo.selected.tolist() == [False, True, True, True]


def test_total_cap_limits_share_s18() -> None:
    probs = [[0.97, 0.03], [0.99, 0.01], [0.98, 0.02], [0.015, 0.985]]
    pseudo = PseudoLabeler(threshold=0.9, total_cap=0.5)(logits_from_probs(probs))
    assert pseudo.selected.tolist() == [False, True, False, True]


def test_labeler_rejects_bad_options() -> None:
    with pytest.raises(ValueError, match="threshold"):
        PseudoLabeler(threshold=1.5)
    with pytest.raises(ValueError, match="per_class_cap"):
        PseudoLabeler(per_class_cap=0)
    with pytest.raises(ValueError, match="total_cap"):
        PseudoLabeler(total_cap=0.0)
