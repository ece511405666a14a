"""ONNX export (``adaptrack adapt export``), ``adaptrack.adapt.load`` on both backends, and ``predict``'s inputs."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import adaptrack.adapt
from adaptrack.adapt.cli import main
from adaptrack.adapt.data.augment import resize_uint8
from adaptrack.adapt.data.registry import load_dataset
from adaptrack.adapt.export import export_network, read_export_meta
from adaptrack.adapt.networks import build_network
from adaptrack.adapt.predict import Classifier, OnnxBackend, TorchBackend, load_network
from adaptrack.common.errors import ConfigError, DataError
from adaptrack.common.paths import shared_data_dir

from .conftest import TINY_FIT, run_dir


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny trained checkpoint (28×28 gray digits) and its export folder, shared by this module."""
    root = tmp_path_factory.mktemp("exported")
    with contextlib.chdir(root):
        assert main(["fit", *TINY_FIT]) == 0
        ckpt = run_dir(root) / "checkpoints" / "last.ckpt"
        assert main(["export", "--checkpoint", str(ckpt), "--output", str(root / "onnx")]) == 0
    return ckpt, root / "onnx"


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    """Real scikit-learn digits at the model's size: uint8 ``(N, 1, 28, 28)``."""
    return resize_uint8(load_dataset("sklearn_digits", "test").images[:64], 28)


def test_export_writes_model_and_meta(exported: tuple[Path, Path]) -> None:
    ckpt, folder = exported
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "model.onnx"]  # no temporary left
    meta = json.loads((folder / "meta.json").read_text())
    hp = torch.load(ckpt, weights_only=True)["hyper_parameters"]
    assert meta["class_names"] == hp["class_names"] and meta["num_classes"] == 10
    assert (meta["input_size"], meta["channels"]) == (28, 1)
    assert meta["preprocessing"]["mean"] == [0.5] and meta["preprocessing"]["std"] == [0.5]
    assert meta["preprocessing"]["scale"] == pytest.approx(1 / 255)
    assert meta["network"]["conv_channels"] == [8, 16]
    diffs = meta["check"]["max_abs_diff"]
    assert set(diffs) == {"logits", "probs"} and max(diffs.values()) <= meta["check"]["atol"]


def test_onnx_and_pytorch_agree_through_load(exported: tuple[Path, Path], digits: torch.Tensor) -> None:
    ckpt, folder = exported
    torch_clf, onnx_clf = adaptrack.adapt.load(ckpt), adaptrack.adapt.load(folder)
    assert type(torch_clf) is type(onnx_clf) is Classifier
    assert isinstance(torch_clf.backend, TorchBackend) and isinstance(onnx_clf.backend, OnnxBackend)
    assert onnx_clf.class_names == torch_clf.class_names
    assert (onnx_clf.image_size, onnx_clf.channels) == (torch_clf.image_size, torch_clf.channels) == (28, 1)
    a, b = torch_clf.predict(digits, batch_size=20), onnx_clf.predict(digits, batch_size=20)  # uneven batches
    assert torch.equal(a.labels, b.labels) and a.names == b.names
    assert float((a.probs - b.probs).abs().max()) < 1e-5


def test_inference_rebuilds_the_networks_only(exported: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
                                              digits: torch.Tensor) -> None:
    ckpt, _ = exported
    from adaptrack.adapt.module import DomainAdaptationModule, build_module

    expected = build_module(torch.load(ckpt, weights_only=True)["hyper_parameters"])
    expected.load_state_dict(torch.load(ckpt, weights_only=True)["state_dict"])

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("inference built the training module")

    monkeypatch.setattr(DomainAdaptationModule, "__init__", refuse)
    net, hp = load_network(ckpt)
    assert hp["image_size"] == 28 and not net.training
    x = digits.float() / 127.5 - 1  # (N, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(net(x), expected.eval()(x))
    assert adaptrack.adapt.load(ckpt).predict(digits[:3]).probs.shape == (3, 10)


def _rgb(gray: torch.Tensor) -> np.ndarray:
    """uint8 ``(N, 1, H, W)`` tensor → RGB digits ``(N, H, W, 3)`` uint8 array."""
    return np.repeat(gray.permute(0, 2, 3, 1).numpy(), 3, axis=3)


