"""A few-step fit per registered method, resume, NaN guard, and honest evaluation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch

from adaptrack.adapt.cli import build_cli, main
from adaptrack.adapt.data.datamodule import DomainAdaptationDataModule
from adaptrack.adapt.methods import METHODS
from adaptrack.adapt.module import DomainAdaptationModule
from adaptrack.common.files import safe_torch_load
from adaptrack.common.training import NonFiniteLossError

from .conftest import TINY_FIT, run_dir


@pytest.mark.parametrize("method", sorted(METHODS))
def test_fit_smoke_per_method(method: str, workdir: Path) -> None:
    assert main(["fit", *TINY_FIT, "--model.method", method]) == 0
    out = run_dir(workdir)
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == method
    assert 0.0 <= report["target acc %"] <= 100.0
    assert report["steps"] == 4
    assert (out / "curves.png").stat().st_size > 1000
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert list((out / "checkpoints").glob("best-*.ckpt"))
    with open(out / "metrics.csv") as handle:
        columns = next(csv.reader(handle))
    assert "train/source_loss" in columns
    assert ("train/domain_loss" in columns) and ("train/self_learning_loss" in columns)
    if method == "self_learning":  # threshold 0 and start_ratio 0: self-learning ran
        assert report["pseudo-labeled %"] > 0


def test_checkpoint_loads_weights_only_and_resume_continues(workdir: Path) -> None:
    assert main(["fit", *TINY_FIT]) == 0
    last = run_dir(workdir) / "checkpoints" / "last.ckpt"
    ckpt = safe_torch_load(last)  # weights_only=True
    assert ckpt["global_step"] == 4
    assert ckpt["self_learning_gate"]["started"] is True
    assert main(["fit", *TINY_FIT, "--trainer.max_epochs", "2", "--ckpt_path", str(last)]) == 0
    resumed = safe_torch_load(run_dir(workdir) / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == 8
    assert resumed["epoch"] == 1


class _Poison(L.Callback):
    """Turns a weight into NaN at the given step, as a diverging run would."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: object,
                             batch_idx: int) -> None:
        if trainer.global_step == self.at_step:
            with torch.no_grad():
                next(pl_module.parameters()).fill_(float("nan"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(workdir: Path) -> None:
    cli = build_cli([*TINY_FIT, "--trainer.max_epochs", "3"], run=False)
    checkpoint = next(cb for cb in cli.trainer.callbacks if isinstance(cb, L.pytorch.callbacks.ModelCheckpoint))
    cli.trainer.callbacks.append(_Poison(at_step=5))  # during the second epoch
    with pytest.raises(NonFiniteLossError, match="step 5"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    last = Path(checkpoint.dirpath) / "last.ckpt"
    state = safe_torch_load(last)
    assert state["global_step"] == 4  # written after the first, good epoch
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    assert not list(Path(checkpoint.dirpath).glob("*.tmp"))


def test_target_labels_never_reach_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scrambling target labels changes neither the losses nor the weights after a step."""

    def one_step(scramble: bool) -> torch.Tensor:
        L.seed_everything(0)
        dm = DomainAdaptationDataModule(synthetic_size=128, batch_size=16, steps_per_epoch=2)
        model = DomainAdaptationModule(conv_channels=[8], class_hidden=[16], domain_hidden=[16],
                                       start_ratio=0.0, threshold=0.0, num_classes=10)
        target = dm.image_set("target", "train")
        if scramble:
            target.labels = torch.randint(0, 10, target.labels.shape, generator=torch.Generator().manual_seed(1))
        trainer = L.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, limit_val_batches=0)
        trainer.fit(model, datamodule=dm)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(one_step(False), one_step(True))


def test_checkpoint_selection_monitors_source_validation(workdir: Path) -> None:
    cli = build_cli(TINY_FIT, run=False)
    checkpoint = next(cb for cb in cli.trainer.callbacks if isinstance(cb, L.pytorch.callbacks.ModelCheckpoint))
    assert checkpoint.monitor == "val/source_acc"
