"""Contract tests of FIG. 4's networks and the gradient reversal layer."""

from __future__ import annotations

import math

import pytest
import torch

from adaptrack.adapt.networks import PRESETS, build_network, grl_coefficient, reverse_gradient


@pytest.mark.parametrize(("preset", "channels", "size"), [("lenet", 1, 28), ("dtn", 3, 32), ("convnet", 1, 28)])
def test_presets_output_shapes(preset: str, channels: int, size: int) -> None:
    net = build_network(preset, channels, num_classes=10, image_size=size)
    x = torch.randn(4, channels, size, size)
    z = net.features(x)
    assert z.shape == (4, net.feature_dim)
    assert net(x).shape == (4, 10)
    assert net.domain_logits(z, 1.0).shape == (4, 2)


def test_feature_extractor_widens_and_heads_narrow() -> None:
    for name, spec in PRESETS.items():
        assert list(spec.channels) == sorted(spec.channels), name
        assert list(spec.class_hidden) == sorted(spec.class_hidden, reverse=True), name
        assert list(spec.domain_hidden) == sorted(spec.domain_hidden, reverse=True), name
    net = build_network("convnet", 1, 10, 28, channels=(8, 16), class_hidden=(32, 16))
    convs = [m for m in net.feature_extractor.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [8, 16]
    linears = [m for m in net.classifier.modules() if isinstance(m, torch.nn.Linear)]
    assert [lin.out_features for lin in linears] == [32, 16, 10]


def test_unknown_preset_and_too_small_image() -> None:
    with pytest.raises(ValueError, match="unknown network preset"):
        build_network("resnet", 1, 10, 28)  # type: ignore[arg-type]
    with pytest.raises((ValueError, RuntimeError)):
        build_network("lenet", 1, 10, 8)


def test_grl_reverses_and_scales_gradient() -> None:
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = reverse_gradient(x, 0.5)
    assert torch.equal(y, x)  # identity forward
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-0.5, -1.0, -1.5]))


def test_domain_classifier_gradient_is_reversed_at_features() -> None:
    torch.manual_seed(0)
    net = build_network("convnet", 1, 10, 16, channels=(4,), class_hidden=(8,), domain_hidden=(8,))
    net.eval()
    z = torch.randn(3, net.feature_dim, requires_grad=True)
    net.domain_logits(z, 1.0).sum().backward()
    g_reversed = z.grad.clone()
    z.grad = None
    net.domain_classifier(z).sum().backward()
    assert torch.allclose(g_reversed, -z.grad)


def test_grl_ramp() -> None:
    assert grl_coefficient(0.0) == 0.0
    assert grl_coefficient(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert grl_coefficient(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert grl_coefficient(2.0) == grl_coefficient(1.0)  # clamped
    values = [grl_coefficient(p / 10) for p in range(11)]
    assert values == sorted(values)