def test_predict_takes_what_users_hold(exported: tuple[Path, Path], digits: torch.Tensor, tmp_path: Path) -> None:
    """Every input kind gives the network the very same uint8 batch, so the same classes, on both backends."""
    ckpt, folder = exported
    gray = digits[:8]  # (8, 1, 28, 28) uint8
    hwc = gray.permute(0, 2, 3, 1).numpy()  # (8, 28, 28, 1)
    rgb = _rgb(gray)  # (8, 28, 28, 3): the "cannot convert 32-channel images" input
    pil = [Image.fromarray(a[:, :, 0]) for a in hwc]
    pil_rgb = [Image.fromarray(a) for a in rgb]
    paths = []
    for i, image in enumerate(pil_rgb):
        paths.append(tmp_path / f"d{i}.png")
        image.save(paths[-1])
    kinds: dict[str, object] = {
        "NCHW uint8 tensor": gray, "NCHW float tensor in [0, 1]": gray.float() / 255,
        "NCHW uint8 array": gray.numpy(), "NHWC gray array": hwc, "NHWC RGB array": rgb,
        "NHWC RGBA array": np.concatenate([rgb, np.full_like(rgb[..., :1], 255)], axis=3),
        "NHWC uint16 array": rgb.astype(np.uint16) * 257, "NHW gray stack": gray[:, 0].numpy(),
        "list of PIL gray": pil, "list of PIL RGB": pil_rgb, "list of paths": paths,
        "list of str": [str(p) for p in paths],
        "list of HWC arrays": list(rgb), "list of CHW tensors": list(gray), "mixed list": [pil[0], rgb[1], gray[2:8]],
    }
    for clf in (adaptrack.adapt.load(ckpt), adaptrack.adapt.load(folder)):
        reference = clf.predict(gray)
        for name, images in kinds.items():
            batch = clf.as_uint8(images)
            assert torch.equal(batch, gray), name
            assert torch.equal(clf.predict(images).labels, reference.labels), name
        singles = {"path": paths[0], "PIL image": pil_rgb[0], "HWC RGB array": rgb[0], "HW gray array": hwc[0, :, :, 0],
                   "CHW tensor": gray[0], "HW tensor": gray[0, 0]}
        for name, image in singles.items():
            assert torch.equal(clf.as_uint8(image), gray[:1]), name
            assert clf.predict(image).labels.tolist() == reference.labels[:1].tolist(), name


def test_predict_resizes_and_converts(exported: tuple[Path, Path]) -> None:
    clf = adaptrack.adapt.load(exported[0])
    big = np.random.default_rng(0).integers(0, 256, (3, 40, 50, 3), dtype=np.uint8)  # (N, H, W, 3)
    assert clf.as_uint8(big).shape == (3, 1, 28, 28)
    assert clf.as_uint8([Image.fromarray(big[0]), Image.fromarray(big[1, :20])]).shape == (2, 1, 28, 28)
    assert clf.predict(big).probs.shape == (3, 10)


