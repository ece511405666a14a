"""The two networks: map shapes at both map strides, the upsampling neck and batch-norm folding."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adaptrack.track.models import FineNeck, PartDetector, SubjectModel, fold_batch_norms

SMALL = {"channels": [8, 8, 12, 16], "dilations": [2]}


def _randomise_batch_norms(model: nn.Module) -> None:
    """Non-trivial running statistics and affine parameters, as after training."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


@pytest.mark.parametrize("fine_maps, stride", [(False, 8), (True, 4)])
def test_map_shapes_follow_the_map_stride(fine_maps: bool, stride: int) -> None:
    part = PartDetector(num_parts=2, fine_maps=fine_maps, **SMALL).eval()
    subject = SubjectModel(num_parts=2, head_channels=16, region_dilations=[2], fine_maps=fine_maps, **SMALL).eval()
    assert part.stride == subject.stride == stride
    x = torch.rand(2, 3, 64, 96)
    h, w = 64 // stride, 96 // stride
    heat, size, offset = part(x)
    assert heat.shape == (2, 2, h, w) and size.shape == offset.shape == (2, 2, 2, h, w)
    kernel = subject.encode_template(x, torch.tensor([[10.0, 5.0, 20.0, 40.0], [50.0, 10.0, 16.0, 30.0]]))
    assert kernel.shape == (2, 16, 5, 3)  # pooled from the backbone's stride-8 features in both cases
    s_heat, s_size, s_offset, region = subject(x, kernel, torch.rand(2, 1, h, w))
    assert s_heat.shape == (2, 1, h, w) and s_size.shape == s_offset.shape == (2, 2, h, w)
    assert region.shape == (2, 2, h, w) and bool(((region > 0) & (region < 1)).all())


def test_fine_subject_model_needs_the_fine_features() -> None:
    subject = SubjectModel(fine_maps=True, **SMALL).eval()
    x = torch.rand(1, 3, 64, 64)
    feat = subject.backbone(x)
    kernel = subject.template_from_features(feat, torch.tensor([[10.0, 5.0, 20.0, 40.0]]), x.shape[-2:])
    with pytest.raises(ValueError, match="stride-s/2 features"):
        subject.forward_features(feat, kernel, torch.rand(1, 1, 16, 16))


def test_fine_neck_doubles_the_resolution() -> None:
    neck = FineNeck(coarse_channels=16, fine_channels=8, out_channels=12)
    out = neck(torch.rand(2, 16, 5, 7), torch.rand(2, 8, 10, 14))
    assert out.shape == (2, 12, 10, 14)


@pytest.mark.parametrize("fine_maps", [False, True])
def test_folding_batch_norms_keeps_the_outputs(fine_maps: bool) -> None:
    torch.manual_seed(0)
    part = PartDetector(fine_maps=fine_maps, **SMALL)
    subject = SubjectModel(head_channels=16, region_dilations=[2], fine_maps=fine_maps, **SMALL)
    for m in (part, subject):
        _randomise_batch_norms(m)
        m.eval()
    f_part, f_subject = fold_batch_norms(part), fold_batch_norms(subject)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in [*f_part.modules(), *f_subject.modules()])
    assert any(isinstance(m, nn.BatchNorm2d) for m in part.modules())  # the original is untouched
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(part(x), f_part(x), strict=True):
            assert torch.allclose(a, b, atol=1e-5)
        h = 64 // subject.stride
        box = torch.tensor([[10.0, 5.0, 20.0, 40.0]])
        prior = torch.rand(1, 1, h, h)
        k, fk = subject.encode_template(x, box), f_subject.encode_template(x, box)
        assert torch.allclose(k, fk, atol=1e-5)
        for a, b in zip(subject(x, k, prior), f_subject(x, fk, prior), strict=True):
            assert torch.allclose(a, b, atol=1e-5)
