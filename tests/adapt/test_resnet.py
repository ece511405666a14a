"""ResNet backbones: torchvision layout, forward/backward, weight files (round trip, strictness), LR groups."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adaptrack.adapt.cli import main
from adaptrack.adapt.config import NetworkConfig, OptimConfig
from adaptrack.adapt.module import DomainAdaptationModule
from adaptrack.adapt.networks import PRESETS, ResNet, build_network, load_backbone_weights
from adaptrack.common.errors import ConfigError, DataError
from adaptrack.common.files import safe_torch_load

from .conftest import TINY_FIT, run_dir

TINY_WIDTHS = (8, 16, 32, 64)


def tiny_resnet(seed: int, preset: str = "resnet18", channels: int = 3) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_network(preset, channels, num_classes=5, image_size=32, channels=TINY_WIDTHS,  # type: ignore[arg-type]
                         bottleneck_dim=16, domain_hidden=(16,))


def randomize_bn_statistics(module: torch.nn.Module, seed: int) -> None:
    """Non-default running statistics, so that a round trip that dropped buffers would show."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def imagenet_style_file(net: torch.nn.Module, path: Path) -> None:
    """The backbone's state dict plus a 1000-way ``fc`` head, as torchvision's ImageNet files hold."""
    state = dict(net.backbone.state_dict())
    width = net.backbone.out_features
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, width), torch.randn(1000)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)


def test_torchvision_layout_and_parameter_counts() -> None:
    """Names are torchvision's; parameter counts are torchvision's ResNets' less the 1000-way fc layer."""
    net = build_network("resnet50", 3, num_classes=31, image_size=224)
    keys = set(net.backbone.state_dict())
    for name in ("conv1.weight", "bn1.running_mean", "layer1.0.conv3.weight", "layer1.0.downsample.0.weight",
                 "layer1.0.downsample.1.running_var", "layer4.2.bn3.num_batches_tracked"):
        assert name in keys, name
    assert not any(k.startswith("fc.") for k in keys)
    published = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}  # torchvision docs
    for preset, total in published.items():
        spec = PRESETS[preset]
        body = ResNet(spec.block, spec.layers, spec.channels, 3)
        fc = body.out_features * 1000 + 1000
        assert sum(p.numel() for p in body.parameters()) == total - fc, preset
    assert net.feature_dim == 256  # the bottleneck


@pytest.mark.parametrize("preset", ["resnet18", "resnet50"])
def test_tiny_resnet_forward_backward(preset: str) -> None:
    net = tiny_resnet(0, preset)
    x = torch.randn(4, 3, 32, 32)  # (B, C, H, W)
    z = net.features(x)
    assert z.shape == (4, 16)
    logits, domain = net.classifier(z), net.domain_logits(z, 1.0)
    assert logits.shape == (4, 5) and domain.shape == (4, 2)
    (torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 2, 3])) + domain.sum()).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing
    assert float(net.backbone.conv1.weight.grad.abs().sum()) > 0


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_weight_file_round_trip_reproduces_outputs(suffix: str, tmp_path: Path) -> None:
    if suffix == ".safetensors":
        pytest.importorskip("safetensors", reason="safetensors is not installed")
    source = tiny_resnet(1)
    randomize_bn_statistics(source, 2)
    path = tmp_path / f"backbone{suffix}"
    imagenet_style_file(source, path)
    fresh = tiny_resnet(3)
    x = torch.randn(3, 3, 32, 32)
    source.eval(), fresh.eval()
    assert not torch.allclose(fresh.backbone(x), source.backbone(x))
    load_backbone_weights(fresh.backbone, path)
    assert torch.equal(fresh.backbone(x), source.backbone(x))  # (3, 64) pooled features, bit for bit


def test_weight_file_keys_and_shapes_are_checked(tmp_path: Path) -> None:
    net = tiny_resnet(0)
    state = dict(net.backbone.state_dict())
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("layer4.")}, partial)
    with pytest.raises(DataError, match=r"partial\.pth.*missing key\(s\) \[layer4\.0\.bn1\.bias"):
        load_backbone_weights(net.backbone, partial)
    prefixed = tmp_path / "prefixed.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, prefixed)
    with pytest.raises(DataError, match=r"prefixed\.pth.*unexpected key\(s\) \[module\.bn1"):
        load_backbone_weights(net.backbone, prefixed)
    rgb = tmp_path / "rgb.pth"
    torch.save(state, rgb)
    gray = tiny_resnet(0, channels=1)
    with pytest.raises(DataError, match=r"rgb\.pth.*conv1\.weight: file \(8, 3, 7, 7\), model \(8, 1, 7, 7\)"):
        load_backbone_weights(gray.backbone, rgb)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"junk\.pth"):
        load_backbone_weights(net.backbone, junk)
    with pytest.raises(DataError, match=r"absent\.pth.*not found"):
        load_backbone_weights(net.backbone, tmp_path / "absent.pth")


def test_old_torchvision_files_without_batch_counters_load(tmp_path: Path) -> None:
    net = tiny_resnet(0)
    path = tmp_path / "old.pth"
    torch.save({k: v for k, v in net.backbone.state_dict().items() if not k.endswith("num_batches_tracked")}, path)
    load_backbone_weights(tiny_resnet(1).backbone, path)


