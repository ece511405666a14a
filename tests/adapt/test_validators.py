"""Label-free validators: their math on small hand-made tensors, the checkpoint-mode rules, the gather."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from adaptrack.adapt.validators import (
    VALIDATORS,
    ValidationBuffer,
    ValidationInputs,
    active_validators,
    deep_embedded_validation,
    density_ratios,
    dev,
    evenly_spaced,
    prediction_entropy,
    resolve_checkpoint_mode,
    soft_neighborhood_density,
    source_accuracy,
)
from adaptrack.common.errors import ConfigError


def test_entropy_is_log_k_for_uniform_and_zero_for_one_hot_predictions() -> None:
    k = 7
    uniform = torch.full((5, k), 1.0 / k)  # (5, K)
    one_hot = F.one_hot(torch.arange(5) % k, k).float()  # (5, K)
    assert float(prediction_entropy(uniform)) == pytest.approx(math.log(k), rel=1e-6)
    assert float(prediction_entropy(one_hot)) == 0.0
    mixed = torch.cat([uniform[:1], one_hot[:1]])  # (2, K): the mean of the two rows
    assert float(prediction_entropy(mixed)) == pytest.approx(math.log(k) / 2, rel=1e-6)


def test_snd_is_higher_for_clustered_than_for_uniform_random_predictions() -> None:
    """Equally confident predictions: around the K class corners vs softmax of i.i.d. random logits."""
    for seed, (k, per_class) in enumerate(((10, 30), (31, 10))):
        g = torch.Generator().manual_seed(seed)
        centres = torch.arange(k).repeat_interleave(per_class)  # (N,)
        clustered = (8.0 * F.one_hot(centres, k) + torch.randn(k * per_class, k, generator=g)).softmax(1)  # (N, K)
        scattered = (8.0 * torch.randn(k * per_class, k, generator=g)).softmax(1)  # (N, K) uniform random classes
        assert float(soft_neighborhood_density(clustered)) > float(soft_neighborhood_density(scattered))
        # K clusters of equal size: each row spreads over its cluster's other members
        assert float(soft_neighborhood_density(clustered)) == pytest.approx(math.log(per_class - 1), rel=1e-3)


def test_snd_chunking_and_the_excluded_self_similarity() -> None:
    probs = torch.rand(50, 4, generator=torch.Generator().manual_seed(1)).softmax(1)
    whole = soft_neighborhood_density(probs, chunk=1000)
    assert float(soft_neighborhood_density(probs, chunk=7)) == pytest.approx(float(whole), rel=1e-12)
    # two identical predictions: each row's softmax puts all its mass on the other: entropy 0
    pair = torch.tensor([[0.9, 0.1], [0.9, 0.1]])
    assert float(soft_neighborhood_density(pair)) == pytest.approx(0.0, abs=1e-12)
    # n equal predictions: uniform over the n-1 others, entropy log(n-1)
    assert float(soft_neighborhood_density(pair.repeat(3, 1))) == pytest.approx(math.log(5), rel=1e-9)


def test_snd_reads_an_evenly_spaced_subset_of_a_pool_above_the_cap() -> None:
    probs = torch.rand(103, 4, generator=torch.Generator().manual_seed(2)).softmax(1)  # (103, K)
    pick = evenly_spaced(103, 10)
    assert pick.tolist() == [0, 11, 23, 34, 45, 57, 68, 79, 91, 102]
    assert evenly_spaced(5, 10).tolist() == [0, 1, 2, 3, 4]
    capped = soft_neighborhood_density(probs, max_points=10)
    assert float(capped) == float(soft_neighborhood_density(probs[pick], max_points=None))
    assert float(soft_neighborhood_density(probs, max_points=103)) == float(
        soft_neighborhood_density(probs, max_points=None))  # a pool up to the cap is read whole


def test_dev_is_the_plain_mean_loss_when_every_density_ratio_is_one() -> None:
    losses = torch.tensor([0.1, 2.0, 0.7, 1.3], dtype=torch.float64)
    assert float(deep_embedded_validation(losses, torch.ones(4))) == pytest.approx(float(losses.mean()), rel=1e-12)
    equal_logits = torch.zeros(4, 2)  # P(target|x) = P(source|x): ratio 1 everywhere
    assert torch.equal(density_ratios(equal_logits), torch.ones(4, dtype=torch.float64))


def test_dev_with_varying_ratios_follows_you_et_al_algorithm_1() -> None:
    g = torch.Generator().manual_seed(2)
    losses = torch.rand(40, generator=g, dtype=torch.float64) * 3  # (40,)
    weights = torch.rand(40, generator=g, dtype=torch.float64) * 2 + 0.1  # (40,)
    wl, w = (weights * losses).double().numpy(), weights.double().numpy()
    eta = -np.cov(np.stack([wl, w]))[0, 1] / np.var(w, ddof=1)  # the reference code's estimates
    expected = wl.mean() + eta * w.mean() - eta
    assert float(deep_embedded_validation(losses, weights)) == pytest.approx(expected, rel=1e-10)
    # the control variate: when the weights average 1 exactly the correction term vanishes
    normalised = weights / weights.mean()
    assert float(deep_embedded_validation(losses, normalised)) == pytest.approx(
        float((normalised * losses).double().mean()), rel=1e-6)


def test_dev_and_source_accuracy_read_the_source_validation_rows() -> None:
    logits = torch.tensor([[3.0, 0.0], [0.0, 3.0], [3.0, 0.0]])
    labels = torch.tensor([0, 1, 1])
    inputs = ValidationInputs(logits, labels, torch.zeros(3, 2), torch.full((4, 2), 0.5))
    assert float(source_accuracy(inputs)) == pytest.approx(2 / 3)
    assert float(dev(inputs)) == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-6)
    assert math.isnan(float(dev(ValidationInputs(logits, labels, None, torch.full((4, 2), 0.5)))))


def test_registry_contracts_and_which_validators_a_method_computes() -> None:
    assert {v.name: v.mode for v in VALIDATORS.values()} == {"source_acc": "max", "entropy": "min", "snd": "max",
                                                            "dev": "min"}
    assert all(v.key == f"val/{v.name}" and v.description for v in VALIDATORS.values())
    assert "dev" not in [v.name for v in active_validators(domain_adversarial=False)]
    assert [v.name for v in active_validators(domain_adversarial=True)] == list(VALIDATORS)


@pytest.mark.parametrize(("monitor", "expected"), [("val/entropy", "min"), ("val/snd", "max"), ("val/dev", "min"),
                                                   ("val/source_acc", "max")])
def test_checkpoint_mode_auto_follows_the_validator(monitor: str, expected: str) -> None:
    checkpoint = {"monitor": monitor, "mode": "auto"}
    resolve_checkpoint_mode(checkpoint, domain_adversarial=True)
    assert checkpoint["mode"] == expected


@pytest.mark.parametrize(("checkpoint", "adversarial", "message"), [
    ({"monitor": "report/target_acc", "mode": "max"}, True, "target labels"),
    ({"monitor": "val/entropy", "mode": "max"}, True, "worst checkpoint"),
    ({"monitor": "val/dev", "mode": "auto"}, False, "domain classifier"),
    ({"monitor": "train/loss", "mode": "auto"}, True, "give --checkpoint.mode"),
])
def test_checkpoint_monitor_rules(checkpoint: dict, adversarial: bool, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_checkpoint_mode(checkpoint, adversarial)


def test_an_explicit_mode_for_another_metric_is_kept() -> None:
    checkpoint = {"monitor": "train/loss", "mode": "min"}
    resolve_checkpoint_mode(checkpoint, True)
    assert checkpoint["mode"] == "min"


def test_buffer_concatenates_the_batches_in_order_and_resets() -> None:
    buffer = ValidationBuffer()
    module = torch.nn.Module()  # no trainer: one process
    module._trainer = None  # type: ignore[attr-defined]
    module.device = torch.device("cpu")  # type: ignore[attr-defined]
    buffer.add("target_probs", torch.tensor([[1.0, 0.0]]))
    buffer.add("target_probs", torch.tensor([[0.0, 1.0], [0.5, 0.5]]))
    inputs = buffer.inputs(module, num_classes=2, domain=False)  # type: ignore[arg-type]
    assert torch.equal(inputs.target_probs, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]))
    assert inputs.source_logits.shape == (0, 2) and inputs.source_domain_logits is None
    buffer.reset()
    assert buffer.inputs(module, 2, False).target_probs.shape == (0, 2)  # type: ignore[arg-type]
