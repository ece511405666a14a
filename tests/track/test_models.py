"""The two networks: map shapes at both map strides, the upsampling neck, batch-norm folding and the
ResNet backbones (system 1's ResNet, weights from a file, checkpoint round trip, ONNX)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from adaptrack.adapt.networks import PRESETS, ResNet
from adaptrack.common.errors import DataError
from adaptrack.track.inference.checkpoints import META_KEY, load_models
from adaptrack.track.models import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FineNeck,
    PartDetector,
    ResNetBackbone,
    SubjectModel,
    backbone_parameter_groups,
    fold_batch_norms,
)

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


@pytest.mark.parametrize("backbone", ["mobile", "resnet18", "resnet50"])
@pytest.mark.parametrize("fine_maps, stride", [(False, 8), (True, 4)])
def test_map_shapes_follow_the_map_stride(fine_maps: bool, stride: int, backbone: str) -> None:
    part = PartDetector(num_parts=2, fine_maps=fine_maps, backbone=backbone, **SMALL).eval()
    subject = SubjectModel(num_parts=2, head_channels=16, region_dilations=[2], fine_maps=fine_maps,
                           backbone=backbone, **SMALL).eval()
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


@pytest.mark.parametrize("backbone", ["mobile", "resnet18"])
@pytest.mark.parametrize("fine_maps", [False, True])
def test_folding_batch_norms_keeps_the_outputs(fine_maps: bool, backbone: str) -> None:
    torch.manual_seed(0)
    part = PartDetector(fine_maps=fine_maps, backbone=backbone, **SMALL)
    subject = SubjectModel(head_channels=16, region_dilations=[2], fine_maps=fine_maps, backbone=backbone, **SMALL)
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


def test_default_models_keep_their_state_dict_keys() -> None:
    """The mobile backbone is the default; its parameter names are those of earlier checkpoints."""
    keys = list(PartDetector(fine_maps=True).state_dict())
    assert keys[0] == "backbone.body.0.0.weight" and all(k.startswith(("backbone.body.", "neck.", "head."))
                                                         for k in keys)
    assert not any(k.startswith("backbone.resnet.") for k in SubjectModel().state_dict())


def _resnet_state(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """The full state dict of system 1's ResNet (``fc`` included, as an ImageNet file has it), random weights."""
    torch.manual_seed(seed)
    spec = PRESETS[name]
    net = ResNet(spec.block, spec.layers, spec.channels)
    _randomise_batch_norms(net)
    state = dict(net.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.randn(10, 512), torch.randn(10)
    return state


def _reference_features(state: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Stride-8 (layer2) and stride-4 (layer1) features of system 1's own ResNet-18 filled with ``state``."""
    net = ResNet("basic", (2, 2, 2, 2), (64, 128, 256, 512)).eval()
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    y = net.maxpool(net.relu(net.bn1(net.conv1((x - mean) / std))))  # (B, 64, H/4, W/4)
    fine = net.layer1(y)  # (B, 64, H/4, W/4)
    return net.layer2(fine), fine  # (B, 128, H/8, W/8)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_resnet_weights_load_from_a_file_and_give_system_1s_features(tmp_path: Path, suffix: str) -> None:
    state = _resnet_state("resnet18")
    path = tmp_path / f"r18{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    backbone = ResNetBackbone("resnet18", out_channels=16, fine_channels=8, weights=path).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        coarse, fine = backbone._trunk(x)  # before the (new, random) projections
        ref_coarse, ref_fine = _reference_features(state, x)
    assert torch.equal(coarse, ref_coarse) and torch.equal(fine, ref_fine)
    assert coarse.shape == (2, 128, 8, 8) and fine.shape == (2, 64, 16, 16)
    part = PartDetector(backbone="resnet18", backbone_weights=path, **SMALL)
    assert torch.equal(part.backbone.resnet.layer2[1].conv2.weight, state["layer2.1.conv2.weight"])


def test_truncated_file_loads_and_bad_files_name_the_file_and_keys(tmp_path: Path) -> None:
    state = _resnet_state("resnet18")
    used = tmp_path / "used_only.pth"  # layer3 / layer4 / fc are not needed
    torch.save({k: v for k, v in state.items() if not k.startswith(("layer3.", "layer4.", "fc."))}, used)
    ResNetBackbone("resnet18", 16, 8, weights=used)
    missing = tmp_path / "missing.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("layer2.1.")}, missing)
    with pytest.raises(DataError, match=r"missing key\(s\) \[layer2\.1\.") as err:
        ResNetBackbone("resnet18", 16, 8, weights=missing)
    assert "missing.pth" in str(err.value)
    wrong = tmp_path / "resnet50.pth"  # a ResNet-50 file for a ResNet-18 backbone
    torch.save(_resnet_state("resnet50"), wrong)
    with pytest.raises(DataError, match=r"resnet50\.pth"):
        PartDetector(backbone="resnet18", backbone_weights=wrong)
    with pytest.raises(DataError, match="not found"):
        ResNetBackbone("resnet18", 16, 8, weights=tmp_path / "absent.safetensors")
    with pytest.raises(ValueError, match="need a ResNet backbone"):
        PartDetector(backbone_weights=used)
    with pytest.raises(ValueError, match="unknown backbone"):
        SubjectModel(backbone="vgg16")
    with pytest.raises(ValueError, match="stride 8"):
        PartDetector(backbone="resnet18", stride=4)


def test_backbone_lr_mult_groups() -> None:
    model = SubjectModel(backbone="resnet18", **SMALL)
    assert len(backbone_parameter_groups(model, 1e-3)) == 1
    groups = backbone_parameter_groups(model, 1e-3, 0.1)
    assert [g["name"] for g in groups] == ["backbone", "heads"] and groups[0]["lr"] == pytest.approx(1e-4)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert len(groups[0]["params"]) == len(list(model.backbone.parameters()))
    with pytest.raises(ValueError, match="backbone_lr_mult"):
        backbone_parameter_groups(model, 1e-3, 0.0)


def test_resnet_models_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    """The meta records the backbone; ``load_models`` rebuilds it without the (gone) weights file."""
    weights = tmp_path / "r18.pth"
    torch.save(_resnet_state("resnet18"), weights)
    part_cfg = {"num_parts": 1, **SMALL, "fine_maps": True, "backbone": "resnet18"}
    subject_cfg = {"num_parts": 1, **SMALL, "fine_maps": True, "head_channels": 16, "backbone": "resnet18"}
    part = PartDetector(**part_cfg, backbone_weights=weights).eval()
    subject = SubjectModel(**subject_cfg, backbone_weights=weights).eval()
    state = {**{f"part_model.{k}": v for k, v in part.state_dict().items()},
             **{f"subject_model.{k}": v for k, v in subject.state_dict().items()}}
    ckpt = tmp_path / "tracker.ckpt"
    torch.save({META_KEY: {"kind": "tracker", "parts": ["head"], "part_model": {**part_cfg, "backbone_weights":
                                                                                 str(weights)},
                           "subject_model": subject_cfg}, "state_dict": state}, ckpt)
    weights.unlink()
    part2, subject2, _ = load_models(ckpt)
    assert isinstance(part2.backbone, ResNetBackbone) and isinstance(subject2.backbone, ResNetBackbone)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(part(x), part2(x), strict=True):
            assert torch.equal(a, b)
        box = torch.tensor([[10.0, 5.0, 20.0, 40.0]])
        assert torch.equal(subject.encode_template(x, box), subject2.encode_template(x, box))
    bad = tmp_path / "mobile_meta.ckpt"  # a ResNet state dict under a mobile meta: a clear error
    torch.save({META_KEY: {"kind": "tracker", "parts": ["head"], "part_model": {**part_cfg, "backbone": "mobile"},
                           "subject_model": subject_cfg}, "state_dict": state}, bad)
    with pytest.raises(DataError, match=r"mobile_meta\.ckpt"):
        load_models(bad)


EXPORTER = "dynamo"  # the legacy TorchScript exporter mis-exports the grouped correlation here


def test_resnet18_models_export_to_onnx_and_agree(tmp_path: Path) -> None:
    from adaptrack.track.inference.onnx_export import export_models

    torch.manual_seed(0)
    part = PartDetector(fine_maps=True, backbone="resnet18", **SMALL)
    subject = SubjectModel(head_channels=16, region_dilations=[2], fine_maps=True, backbone="resnet18", **SMALL)
    for m in (part, subject):
        _randomise_batch_norms(m)
    diffs = export_models(part.eval(), subject.eval(), tmp_path, ["head"], input_size=64, atol=1e-4,
                          exporter=EXPORTER)
    assert max(diffs.values()) <= 1e-4


def test_modules_pass_the_backbone_through_to_the_checkpoint(tmp_path: Path) -> None:
    """``PartDetectorModule`` / ``TrackerModule``: backbone, weights and ``backbone_lr_mult`` arguments."""
    from adaptrack.track.inference.checkpoints import load_part_detector
    from adaptrack.track.train.module import PartDetectorModule, TrackerModule

    weights = tmp_path / "r18.pth"
    torch.save(_resnet_state("resnet18"), weights)
    module = PartDetectorModule(channels=[8, 8, 12, 16], fine_maps=True, backbone="resnet18",
                                backbone_weights=str(weights), backbone_lr_mult=0.1)
    groups = module.configure_optimizers()["optimizer"].param_groups
    assert [g["name"] for g in groups] == ["backbone", "heads"]
    assert [g["initial_lr"] for g in groups] == pytest.approx([3e-4, 3e-3])  # before the warm-up factor
    ckpt: dict = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(ckpt)
    assert ckpt[META_KEY]["part_model"]["backbone"] == "resnet18"
    torch.save(ckpt, tmp_path / "parts.ckpt")
    part, _ = load_part_detector(tmp_path / "parts.ckpt")
    assert torch.equal(part.backbone.resnet.conv1.weight, module.part_model.backbone.resnet.conv1.weight)
    tracker = TrackerModule(str(tmp_path / "parts.ckpt"), channels=[8, 8, 12, 16], head_channels=16,
                            backbone="resnet34")
    assert tracker.subject_config["backbone"] == "resnet34" and tracker.subject_model.stride == part.stride
    assert "backbone" not in PartDetectorModule().model_config  # the default meta is as before