def test_bad_inputs_are_named(exported: tuple[Path, Path], tmp_path: Path) -> None:
    clf = adaptrack.adapt.load(exported[1])
    with pytest.raises(TypeError, match="cannot predict on dict; pass image paths, PIL images"):
        clf.predict({"a": 1})
    with pytest.raises(ValueError, match=r"shape \(2, 5, 5, 5, 5\)"):
        clf.predict(np.zeros((2, 5, 5, 5, 5), np.uint8))
    with pytest.raises(ValueError, match=r"cannot tell the channels of images of shape \(2, 5, 5, 5\)"):
        clf.predict(np.zeros((2, 5, 5, 5), np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full((28, 28), np.nan, np.float32))
    with pytest.raises(ValueError, match="empty"):
        clf.predict([])
    with pytest.raises(DataError, match=r"missing\.png"):
        clf.predict([tmp_path / "missing.png"])


def test_load_and_export_refuse_bad_folders(exported: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, folder = exported
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty.*missing model\.onnx, meta\.json"):
        adaptrack.adapt.load(empty)
    other = tmp_path / "other"
    other.mkdir()
    (other / "model.onnx").write_bytes((folder / "model.onnx").read_bytes())
    (other / "meta.json").write_text(json.dumps({"parts": ["head"], "input_size": 256}))  # a tracker export's
    with pytest.raises(DataError, match=r"other/meta\.json.*not the meta\.json of `adaptrack adapt export`"):
        read_export_meta(other)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes(b"not onnx")
    (broken / "meta.json").write_text((folder / "meta.json").read_text())
    with pytest.raises(DataError, match=r"broken/model\.onnx: not a readable ONNX model"):
        adaptrack.adapt.load(broken)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match=r"--output=.*a_file/onnx"):
        from adaptrack.adapt.export import export

        export(str(ckpt), str(blocker / "onnx"))
    assert main(["export", "--checkpoint", str(tmp_path / "absent.ckpt"), "--output", str(tmp_path / "o")]) != 0
    assert not (tmp_path / "o").exists()


def test_tiny_resnet_exports_and_agrees(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_network("resnet18", 3, num_classes=4, image_size=32, channels=(4, 8, 8, 8), bottleneck_dim=8,
                        domain_hidden=(8,))
    net.train()
    net(torch.randn(8, 3, 32, 32))  # batch statistics move away from their initial values
    diffs = export_network(net, tmp_path / "onnx", ["a", "b", "c", "d"], channels=3, size=32, exporter="legacy")
    assert max(diffs.values()) < 1e-4
    onnx_clf = adaptrack.adapt.load(tmp_path / "onnx")
    torch_clf = Classifier(TorchBackend(net), ["a", "b", "c", "d"], 32, 3)
    images = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    a, b = torch_clf.predict(images), onnx_clf.predict(images)
    assert a.names == b.names and float((a.probs - b.probs).abs().max()) < 1e-5


@pytest.mark.skipif(shared_data_dir() is None, reason="../shared/data (USPS) is absent")
def test_usps_benchmark_agrees(exported: tuple[Path, Path], tmp_path: Path) -> None:
    """``benchmarks/adapt_onnx.py`` on the real USPS test set with the tiny checkpoint: the same class everywhere."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "adapt_onnx.py"
    out = subprocess.run([sys.executable, str(script), "--checkpoint", str(exported[0]), "--data-root",
                          str(shared_data_dir()), "--out", str(tmp_path / "bench")],
                         capture_output=True, text=True, timeout=600, check=True).stdout
    assert "USPS test: same class for 2007 / 2007 images" in out
    assert (tmp_path / "bench" / "onnx" / "model.onnx").is_file()


def test_imagenet_input_norm_is_applied_by_load_and_inside_the_onnx_graph(tmp_path: Path) -> None:
    from adaptrack.adapt.config import NetworkConfig
    from adaptrack.adapt.module import DomainAdaptationModule
    from adaptrack.common.training import to_plain

    torch.manual_seed(0)
    module = DomainAdaptationModule(network=NetworkConfig(conv_channels=[8, 16], class_hidden=[16],
                                                          domain_hidden=[16]),
                                    in_channels=3, image_size=28, input_norm="imagenet").eval()
    ckpt = tmp_path / "rgb.ckpt"
    torch.save({"hyper_parameters": to_plain(dict(module.hparams)), "state_dict": module.state_dict()}, ckpt)
    images = torch.randint(0, 256, (6, 3, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        expected = module(images.float() / 127.5 - 1).softmax(1)  # the training module's own forward
    net, _ = load_network(ckpt)
    assert net.input_norm == "imagenet"
    assert float((adaptrack.adapt.load(ckpt).predict(images).probs - expected).abs().max()) < 1e-6
    assert main(["export", "--checkpoint", str(ckpt), "--output", str(tmp_path / "onnx")]) == 0
    assert read_export_meta(tmp_path / "onnx")["input_norm"] == "imagenet"
    assert float((adaptrack.adapt.load(tmp_path / "onnx").predict(images).probs - expected).abs().max()) < 1e-5
