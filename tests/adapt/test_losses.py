"""Loss math on hand-made tensors: the one-call domain loss (S3, S33) and the self-learning loss (S9)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from adaptrack.adapt.losses import domain_labels, domain_loss, self_learning_loss
from adaptrack.adapt.pseudo import PseudoLabeler


def logits_from_probs(probs: list[list[float]]) -> torch.Tensor:
    return torch.tensor(probs).log()


def test_domain_loss_labels_source_zero_every_target_one() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])  # 1 source row, then 2 target rows
    expected = (-F.log_softmax(logits, 1)[0, 0] - F.log_softmax(logits, 1)[1, 1] - F.log_softmax(logits, 1)[2, 1]) / 3
    assert domain_loss(logits, n_source=1).item() == pytest.approx(expected.item())
    assert domain_labels(2, 5).tolist() == [0, 0, 1, 1, 1]


def test_self_learning_loss_on_selected_images() -> None:
    logits = logits_from_probs([[0.96, 0.02, 0.02], [0.1, 0.85, 0.05], [0.01, 0.01, 0.98]])
    pseudo = PseudoLabeler(threshold=0.95)(logits)
    assert pseudo.labels.tolist() == [0, 1, 2]
    assert pseudo.selected.tolist() == [True, False, True]
    loss = self_learning_loss(logits, pseudo)
    assert loss.item() == pytest.approx((-math.log(0.96) - math.log(0.98)) / 3, rel=1e-5)


def test_loss_is_zero_and_differentiable_without_selection() -> None:
    logits = logits_from_probs([[0.5, 0.5]]).requires_grad_()
    pseudo = PseudoLabeler(threshold=0.9)(logits)
    loss = self_learning_loss(logits, pseudo)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.all(logits.grad == 0)


def test_max_logit_masking_fig_7b_is_negative_feedback() -> None:
    logits = torch.tensor([[5.0, 0.0, 0.0], [1.0, 2.0, 0.5]])  # second is below 0.9
    pseudo = PseudoLabeler(threshold=0.9, masking="max")(logits)
    masked_second = torch.tensor([[1.0, 0.0, 0.5]])  # max logit (class 1) masked to zero
    expected = F.cross_entropy(logits[:1], torch.tensor([0])) + F.cross_entropy(masked_second, torch.tensor([1]))
    assert self_learning_loss(logits, pseudo).item() == pytest.approx(expected.item() / 2, rel=1e-5)
    assert F.cross_entropy(masked_second, torch.tensor([1])) > F.cross_entropy(logits[1:], torch.tensor([1]))


def test_full_logit_masking_fig_7c_is_neutral() -> None:
    logits = torch.tensor([[1.0, 2.0, 0.5]], requires_grad=True)
    pseudo = PseudoLabeler(threshold=0.9, masking="full")(logits)
    loss = self_learning_loss(logits, pseudo)
    assert loss.item() == pytest.approx(math.log(3), rel=1e-5)  # uniform softmax
    loss.backward()
    assert torch.all(logits.grad == 0)


def test_mask_value_is_settable() -> None:
    """¶105: the masked logit may be set to any value; a very negative one removes the class."""
    logits = torch.tensor([[1.0, 2.0, 0.5]])
    pseudo = PseudoLabeler(threshold=0.9, masking="max")(logits)
    loss = self_learning_loss(logits, pseudo, mask_value=-5.0)
    expected = F.cross_entropy(torch.tensor([[1.0, -5.0, 0.5]]), torch.tensor([1]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
