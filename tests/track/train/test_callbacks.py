"""End conditions of ¶49: loss threshold and loss-change threshold stop training early."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import lightning.pytorch as pl
import pytest
from torch.utils.data import DataLoader

from adaptrack.track.train.callbacks import LossEndCondition
from adaptrack.track.train.module import PartDetectorModule


def _fit(tmp_path: Path, end: LossEndCondition, loader: DataLoader, tiny: dict) -> pl.Trainer:
    trainer = pl.Trainer(max_epochs=6, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[end], default_root_dir=tmp_path)
    trainer.fit(PartDetectorModule(**tiny, warmup_steps=1), train_dataloaders=loader)
    return trainer


@pytest.mark.parametrize(("kwargs", "reason"), [({"loss_threshold": 1e9}, "loss_threshold"),
                                                ({"delta_threshold": 1e9}, "delta_threshold")])
def test_end_condition_stops_training(tmp_path: Path, loader_factory: Callable[..., DataLoader], tiny: dict,
                                      kwargs: dict, reason: str) -> None:
    end = LossEndCondition(**kwargs)
    trainer = _fit(tmp_path, end, loader_factory(2), tiny)
    assert end.reason is not None and reason in end.reason
    # the loss threshold fires after the first epoch, the change threshold needs two values
    assert trainer.current_epoch == (1 if reason == "loss_threshold" else 2)


def test_no_condition_runs_to_max_epochs(tmp_path: Path, loader_factory: Callable[..., DataLoader],
                                         tiny: dict) -> None:
    end = LossEndCondition(loss_threshold=-1.0, delta_threshold=None)
    trainer = _fit(tmp_path, end, loader_factory(2), tiny)
    assert end.reason is None and trainer.current_epoch == 6
