"""A few-step fit per registered method (each method's own loss terms and no others), resume, NaN guard,
the two-stage update, per-epoch labels and honest evaluation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch

from adaptrack.adapt.cli import build_cli, main
from adaptrack.adapt.config import GateConfig, NetworkConfig, PseudoLabelConfig
from adaptrack.adapt.data.datamodule import DomainAdaptationDataModule, LabeledTargetConfig
from adaptrack.adapt.methods import METHODS
from adaptrack.adapt.module import LOGGED_TERMS, DomainAdaptationModule
from adaptrack.common.files import safe_torch_load
from adaptrack.common.training import NonFiniteLossError
from tests.helpers.poison import PoisonAtStep

from .conftest import TINY_FIT, run_dir

TINY_NET = NetworkConfig(conv_channels=(8, 16), class_hidden=(32,), domain_hidden=(32,))


def logged_terms(out: Path) -> dict[str, list[float]]:
    """Every step's value of each ``train/<term>_loss`` column of a run's metrics.csv."""
    with open(out / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    return {t: [float(r[f"train/{t}_loss"]) for r in rows if r.get(f"train/{t}_loss")] for t in LOGGED_TERMS}


def expected_terms(method: str, labeled: bool) -> set[str]:
    m = METHODS[method]
    terms = {"source"} | ({"minority_shot"} if labeled else set())
    return terms | ({"domain"} if m.domain_adversarial else set()) | ({"self_learning"} if m.self_learns else set())


@pytest.mark.parametrize("labeled", [False, True], ids=["unlabeled-target", "few-labeled-target"])
@pytest.mark.parametrize("method", sorted(METHODS))
def test_fit_smoke_per_method_uses_its_own_terms_only(method: str, labeled: bool, workdir: Path) -> None:
    extra = ["--data.labeled_target.per_class", "2"] if labeled else []
    assert main(["fit", *TINY_FIT, "--model.method", method, *extra]) == 0
    out = run_dir(workdir)
    report = json.loads((out / "report.json").read_text())
    assert report["method"] == method
    assert 0.0 <= report["target acc %"] <= 100.0
    assert report["steps"] == 4
    assert (out / "curves.png").stat().st_size > 1000
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert list((out / "checkpoints").glob("best-*.ckpt"))
    values = logged_terms(out)
    own = expected_terms(method, labeled)
    for term in LOGGED_TERMS:
        assert len(values[term]) == 4, term
        if term in own:
            assert all(v > 0 for v in values[term]), f"{method}: {term} should be on: {values[term]}"
        else:
            assert all(v == 0 for v in values[term]), f"{method}: {term} should be off: {values[term]}"
    if METHODS[method].self_learns:  # threshold 0 and start_ratio 0: self-learning ran
        assert report["pseudo-labeled %"] > 0
    if labeled:
        assert report["training_sets"]["labeled_target"]["drawn"] == [2] * 10


def test_checkpoint_loads_weights_only_and_resume_continues(workdir: Path) -> None:
    assert main(["fit", *TINY_FIT]) == 0
    last = run_dir(workdir) / "checkpoints" / "last.ckpt"
    ckpt = safe_torch_load(last)  # weights_only=True: the groups are plain dicts
    assert ckpt["global_step"] == 4
    assert ckpt["self_learning_gate"]["started"] is True
    assert ckpt["hyper_parameters"]["pseudo"]["threshold"] == 0.0
    assert isinstance(ckpt["datamodule_hyper_parameters"]["labeled_target"], dict)
    assert main(["fit", *TINY_FIT, "--trainer.max_epochs", "2", "--ckpt_path", str(last)]) == 0
    resumed = safe_torch_load(run_dir(workdir) / "checkpoints" / "last.ckpt")
    assert resumed["global_step"] == 8
    assert resumed["epoch"] == 1


def test_nan_loss_stops_and_keeps_last_good_checkpoint(workdir: Path) -> None:
    cli = build_cli([*TINY_FIT, "--trainer.max_epochs", "3"], run=False)
    checkpoint = next(cb for cb in cli.trainer.callbacks if isinstance(cb, L.pytorch.callbacks.ModelCheckpoint))
    cli.trainer.callbacks.append(PoisonAtStep(at_step=5))  # during the second epoch
    with pytest.raises(NonFiniteLossError, match="step 5"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    last = Path(checkpoint.dirpath) / "last.ckpt"
    state = safe_torch_load(last)
    assert state["global_step"] == 4  # written after the first, good epoch
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    assert not list(Path(checkpoint.dirpath).glob("*.tmp"))


def tiny_trainer(steps: int, callbacks: list[L.Callback] | None = None, epochs: int | None = None) -> L.Trainer:
    return L.Trainer(max_steps=steps if epochs is None else -1, max_epochs=epochs, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     limit_val_batches=0, callbacks=callbacks or [])


def tiny_module(**kwargs: object) -> DomainAdaptationModule:
    return DomainAdaptationModule(network=TINY_NET, gate=GateConfig(start_ratio=0.0),
                                  pseudo=kwargs.pop("pseudo", PseudoLabelConfig(threshold=0.0)),  # type: ignore[arg-type]
                                  **kwargs)  # type: ignore[arg-type]


def test_target_labels_never_reach_training() -> None:
    """Scrambling target labels changes neither the losses nor the weights after two steps."""

    def two_steps(scramble: bool) -> torch.Tensor:
        L.seed_everything(0)
        dm = DomainAdaptationDataModule(synthetic_size=128, batch_size=16, steps_per_epoch=2)
        model = tiny_module()
        target = dm.image_set("target", "train")
        if scramble:
            target.labels = torch.randint(0, 10, target.labels.shape, generator=torch.Generator().manual_seed(1))
        tiny_trainer(2).fit(model, datamodule=dm)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(two_steps(False), two_steps(True))


class _StageWatch(L.Callback):
    """Records the domain classifier's weights around each stage-2 update of the two-stage update."""

    def __init__(self) -> None:
        self.pairs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        assert isinstance(pl_module, DomainAdaptationModule)
        original = pl_module._backward

        def watched(terms: dict[str, torch.Tensor], weights: object, freeze_domain: bool) -> torch.Tensor:
            if not freeze_domain:
                return original(terms, weights, freeze_domain)  # type: ignore[arg-type]
            net = pl_module.net
            before = (torch.cat([p.detach().flatten() for p in net.domain_classifier.state_dict().values()]).clone(),
                      torch.cat([p.detach().flatten() for p in net.feature_extractor.parameters()]).clone())
            out = original(terms, weights, freeze_domain)  # type: ignore[arg-type]
            after = (torch.cat([p.detach().flatten() for p in net.domain_classifier.state_dict().values()]),
                     torch.cat([p.detach().flatten() for p in net.feature_extractor.parameters()]))
            self.pairs.append((before[0], after[0], before[1], after[1]))
            return out

        pl_module._backward = watched  # type: ignore[method-assign]


