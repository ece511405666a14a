"""Synthetic-to-real adaptation of the part detector: dense pseudo labels, the gate, the reversed
domain gradient, the target streams, a tiny fit with the tracker loader, and "off = unchanged"."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from adaptrack.adapt.config import GateConfig, LossWeights
from adaptrack.common.errors import ConfigError, DataError
from adaptrack.track.data.synth import generate_dataset
from adaptrack.track.data.types import ClipBatch, FrameAnn, PartSpec, PersonAnn, SequenceAnn
from adaptrack.track.inference.checkpoints import load_part_detector
from adaptrack.track.models import PartDetector
from adaptrack.track.train.adaptation import (
    DensePseudoLabeler,
    PartAdaptConfig,
    dense_domain_loss,
    self_learning_focal_loss,
)
from adaptrack.track.train.batch import augment
from adaptrack.track.train.datamodule import TrackDataModule
from adaptrack.track.train.module import PartDetectorModule
from adaptrack.track.train.target import LabeledTargetCrops, TargetFrames, synthetic_person_height, window_side

TINY = {"channels": [8, 8, 8, 8], "dilations": [2], "crop_size": None}


def _maps(peaks: dict[tuple[int, int], float], h: int = 16, w: int = 16) -> tuple[torch.Tensor, ...]:
    heat = torch.full((1, h, w), 0.05)
    for (x, y), v in peaks.items():
        heat[0, y, x] = v
    size = torch.zeros(1, 2, h, w)
    size[:, 0], size[:, 1] = 2.0, 3.0  # w, h in elements
    offset = torch.full((1, 2, h, w), 0.25)
    return heat, size, offset


def test_dense_pseudo_labeler_exact_boxes_cap_threshold_and_ignore_mask() -> None:
    peaks = {(3, 4): 0.9, (12, 5): 0.8, (10, 12): 0.7, (2, 12): 0.4, (7, 1): 0.5}
    heat, size, offset = _maps(peaks)
    labeler = DensePseudoLabeler(threshold=0.5, ignore_threshold=0.2, max_per_image=2)
    out = labeler(heat, size, offset, (4.0, 4.0))
    # the two strongest peaks above 0.5, strongest first; box centre (cell + offset) * 4, size (2, 3) * 4
    expected = torch.tensor([[[(3.25 * 4) - 4, (4.25 * 4) - 6, 8, 12], [(12.25 * 4) - 4, (5.25 * 4) - 6, 8, 12]]])
    assert torch.allclose(out.boxes, expected)
    assert torch.allclose(out.scores, torch.tensor([[0.9, 0.8]]))
    assert out.confident.tolist() == [3]  # 0.5 is not above the threshold (strict, as claim 13)
    assert out.centre[0, 4, 3] and out.centre[0, 5, 12] and int(out.centre.sum()) == 2
    ignore = out.ignore[0]
    assert ignore[12, 10]  # the capped-off confident peak leaves the loss
    assert ignore[12, 2] and ignore[1, 7]  # the band 0.2 <= p <= 0.5
    assert not ignore[4, 3] and not ignore[0, 0]  # centres and confident background stay
    diag = out.diagnostics()
    assert float(diag["pseudo_per_image"]) == 2 and math.isclose(float(diag["pseudo_score"]), 0.85, abs_tol=1e-6)
    # no peak above the threshold: no box, nothing selected
    none = labeler(*_maps({(3, 3): 0.45}), (4.0, 4.0))
    assert not none.selected.any() and torch.isnan(none.boxes).all() and none.ignore[0, 3, 3]


def test_self_learning_loss_ignores_the_masked_elements() -> None:
    heat, size, offset = _maps({(3, 4): 0.9, (2, 12): 0.4})
    pseudo = DensePseudoLabeler(0.5, 0.2, 4)(heat, size, offset, (4.0, 4.0))
    heat = heat.clone().requires_grad_(True)
    self_learning_focal_loss(heat, pseudo).backward()
    assert heat.grad[0, 12, 2] == 0  # ignored: no gradient
    assert heat.grad[0, 0, 0] > 0  # background pushed down
    assert heat.grad[0, 4, 3] < 0  # the pseudo centre pushed up


def test_config_groups_are_system_ones_and_check_their_values() -> None:
    cfg = PartAdaptConfig(weights={"domain": 0.2}, gate={"start_ratio": 0.1}, pseudo={"threshold": 0.6})
    assert isinstance(cfg.weights, LossWeights) and cfg.weights.domain == 0.2
    assert isinstance(cfg.gate, GateConfig) and cfg.gate.start_ratio == 0.1
    with pytest.raises(ConfigError, match="ignore_threshold"):
        PartAdaptConfig(pseudo={"threshold": 0.3, "ignore_threshold": 0.4})
    with pytest.raises(ConfigError, match="unknown keys"):
        PartAdaptConfig(gate={"start": 1})


def test_gate_starts_self_learning_on_the_source_heat_loss(batch_factory: Callable[..., ClipBatch]) -> None:
    torch.manual_seed(0)
    cfg = PartAdaptConfig(gate=GateConfig(start_window=0, start_ratio=2.0, start_source_loss=1e3),
                          pseudo={"threshold": 0.01, "ignore_threshold": 0.0})
    module = PartDetectorModule(**TINY, adaptation=cfg, flip_prob=0.0)
    batch = {"source": batch_factory(T=1), "target": torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)}
    assert not module.gate.active
    module.training_step(batch, 0)
    assert module.gate.active and module.gate.state.start_reason == "source_loss"
    module.training_step(batch, 1)  # now with the self-learning term
    never = PartDetectorModule(**TINY, adaptation=PartAdaptConfig(gate=GateConfig(start_window=0, start_ratio=2.0)))
    never.training_step(batch, 0)
    assert not never.gate.active


def test_domain_loss_gradient_is_reversed_on_the_backbone() -> None:
    torch.manual_seed(0)
    module = PartDetectorModule(**TINY, adaptation=PartAdaptConfig())
    head, backbone = module.domain_head, module.part_model.backbone
    x = torch.rand(4, 3, 32, 32)
    param = next(backbone.parameters())
    head.grl.coefficient = 0.5
    through = dense_domain_loss(head(backbone(x)), 2)
    g_rev, g_head = torch.autograd.grad(through, [param, head.net[0].weight])
    plain = dense_domain_loss(head.net(backbone(x)), 2)
    g_plain, g_head_plain = torch.autograd.grad(plain, [param, head.net[0].weight])
    assert torch.allclose(g_rev, -0.5 * g_plain, atol=1e-7) and g_plain.abs().sum() > 0
    assert torch.allclose(g_head, g_head_plain)  # the domain classifier itself learns to classify


def test_target_windows_show_people_at_the_synthetic_scale(tmp_path: Path) -> None:
    assert math.isclose(synthetic_person_height(256), 0.44 * 256)
    assert math.isclose(window_side(128, 180, 112.64), 128 * 180 / 112.64)
    img = np.zeros((300, 400, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    frames = TargetFrames([tmp_path / "a.png"], crop_size=32, person_height=90, synthetic_height=45,
                          samples_per_epoch=5, scale_jitter=0.0)
    assert len(frames) == 5 and frames[(1, 3)].shape == (3, 32, 32) and frames[(1, 3)].dtype == torch.uint8
    assert torch.equal(frames[(1, 3)], frames[(1, 3)])
    # a labeled person 90 px tall appears at the synthetic 14 px in its 32-px window (side 32 × 90 / 14 px)
    person = PersonAnn(track_id=7, box=(150.0, 100.0, 30.0, 90.0), parts=((160.0, 100.0, 10.0, 12.0),))
    seq = SequenceAnn("cam", (FrameAnn(tmp_path / "a.png", 0, 400, 300, (person,)),), (PartSpec(),))
    crops = LabeledTargetCrops([seq], crop_size=32, synthetic_height=14, samples_per_epoch=3, scale_jitter=0.0)
    clip = crops[(0, 1)]
    assert clip.frames.shape == (1, 3, 32, 32) and clip.track_id == 7
    assert math.isclose(float(clip.target_box[0, 3]), 14.0, rel_tol=1e-5)
    assert math.isclose(float(clip.target_parts[0, 0, 2]), 10.0 * 14 / 90, rel_tol=1e-5)
    with pytest.raises(DataError, match="no person"):
        LabeledTargetCrops([SequenceAnn("cam", (FrameAnn(tmp_path / "a.png", 0, 400, 300, ()),), (PartSpec(),))])


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("synth")
    generate_dataset(data, n_sequences=1, n_frames=4, preset="crowded", seed=0, width=64, height=64, split="train")
    return data


def _real(tmp_path: Path, n: int = 3) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        paths.append(tmp_path / f"f{i:03d}.jpg")
        Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def _trainer(tmp_path: Path, steps: int) -> pl.Trainer:
    return pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0)


def test_tiny_fit_with_target_folder_and_labeled_frames_saves_a_tracker_readable_checkpoint(
        tmp_path: Path, synth: Path) -> None:
    (tmp_path / "real").mkdir()
    paths = _real(tmp_path / "real")

    def labeled(specs: tuple[PartSpec, ...]) -> list[SequenceAnn]:
        people = (PersonAnn(1, (40.0, 20.0, 20.0, 60.0), ((45.0, 20.0, 9.0, 10.0),)),
                  PersonAnn(2, (90.0, 30.0, 18.0, 55.0), ((94.0, 30.0, 8.0, 9.0),)))
        return [SequenceAnn("real", tuple(FrameAnn(p, i, 160, 120, people) for i, p in enumerate(paths[:2])), specs)]

    dm = TrackDataModule(train_dir=str(synth), parts=["head"], clip_len=1, max_stride=1, image_size=64,
                         batch_size=2, samples_per_epoch=4, target_dir=str(tmp_path / "real"), labeled_target=labeled,
                         person_height=60, target_batch_size=2, labeled_batch_size=1, target_crop_size=64)
    cfg = PartAdaptConfig(gate=GateConfig(start_window=0, start_ratio=0.0))
    module = PartDetectorModule(**TINY, adaptation=cfg, warmup_steps=1)
    trainer = _trainer(tmp_path, 3)
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 3 and module.gate.active
    logged = trainer.callback_metrics
    for key in ("train/domain", "train/minority_shot", "train/self_learning", "target/pseudo_per_image"):
        assert key in logged and math.isfinite(float(logged[key]))
    ckpt = tmp_path / "adapted.ckpt"
    trainer.save_checkpoint(ckpt)
    model, meta = load_part_detector(ckpt)
    assert meta["kind"] == "parts" and isinstance(model, PartDetector)
    # fine-tuning from it (init_checkpoint) starts from exactly its detector
    again = PartDetectorModule(**TINY, init_checkpoint=str(ckpt))
    for a, b in zip(again.part_model.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(DataError, match="init_checkpoint"):
        PartDetectorModule(channels=[8, 8, 8, 16], crop_size=None, init_checkpoint=str(ckpt))


def test_off_by_default_trains_exactly_as_before(tmp_path: Path, synth: Path,
                                                batch_factory: Callable[..., ClipBatch]) -> None:
    dm = TrackDataModule(train_dir=str(synth), parts=["head"], clip_len=1, max_stride=1, image_size=64,
                         batch_size=2, samples_per_epoch=4)
    dm.setup("fit")
    assert isinstance(dm.train_dataloader(), DataLoader) and dm.target_set is None and dm.labeled_set is None
    # the module draws nothing more than the detector: same parameters, same random stream after
    torch.manual_seed(3)
    module = PartDetectorModule(**TINY)
    after_module = torch.get_rng_state()
    torch.manual_seed(3)
    bare = PartDetector(num_parts=1, channels=[8, 8, 8, 8], dilations=[2])
    assert torch.equal(after_module, torch.get_rng_state())
    assert set(module.state_dict()) == {f"part_model.{k}" for k in bare.state_dict()}
    assert not hasattr(module, "domain_head")
    # a training step is augment + the CenterNet loss, drawing the same random numbers
    batch = batch_factory(T=1)
    torch.manual_seed(5)
    loss = module.training_step(batch, 0)
    state = torch.get_rng_state()
    torch.manual_seed(5)
    ref = module._loss(augment(batch, module.hparams.flip_prob, module.hparams.crop_size))
    assert torch.equal(loss, ref["loss"]) and torch.equal(state, torch.get_rng_state())
    assert set(ref) == {"loss", "heat", "size", "offset"}
    with pytest.raises(ConfigError, match=r"model\.adaptation"):
        module.training_step({"source": batch, "target": batch.frames[:, 0]}, 0)


def test_labeled_target_reads_a_posetrack_json_and_rejects_unknown_formats(tmp_path: Path, synth: Path) -> None:
    json_file = sorted((synth / "annotations" / "train").glob("*.json"))[0]
    common = {"train_dir": str(synth), "clip_len": 1, "max_stride": 1, "image_size": 64, "batch_size": 2,
              "samples_per_epoch": 4, "target_crop_size": 32, "labeled_batch_size": 3}
    dm = TrackDataModule(labeled_target=str(json_file), **common)
    dm.setup("fit")
    assert dm.target_set is None and len(dm.labeled_set) == 2 * 3
    assert dm.labeled_set[(0, 0)].frames.shape == (1, 3, 32, 32)
    (tmp_path / "heads.top").write_text("personNumber,frameNumber\n")
    with pytest.raises(DataError, match="no reader"):
        TrackDataModule(labeled_target=str(tmp_path / "heads.top"), **common).setup("fit")
