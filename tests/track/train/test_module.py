"""Training: the element-product loss trains only the second model; a few steps of both fits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from adaptrack.common.files import safe_torch_load
from adaptrack.common.resume import AtomicCheckpointIO
from adaptrack.common.training import BestAndLastCheckpoint, NonFiniteLossError
from adaptrack.track.data.types import ClipBatch
from adaptrack.track.inference.checkpoints import load_models, load_part_detector
from adaptrack.track.train.module import PartDetectorModule, TrackerModule
from tests.helpers.poison import PoisonAtStep
from tests.track.conftest import batches


def _trainer(tmp_path: Path, steps: int) -> pl.Trainer:
    return pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)


def test_part_detector_fit_reduces_loss_and_checkpoint_reloads(tiny: dict, tmp_path: Path, batch: ClipBatch) -> None:
    torch.manual_seed(0)
    module = PartDetectorModule(**tiny, warmup_steps=1, lr=1e-2, flip_prob=0.0)
    before = module._loss(batch)["loss"].item()
    trainer = _trainer(tmp_path, 15)
    trainer.fit(module, train_dataloaders=DataLoader([batch] * 15, batch_size=None))
    module.eval()
    after = module._loss(batch)["loss"].item()
    assert after < before
    trainer.save_checkpoint(tmp_path / "p.ckpt")
    model, meta = load_part_detector(tmp_path / "p.ckpt")
    assert meta["parts"] == ["head"]
    x = batch.frames[0].float() / 255
    assert torch.allclose(model(x)[0], module.part_model(x)[0])


def test_element_product_loss_reaches_only_the_second_model(tiny: dict, part_ckpt: Path, batch: ClipBatch) -> None:
    module = TrackerModule(str(part_ckpt), subject_weight=0.0, **tiny)
    module.part_model.requires_grad_(True)  # even if someone unfroze it, no gradient may arrive
    module.train()
    assert not module.part_model.training  # the frozen detector stays in eval mode (BN statistics)
    maps = module.compute(batch)
    losses = module.losses(batch, maps, temporal=False)
    assert losses["loss"].item() == pytest.approx(losses["element"].item())
    losses["loss"].backward()
    assert all(p.grad is None for p in module.part_model.parameters())
    region_head = module.subject_model.head.weight.grad
    assert region_head is not None and region_head[5:].abs().sum() > 0
    backbone = [p.grad for p in module.subject_model.backbone.parameters()]
    assert all(g is not None for g in backbone) and sum(g.abs().sum() for g in backbone) > 0


def test_optimizer_holds_only_second_model_parameters(tiny: dict, part_ckpt: Path) -> None:
    module = TrackerModule(str(part_ckpt), **tiny)
    opt = module.configure_optimizers()["optimizer"]
    params = {id(p) for g in opt.param_groups for p in g["params"]}
    assert params == {id(p) for p in module.subject_model.parameters()}
    assert not params & {id(p) for p in module.part_model.parameters()}


def test_tracker_fit_few_steps_with_temporal_loss(tiny: dict, tmp_path: Path, part_ckpt: Path,
                                                 loader_factory: Callable[..., DataLoader]) -> None:
    module = TrackerModule(str(part_ckpt), temporal_n=2, temporal_weight=1.0, warmup_steps=1, **tiny)
    part_before = {k: v.clone() for k, v in module.part_model.state_dict().items()}
    trainer = _trainer(tmp_path, 3)
    trainer.fit(module, train_dataloaders=loader_factory(3, T=4))
    assert float(trainer.callback_metrics["train/temporal_step"]) > 0  # T=4, n=2: frames 2 and 3 have two past maps
    for k, v in module.part_model.state_dict().items():
        assert torch.equal(v, part_before[k]), f"frozen part detector changed: {k}"
    trainer.save_checkpoint(tmp_path / "t.ckpt")
    _, subject, meta = load_models(tmp_path / "t.ckpt")
    assert meta["kind"] == "tracker" and subject.num_parts == 1
    with pytest.raises(ValueError, match="part-detector checkpoint"):
        load_models(part_ckpt)


def test_temporal_loss_is_skipped_until_n_maps_are_stored(tiny: dict, part_ckpt: Path,
                                                         batch_factory: Callable[..., ClipBatch]) -> None:
    module = TrackerModule(str(part_ckpt), temporal_n=3, **tiny)
    b = batch_factory(B=1, T=3)
    maps = module.compute(b)
    l_tc = module.temporal_loss(b, maps["region"].reshape(1, 3, 1, *maps["region"].shape[-2:]))
    assert l_tc.item() == 0.0  # three frames, the third has only two stored maps
    b2 = batch_factory(B=1, T=3)
    b2.frame_indices = [[3, 4, 5]]
    maps2 = module.compute(b2)
    l_tc2 = module.temporal_loss(b2, maps2["region"].reshape(1, 3, 1, *maps2["region"].shape[-2:]))
    assert l_tc2.item() > 0  # continues frames 0-2 of the same stream


def test_region_branch_self_prior_rollout_and_hard_negatives_train_and_reload(
        tiny: dict, tmp_path: Path, part_ckpt: Path, batch: ClipBatch,
        loader_factory: Callable[..., DataLoader]) -> None:
    torch.manual_seed(0)
    module = TrackerModule(str(part_ckpt), region_dilations=[2], negative_boost=4.0, self_prior_prob=1.0,
                           warmup_steps=1, **tiny)
    module.train()
    maps = module.compute(batch, self_prior_prob=1.0)  # frame-by-frame rollout on its own predictions
    N = batch.frames.shape[0] * batch.frames.shape[1]
    assert maps["region"].shape[0] == N and maps["heat"].shape == (N, 1, *maps["region"].shape[-2:])
    losses = module.losses(batch, maps, temporal=False)
    losses["element"].backward()
    branch = [p.grad for p in module.subject_model.region_branch.parameters()]
    assert all(g is not None for g in branch) and sum(g.abs().sum() for g in branch) > 0
    trainer = _trainer(tmp_path, 2)
    trainer.fit(module, train_dataloaders=loader_factory(2, T=3))
    trainer.save_checkpoint(tmp_path / "r.ckpt")
    _, subject, meta = load_models(tmp_path / "r.ckpt")
    assert meta["subject_model"]["region_dilations"] == [2] and subject.region_branch is not None


def test_fine_maps_part_detector_sets_the_tracker_map_stride(tiny: dict, tmp_path: Path, batch: ClipBatch,
                                                             loader_factory: Callable[..., DataLoader]) -> None:
    torch.manual_seed(0)
    parts = PartDetectorModule(**tiny, fine_maps=True, warmup_steps=1)
    trainer = _trainer(tmp_path, 2)
    trainer.fit(parts, train_dataloaders=loader_factory(2, T=1))
    trainer.save_checkpoint(tmp_path / "p.ckpt")
    module = TrackerModule(str(tmp_path / "p.ckpt"), region_dilations=[2], self_prior_prob=0.5, **tiny)
    assert module.subject_model.stride == module.part_model.stride == 4
    maps = module.compute(batch, self_prior_prob=0.5)
    N = batch.frames.shape[0] * batch.frames.shape[1]
    assert maps["region"].shape == maps["part"].shape == (N, 1, 16, 16)  # 64 px frames at stride 4
    module.losses(batch, maps, temporal=False)["loss"].backward()
    assert all(p.grad is None for p in module.part_model.parameters())
    assert module.subject_model.neck.lateral[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("sigma, hit, wrong", [(0.0, 0.5, 0.5), (0.15, 1.0, 0.0)])
def test_closed_loop_association_decodes_frames_in_order_with_the_part_window(
        batch_factory: Callable[..., ClipBatch], sigma: float, hit: float, wrong: float) -> None:
    """Frame 0: the target's head is the stronger product peak; frame 1: the neighbour's head is.
    Decoded frame by frame with the part window (as the Tracker), the part stays on the target."""
    import dataclasses

    batch = batch_factory(B=1, T=2, size=64)
    head = torch.tensor([12.0, 12.0, 8.0, 8.0])  # centre (16, 16): element (4, 4) at ratio 4
    neighbour = torch.tensor([44.0, 12.0, 8.0, 8.0])  # centre (48, 16): element (12, 4)
    batch = dataclasses.replace(batch, target_parts=head.expand(1, 2, 1, 4).clone(),
                                other_parts=neighbour.expand(1, 2, 1, 1, 4).clone())
    product = torch.zeros(2, 1, 16, 16)
    product[0, 0, 4, 4], product[0, 0, 4, 12] = 0.9, 0.8
    product[1, 0, 4, 4], product[1, 0, 4, 12] = 0.8, 0.9
    maps = {"product": product, "part_size": torch.full((2, 1, 2, 16, 16), 2.0), "ratio": torch.tensor([4.0, 4.0])}
    rates = TrackerModule.association_rates(batch, maps, sigma)
    assert [float(r) for r in rates] == [hit, wrong]


def test_distractor_priors_sit_on_the_previous_frame_of_another_person(batch_factory: Callable[..., ClipBatch],
                                                                        ) -> None:
    b = batch_factory(B=2, T=4)
    b.other_boxes[1, 1] = float("nan")  # clip 1: the other person is absent in frame 1
    swapped = TrackerModule.distractor_boxes(b, 1.0)  # (B, T, 4)
    assert swapped.shape == (2, 4, 4)
    assert torch.isnan(swapped[:, 0]).all()  # frame 0's prior stays the template box
    assert torch.equal(swapped[0, 1:], b.other_boxes[0, :-1, 0])
    assert torch.isnan(swapped[1, 2]).all()  # nobody else in the frame before: no swap
    assert torch.equal(swapped[1, 3], b.other_boxes[1, 2, 0])
    assert torch.isnan(TrackerModule.distractor_boxes(b, 0.0)).all()


@pytest.mark.parametrize("self_prior_prob", [0.0, 1.0])
def test_distractor_priors_change_the_subject_maps_but_not_the_targets(
        tiny: dict, part_ckpt: Path, batch: ClipBatch, self_prior_prob: float) -> None:
    torch.manual_seed(0)
    module = TrackerModule(str(part_ckpt), distractor_prior_prob=0.5, **tiny).eval()
    with torch.no_grad():
        plain = module.compute(batch, self_prior_prob=self_prior_prob)
        swapped = module.compute(batch, self_prior_prob=self_prior_prob, distractor_prob=1.0)
    T = batch.frames.shape[1]
    heat_plain, heat_swapped = (m["heat"].reshape(2, T, -1) for m in (plain, swapped))
    assert torch.equal(heat_plain[:, 0], heat_swapped[:, 0])  # frame 0: the template box prior
    assert not torch.allclose(heat_plain[:, 1:], heat_swapped[:, 1:])  # later frames: prior on the other person
    assert torch.equal(plain["part"], swapped["part"])
    losses = module.losses(batch, swapped, temporal=False)  # same correct answers, finite
    assert torch.isfinite(losses["loss"])
    with pytest.raises(ValueError, match="distractor_prior_prob"):
        TrackerModule(str(part_ckpt), distractor_prior_prob=1.5, **tiny)


@pytest.mark.parametrize("order, reached", [("random", False), ("sequential", True)])
def test_an_in_order_pass_keeps_the_region_map_store_across_batches(order: str, reached: bool, tiny: dict,
                                                                    tmp_path: Path, part_ckpt: Path) -> None:
    """Clips of 2 frames with n = 2: only maps stored in the previous batch can feed the term."""
    from tests.track.conftest import make_batch

    first, second = make_batch(B=2, T=2), make_batch(B=2, T=2)
    second.frame_indices = [[2, 3]] * 2  # continues first's frames 0-1 of the same streams
    module = TrackerModule(str(part_ckpt), temporal_n=2, clip_order=order, **{**tiny, "flip_prob": 0.0})
    seen: list[float] = []

    class Record(pl.Callback):
        def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: object,
                               batch: object, batch_idx: int) -> None:
            seen.append(float(trainer.callback_metrics["train/temporal_step"]))

    trainer = pl.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, callbacks=[Record()])
    trainer.fit(module, train_dataloaders=DataLoader([first, second], batch_size=None))
    assert seen[0] == 0.0 and (seen[1] > 0) is reached


@pytest.mark.parametrize("model", ["parts", "tracker"])
def test_a_nan_loss_stops_training_naming_step_and_term_and_keeps_the_last_good_checkpoint(
        model: str, tiny: dict, tmp_path: Path, part_ckpt: Path) -> None:
    module = (PartDetectorModule(**tiny, warmup_steps=1) if model == "parts"
              else TrackerModule(str(part_ckpt), **tiny, warmup_steps=1, input_size=64))
    checkpoint = BestAndLastCheckpoint(dirpath=tmp_path, save_last=True, save_top_k=0, last_every_n_steps=1)
    trainer = pl.Trainer(max_steps=6, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[checkpoint, PoisonAtStep(at_step=3)], plugins=[AtomicCheckpointIO()])
    with pytest.raises(NonFiniteLossError, match=r"at step 3 in term\(s\) [a-z_, ]*loss"):
        trainer.fit(module, train_dataloaders=batches(6))
    state = safe_torch_load(tmp_path / "last.ckpt")
    assert state["global_step"] == 3  # the third step's save; the poisoned fourth step never ran
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