def test_network_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="4 stage widths"):
        NetworkConfig(preset="resnet18", conv_channels=(8, 16))
    with pytest.raises(ConfigError, match="bottleneck_dim"):
        NetworkConfig(preset="lenet", bottleneck_dim=64)
    with pytest.raises(ConfigError, match=r"weights='w\.txt'"):
        NetworkConfig(preset="resnet18", weights="w.txt")
    with pytest.raises(ConfigError, match="backbone_lr_mult"):
        OptimConfig(backbone_lr_mult=0.0)


def test_module_loads_weights_when_fit_starts_only(tmp_path: Path) -> None:
    source = tiny_resnet(1, channels=1)
    path = tmp_path / "w.pth"
    imagenet_style_file(source, path)
    network = NetworkConfig(preset="resnet18", conv_channels=TINY_WIDTHS, weights=str(path))
    module = DomainAdaptationModule(network=network, in_channels=1, image_size=32, num_classes=5)
    module.setup("predict")  # inference never reads the weights file
    assert not torch.equal(module.net.backbone.conv1.weight, source.backbone.conv1.weight)
    module.setup("fit")
    for (name, mine), theirs in zip(module.net.backbone.state_dict().items(),
                                    source.backbone.state_dict().values(), strict=True):
        assert torch.equal(mine, theirs), name


def test_backbone_and_heads_learning_rates_through_the_scheduler(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny ResNet run from a weights file: two parameter groups, lr × 0.1 for the backbone, kept by the schedule."""
    monkeypatch.chdir(tmp_path)
    weights = tmp_path / "w.pth"
    imagenet_style_file(tiny_resnet(1, channels=1), weights)
    assert main(["fit", *TINY_FIT, "--model.network.preset", "resnet18", "--model.network.conv_channels",
                 "[8, 16, 32, 64]", "--model.network.bottleneck_dim", "16", "--model.network.weights", str(weights),
                 "--model.optim.lr", "0.01", "--model.optim.backbone_lr_mult", "0.1",
                 "--model.optim.lr_schedule", "dann"]) == 0
    ckpt = safe_torch_load(run_dir(tmp_path) / "checkpoints" / "last.ckpt")
    groups = ckpt["optimizer_states"][0]["param_groups"]
    assert [g["name"] for g in groups] == ["backbone", "heads"]
    assert groups[0]["initial_lr"] == pytest.approx(0.001) and groups[1]["initial_lr"] == pytest.approx(0.01)
    assert groups[1]["lr"] < 0.01  # the schedule ran (4 steps) ...
    assert groups[0]["lr"] == pytest.approx(0.1 * groups[1]["lr"])  # ... and scaled both groups alike
    module = DomainAdaptationModule(network=NetworkConfig(preset="resnet18", conv_channels=TINY_WIDTHS),
                                    optim=OptimConfig(backbone_lr_mult=0.1), in_channels=1, num_classes=10)
    backbone, heads = module.parameter_groups()
    assert {id(p) for p in backbone["params"]} == {id(p) for p in module.net.backbone.parameters()}
    rest = [*module.net.feature_extractor.bottleneck.parameters(), *module.net.classifier.parameters(),
            *module.net.domain_classifier.parameters()]
    assert {id(p) for p in heads["params"]} == {id(p) for p in rest}
    assert len(groups[0]["params"]) == len(backbone["params"]) and len(groups[1]["params"]) == len(rest)


def test_resnet_step_benchmark_runs(tmp_path: Path) -> None:
    """``benchmarks/resnet_step.py`` at a small size: its step and its round trip report identical features."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "resnet_step.py"
    out = subprocess.run([sys.executable, str(script), "--preset", "resnet18", "--size", "64", "--steps", "1",
                          "--threads", "1"], capture_output=True, text=True, timeout=300, check=True).stdout
    assert "lr groups backbone=0.001, heads=0.01" in out
    assert "one step (forward + backward + SGD) on 4 images of 64x64" in out
    assert "round trip .pth" in out and "DIFFERENT" not in out and "0 after (identical)" in out


def test_weights_by_name_come_through_torch_hub_with_the_checksum_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from adaptrack.adapt.networks import HUB_WEIGHTS

    source = tiny_resnet(1)
    calls: list[tuple[str, dict]] = []

    def fake_download(url: str, **options: object) -> dict[str, torch.Tensor]:  # no network in tests
        calls.append((url, options))
        return {**source.backbone.state_dict(), "fc.weight": torch.zeros(1000, 64), "fc.bias": torch.zeros(1000)}

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    fresh = tiny_resnet(3)
    load_backbone_weights(fresh.backbone, "torchvision:resnet18")
    assert calls[0][0] == HUB_WEIGHTS["torchvision:resnet18"]
    assert calls[0][1]["check_hash"] is True and calls[0][1]["weights_only"] is True
    x = torch.randn(2, 3, 32, 32)
    source.eval(), fresh.eval()
    assert torch.equal(fresh.backbone(x), source.backbone(x))
    assert NetworkConfig(preset="resnet50", weights="torchvision:resnet50").weights == "torchvision:resnet50"
    with pytest.raises(ConfigError, match="torchvision:resnet50"):
        NetworkConfig(preset="resnet50", weights="resnet50")  # neither a file nor a known name

    def offline(url: str, **options: object) -> dict[str, torch.Tensor]:
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(DataError, match=r"torchvision:resnet18.*local file"):
        load_backbone_weights(fresh.backbone, "torchvision:resnet18")