def test_two_stage_update_leaves_the_domain_classifier_alone_in_stage_2() -> None:
    L.seed_everything(0)
    dm = DomainAdaptationDataModule(synthetic_size=128, batch_size=16, steps_per_epoch=3)
    model = tiny_module(update="two_stage")
    watch = _StageWatch()
    trainer = tiny_trainer(3, [watch])
    trainer.fit(model, datamodule=dm)
    assert len(watch.pairs) == 3  # one stage 2 per iteration (gate open from the start)
    assert trainer.global_step == 3  # an iteration counts as one step
    for d_before, d_after, f_before, f_after in watch.pairs:
        assert torch.equal(d_before, d_after)  # weights and batch-norm statistics bit-identical
        assert not torch.equal(f_before, f_after)  # the feature extractor did learn


class _EpochLabels(L.Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: object, batch: object,
                           batch_idx: int) -> None:
        assert isinstance(pl_module, DomainAdaptationModule) and pl_module.epoch_logits is not None
        self.seen.append((trainer.current_epoch, pl_module.epoch_logits.data_ptr()))


def test_per_epoch_labels_are_computed_once_and_reused_within_the_epoch() -> None:
    L.seed_everything(0)
    dm = DomainAdaptationDataModule(synthetic_size=128, batch_size=16, steps_per_epoch=3)
    model = tiny_module(pseudo=PseudoLabelConfig(threshold=0.0, scope="epoch"))
    calls: list[int] = []
    original = model._eval_logits

    def counting(images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        calls.append(images.shape[0])
        return original(images, batch_size)

    model._eval_logits = counting  # type: ignore[method-assign]
    record = _EpochLabels()
    tiny_trainer(0, [record], epochs=2).fit(model, datamodule=dm)
    pool = len(dm.unlabeled_target())
    assert calls == [pool, pool]  # one pass over the pool per epoch, none per mini-batch
    by_epoch = {epoch: {ptr for e, ptr in record.seen if e == epoch} for epoch in (0, 1)}
    assert len(by_epoch[0]) == len(by_epoch[1]) == 1  # the same labels for every mini-batch of the epoch
    assert by_epoch[0] != by_epoch[1]


def test_eval_teacher_is_a_separate_pass_without_dropout() -> None:
    L.seed_everything(0)
    dm = DomainAdaptationDataModule(synthetic_size=64, batch_size=16, steps_per_epoch=2)
    model = tiny_module(pseudo=PseudoLabelConfig(threshold=0.0, teacher="eval"))
    modes: list[bool] = []
    original = model._eval_logits

    def spy(images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
        out = original(images, batch_size)
        modes.append(model.net.training)
        return out

    model._eval_logits = spy  # type: ignore[method-assign]
    tiny_trainer(2).fit(model, datamodule=dm)
    assert len(modes) == 2 and all(modes)  # one teacher pass per step, train mode restored after it


def test_labeled_target_images_leave_the_unlabeled_pool() -> None:
    dm = DomainAdaptationDataModule(synthetic_size=64, labeled_target=LabeledTargetConfig(per_class=3, seed=4))
    dm.setup("fit")
    train = dm.image_set("target", "train")
    labeled = dm.training_sets()["labeled_target"]
    assert len(dm.unlabeled_target()) == len(train) - 30
    assert torch.bincount(labeled.labels, minlength=10).tolist() == [3] * 10
    pool = {bytes(x.numpy()) for x in dm.unlabeled_target().images}
    assert not any(bytes(x.numpy()) in pool for x in labeled.images)  # no drawn image stays in the pool
    again = DomainAdaptationDataModule(synthetic_size=64, labeled_target=LabeledTargetConfig(per_class=3, seed=4))
    again.setup("fit")
    assert torch.equal(again.training_sets()["labeled_target"].images, labeled.images)  # the same draw by seed


def test_checkpoint_selection_monitors_source_validation(workdir: Path) -> None:
    cli = build_cli(TINY_FIT, run=False)
    checkpoint = next(cb for cb in cli.trainer.callbacks if isinstance(cb, L.pytorch.callbacks.ModelCheckpoint))
    assert checkpoint.monitor == "val/source_acc"
