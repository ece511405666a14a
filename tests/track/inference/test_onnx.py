"""ONNX export of both models; onnxruntime agrees with PyTorch (graphs and the whole tracker)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from adaptrack.track.data.types import ClipBatch
from adaptrack.track.inference.checkpoints import load_models
from adaptrack.track.inference.onnx_export import GRAPHS, export_models
from adaptrack.track.inference.tracker import Tracker, load_tracker

ATOL = 1e-4  # absolute, on likelihoods in (0, 1) and maps in elements
BOX_ATOL = 1e-2  # pixels, after decoding


@pytest.fixture(scope="module")
def export_dir(tracker_ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    part, subject, meta = load_models(tracker_ckpt)
    out = tmp_path_factory.mktemp("onnx")
    diffs = export_models(part, subject, out, meta["parts"], input_size=64, atol=ATOL)
    assert set(diffs) == set(GRAPHS) and max(diffs.values()) <= ATOL
    return out


def test_export_writes_three_graphs_and_meta(export_dir: Path) -> None:
    assert sorted(p.name for p in export_dir.iterdir()) == ["meta.json", "parts.onnx", "subject.onnx",
                                                             "template.onnx"]


def _assert_trackers_agree(torch_t: Tracker, ort_t: Tracker, clip: ClipBatch) -> None:
    """Both trackers follow the clip's target from its first frame with matching outputs."""
    box = tuple(clip.target_box[0, 0].tolist())
    torch_t.initialize(clip.frames[0, 0], box)
    ort_t.initialize(clip.frames[0, 0], box)
    for t in range(1, clip.frames.shape[1]):
        a, b = torch_t.track(clip.frames[0, t]), ort_t.track(clip.frames[0, t])
        assert np.allclose(a.box, b.box, atol=BOX_ATOL)
        assert a.score == pytest.approx(b.score, abs=ATOL)
        assert np.allclose(a.parts[0].position, b.parts[0].position, atol=BOX_ATOL)
        assert np.allclose(torch_t.last_maps.product.numpy(), ort_t.last_maps.product.numpy(), atol=ATOL)


def test_onnxruntime_tracker_agrees_with_pytorch(export_dir: Path, tracker_ckpt: Path,
                                                 batch_factory: Callable[..., ClipBatch]) -> None:
    torch_t = load_tracker(tracker_ckpt)
    assert torch_t.input_size == 64  # the training size, recorded in the checkpoint
    _assert_trackers_agree(torch_t, load_tracker(export_dir, threads=1), batch_factory(B=1, T=5))


def test_tampered_export_is_rejected(export_dir: Path, tmp_path: Path) -> None:
    from adaptrack.common.errors import DataError

    (tmp_path / "parts.onnx").write_bytes((export_dir / "parts.onnx").read_bytes())
    with pytest.raises(DataError, match="not an ONNX export folder"):
        load_tracker(tmp_path)


def test_stride4_models_with_region_branch_export_and_agree(tmp_path: Path,
                                                            batch_factory: Callable[..., ClipBatch]) -> None:
    """The upsampling neck (bilinear resize), the pooled prior and the region branch export too."""
    import torch

    from adaptrack.track.inference.tracker import TorchBackend, TrackerSettings
    from adaptrack.track.models import PartDetector, SubjectModel

    torch.manual_seed(0)
    small = {"channels": [8, 8, 12, 16], "dilations": [2]}
    part = PartDetector(fine_maps=True, **small).eval()
    subject = SubjectModel(head_channels=16, region_dilations=[2], fine_maps=True, **small).eval()
    settings = TrackerSettings(prior_sigma=0.2, window_power=2.0, part_window=0.15)
    diffs = export_models(part, subject, tmp_path, ["head"], input_size=64, atol=ATOL, settings=settings)
    assert max(diffs.values()) <= ATOL
    ort_t = load_tracker(tmp_path, threads=1)
    assert ort_t.map_hw == (16, 16) and ort_t.settings == settings
    torch_t = Tracker(TorchBackend(part, subject), ["head"], stride=4, input_size=64, settings=settings)
    _assert_trackers_agree(torch_t, ort_t, batch_factory(B=1, T=3))


LEVERS_ON = {"motion": "velocity", "gate": 0.2, "redetect": True, "redetect_min": 0.1, "memory_weight": 0.3,
             "memory_threshold": 0.0, "memory_interval": 2, "distractor_weight": 2.0, "jump_penalty": 1.0,
             "part_gate": 0.05}


def test_onnxruntime_agrees_with_pytorch_with_every_lever_on(export_dir: Path, tracker_ckpt: Path,
                                                             batch_factory: Callable[..., ClipBatch]) -> None:
    """The new outputs too: occluded, re-detected and each part's visible flag."""
    torch_t, ort_t = load_tracker(tracker_ckpt, **LEVERS_ON), load_tracker(export_dir, threads=1, **LEVERS_ON)
    assert torch_t.settings == ort_t.settings
    clip = batch_factory(B=1, T=6)
    box = tuple(clip.target_box[0, 0].tolist())
    torch_t.initialize(clip.frames[0, 0], box)
    ort_t.initialize(clip.frames[0, 0], box)
    for t in range(1, clip.frames.shape[1]):
        a, b = torch_t.track(clip.frames[0, t]), ort_t.track(clip.frames[0, t])
        assert (a.occluded, a.redetected) == (b.occluded, b.redetected)
        assert [p.visible for p in a.parts] == [p.visible for p in b.parts]
        assert np.allclose(a.box, b.box, atol=BOX_ATOL)
        assert np.allclose(a.parts[0].position, b.parts[0].position, atol=BOX_ATOL)
