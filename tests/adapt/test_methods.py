"""The method registry and the step's contracts: combining units, the minority-shot loss, one domain call."""

from __future__ import annotations

import typing

import pytest
import torch
import torch.nn.functional as F

from adaptrack.adapt.batch import AdaptBatch
from adaptrack.adapt.config import LossWeights, PseudoLabelConfig
from adaptrack.adapt.methods import METHODS, Method, MethodName, get_method
from adaptrack.adapt.networks import build_network
from adaptrack.adapt.pseudo import MASKING_RULES, MaskingName, PseudoLabeler
from adaptrack.adapt.step import Step, Views

WEIGHTED = {f.name for f in __import__("dataclasses").fields(LossWeights)} - {"schedule", "schedule_start",
                                                                            "schedule_stop"}


def make_batch(bs: int = 6, bt: int = 5, bl: int = 3, seed: int = 0) -> AdaptBatch:
    g = torch.Generator().manual_seed(seed)

    def images(n: int) -> torch.Tensor:
        return torch.randn(n, 1, 16, 16, generator=g)

    target = images(bt)
    return AdaptBatch(images(bs), torch.randint(0, 4, (bs,), generator=g), target, target + 0.1, torch.full((bt,), -1),
                      torch.arange(bt), images(bl), torch.randint(0, 4, (bl,), generator=g))


def make_net() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_network("convnet", 1, 4, 16, channels=(4,), class_hidden=(8,), domain_hidden=(8,))


def make_step(net: torch.nn.Module, batch: AdaptBatch, views: Views, **kwargs: object) -> Step:
    return Step(net, batch, views, PseudoLabeler(threshold=0.0), PseudoLabelConfig(threshold=0.0), 1.0,
                **kwargs)  # type: ignore[arg-type]


def test_literal_names_come_from_the_registries() -> None:
    assert typing.get_args(MethodName) == tuple(METHODS)
    assert typing.get_args(MaskingName) == tuple(MASKING_RULES)
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        get_method("magic")


@pytest.mark.parametrize("name", list(METHODS))
def test_method_contract(name: str) -> None:
    """Each method returns weighted terms only; supervised terms always, self-learning terms only if it self-learns."""
    method = METHODS[name]
    assert isinstance(method, Method) and method.description
    net, batch = make_net(), make_batch()
    step = make_step(net, batch, Views(labeled=True, target=method.domain_adversarial or method.self_learns,
                                       again=method.self_learns))
    supervised, second = method.supervised(step), method.self_learning(step)
    assert set(supervised) | set(second) <= WEIGHTED
    assert {"source", "minority_shot"} <= set(supervised)
    assert ("domain" in supervised) == method.domain_adversarial
    assert bool(second) == method.self_learns
    for value in {**supervised, **second}.values():
        assert value.ndim == 0 and torch.isfinite(value) and value.requires_grad


def test_minority_shot_loss_reads_only_labeled_target_images() -> None:
    net = make_net().eval()  # eval: no batch statistics couple the rows
    batch = make_batch()
    step = make_step(net, batch, Views(labeled=True, target=True, again=False))
    loss = step.minority_shot_loss()
    expected = F.cross_entropy(net(batch.labeled), batch.labeled_labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    other = make_batch(seed=1)  # other source and unlabeled target images and labels
    mixed = AdaptBatch(other.source, other.source_labels, other.target, other.target_strong,
                       other.target_report_labels, other.target_index, batch.labeled, batch.labeled_labels)
    assert make_step(net, mixed, Views(True, True, False)).minority_shot_loss().item() == pytest.approx(loss.item())
    relabeled = AdaptBatch(*[getattr(batch, f) for f in ("source", "source_labels", "target", "target_strong",
                                                          "target_report_labels", "target_index", "labeled")],
                           (batch.labeled_labels + 1) % 4)
    assert make_step(net, relabeled, Views(True, True, False)).minority_shot_loss().item() != pytest.approx(
        loss.item())
    empty = AdaptBatch(*[getattr(batch, f) for f in ("source", "source_labels", "target", "target_strong",
                                                      "target_report_labels", "target_index")],
                       batch.labeled[:0], batch.labeled_labels[:0])
    assert make_step(net, empty, Views(True, True, False)).minority_shot_loss().item() == 0.0


@pytest.mark.parametrize(("domain_call", "calls"), [("joint", 1), ("per_domain", 2)])
def test_domain_classifier_sees_source_and_every_target_image(domain_call: str, calls: int) -> None:
    """Second combining unit: source = 0; unlabeled, labeled and pseudo-labeled target = 1; one call when joint."""
    net, batch = make_net(), make_batch()
    seen: list[int] = []
    hook = net.domain_classifier.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    step = make_step(net, batch, Views(labeled=True, target=True, again=True), domain_call=domain_call)
    step.domain_loss()
    hook.remove()
    n_pseudo = int(step.pseudo.selected.sum())
    assert n_pseudo == 5  # threshold 0: every target image
    assert len(seen) == calls
    assert sum(seen) == 6 + 3 + 5 + n_pseudo


def test_class_classifier_gets_source_labeled_and_fed_again_rows_in_one_call() -> None:
    net, batch = make_net(), make_batch()
    seen: list[int] = []
    hook = net.classifier.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[0]))
    step = make_step(net, batch, Views(labeled=True, target=True, again=True))
    step.source_loss(), step.minority_shot_loss(), step.self_learning_loss()
    hook.remove()
    assert sorted(seen) == [5, 6 + 3 + 5]  # the teacher call on the weak view, and combining unit 11


@pytest.mark.parametrize("view", ["same", "strong"])
def test_the_image_fed_again(view: str) -> None:
    """``same`` feeds the pseudo-labeled image itself again (claim 1), ``strong`` its strongly augmented view."""
    net, batch = make_net().eval(), make_batch()
    step = Step(net, batch, Views(False, True, True), PseudoLabeler(threshold=0.0),
                PseudoLabelConfig(threshold=0.0, view=view), 1.0)  # type: ignore[arg-type]
    fed = batch.target if view == "same" else batch.target_strong
    assert torch.allclose(step.features["again"], net.features(fed), atol=1e-5)
    assert torch.allclose(step.features["target"], net.features(batch.target), atol=1e-5)
