"""``BestAndLastCheckpoint``: ``last.ckpt`` follows every epoch, the best checkpoint stays the best."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from adaptrack.common.files import safe_torch_load
from adaptrack.common.training import BestAndLastCheckpoint, NonFiniteLossError, check_finite, check_finite_gradients


class WorseningModule(pl.LightningModule):
    """A linear fit whose monitored validation metric gets worse every epoch (best = epoch 0)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.mse_loss(self.layer(x), y)

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        self.log("val/metric", float(self.current_epoch))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(8, 2), torch.randn(8, 1)), batch_size=4)


def _fit(dirpath: Path, max_epochs: int, val_every: int, ckpt_path: Path | None = None) -> BestAndLastCheckpoint:
    callback = BestAndLastCheckpoint(dirpath=dirpath, filename="best", monitor="val/metric", mode="min",
                                     save_last=True, save_top_k=1)
    trainer = pl.Trainer(max_epochs=max_epochs, check_val_every_n_epoch=val_every, callbacks=[callback],
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, default_root_dir=dirpath)
    trainer.fit(WorseningModule(), _loader(), _loader(), ckpt_path=ckpt_path)
    return callback


@pytest.mark.parametrize("val_every", [1, 2])
def test_last_follows_every_epoch_while_best_stays(tmp_path: Path, val_every: int) -> None:
    callback = _fit(tmp_path, max_epochs=3, val_every=val_every)
    last, best = safe_torch_load(tmp_path / "last.ckpt"), safe_torch_load(tmp_path / "best.ckpt")
    assert (last["epoch"], last["global_step"]) == (2, 6)  # 3 epochs x 2 batches
    assert (best["epoch"], best["global_step"]) == (val_every - 1, 2 * val_every)  # the first validation
    assert Path(callback.best_model_path) == tmp_path / "best.ckpt"
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == ["best.ckpt", "last.ckpt"]


def test_resume_from_last_continues_after_the_last_epoch(tmp_path: Path) -> None:
    _fit(tmp_path, max_epochs=3, val_every=1)
    callback = _fit(tmp_path, max_epochs=4, val_every=1, ckpt_path=tmp_path / "last.ckpt")
    last = safe_torch_load(tmp_path / "last.ckpt")
    assert (last["epoch"], last["global_step"]) == (3, 8)  # one more epoch, not a restart from the best
    assert float(callback.best_model_score) == 0.0  # the best from before the resume is remembered


def test_infinite_gradients_stop_training_naming_the_parameters() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    net[1].weight.register_hook(lambda grad: grad * float("inf"))  # an overflow in backward
    net(torch.ones(3, 2)).sum().backward()
    with pytest.raises(NonFiniteLossError, match=r"step 7 \(in 1\.weight\)"):
        check_finite_gradients(net.named_parameters(), 7)
    net.zero_grad()
    net[0](torch.ones(1, 2)).sum().backward()  # finite, and the second layer has no gradient
    check_finite_gradients(net.named_parameters(), 8)


def test_a_non_finite_loss_names_the_term_that_diverged() -> None:
    terms = {"source": torch.tensor(0.5), "domain": torch.tensor(float("nan"))}
    with pytest.raises(NonFiniteLossError, match=r"at step 3 in term\(s\) domain \(source=0\.5, domain=nan\)"):
        check_finite(terms["source"] + terms["domain"], 3, terms)


def test_finite_gradients_whose_norm_overflows_pass_the_fused_check() -> None:
    net = torch.nn.Linear(4, 2)
    for p in net.parameters():
        p.grad = torch.full_like(p, 3e38)  # finite entries; their float32 2-norm is inf
    assert not bool(torch.isfinite(torch.linalg.vector_norm(net.weight.grad)))
    check_finite_gradients(net.named_parameters(), 3)  # entry by entry: all finite, no error
    net.bias.grad[0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="bias"):
        check_finite_gradients(net.named_parameters(), 4)
