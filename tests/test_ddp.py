"""Both systems train on 2 CPU processes (``--trainer.strategy ddp``, gloo) with the real CLI.

One launch of ``tests/helpers/ddp_runs.py`` under Lightning's DDP launcher runs five fits one
after the other on the same two processes: adapt ``self_learning`` (joint update, per-epoch pseudo
labels, a labeled target image per class), adapt ``self_learning`` with ``update: two_stage``
(stage 2 leaves the domain classifier without a gradient), adapt ``source_only`` (the domain
classifier is never used), track ``fit-parts`` and track ``fit`` (the in-order pass with the
region-map store). :class:`tests.helpers.ddp_record.RecordRanks` writes what every rank read and
decided at every step; the tests compare the ranks with each other and with one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from adaptrack.adapt.cli import build_cli as adapt_cli
from adaptrack.common.resume import ResumableSampler
from adaptrack.track.cli import build_cli as track_cli
from adaptrack.track.data.synth import generate_dataset
from adaptrack.track.train.datamodule import TrackDataModule
from adaptrack.track.train.module import PartDetectorModule, TrackerModule

ROOT = Path(__file__).resolve().parents[1]
DDP = ["--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.devices", "2"]
COMMON = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
          "--trainer.log_every_n_steps", "1", "--seed_everything", "7"]
ADAPT_DATA = ["--data.source", "synthetic_digits", "--data.target", "sklearn_digits", "--data.synthetic_size", "256",
              "--data.batch_size", "16", "--data.steps_per_epoch", "3", "--data.eval_batch_size", "256"]
ADAPT = [*ADAPT_DATA, "--model.network.conv_channels", "[8, 16]", "--model.network.class_hidden", "[32]",
         "--model.network.domain_hidden", "[32]", "--model.pseudo.threshold", "0.3", "--trainer.max_epochs", "2",
         # S4 opens at once; S11 suspends self-learning on steps whose (rank-averaged) source loss is
         # >= 2.4, about the loss of the first steps: the decisions change during the run
         "--model.gate.start_ratio", "0", "--model.gate.stop_loss", "2.4"]
ADAPT_RUNS = {
    "joint": ["--model.method", "self_learning", "--model.pseudo.scope", "epoch",
              "--data.labeled_target.per_class", "1"],
    "two_stage": ["--model.method", "self_learning", "--model.update", "two_stage"],
    "source_only": ["--model.method", "source_only"],
}
TRACK = ["--model.channels", "[8, 8, 8, 8]", "--model.crop_size", "40", "--data.image_size", "64",
         "--data.batch_size", "2", "--data.samples_per_epoch", "8", "--data.val_samples", "4",
         "--data.max_stride", "1", "--trainer.max_epochs", "2"]
TRACK_FIT = ["--data.clip_len", "3", "--model.temporal_n", "2", "--data.clip_order", "sequential"]


def _record(name: str, tmp: Path) -> list[str]:
    return ["--trainer.callbacks+=tests.helpers.ddp_record.RecordRanks", "--trainer.callbacks.out",
            str(tmp / "records" / name)]


def _parts_ckpt(tmp: Path) -> Path:
    return tmp / "parts" / "logs" / "version_0" / "checkpoints" / "last.ckpt"


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The five fits on 2 processes; returns their folder (``<name>/`` runs, ``records/<name>/``)."""
    tmp = tmp_path_factory.mktemp("ddp")
    data = tmp / "data"
    generate_dataset(data, n_sequences=2, n_frames=8, preset="crowded", seed=0, width=64, height=64, split="train")
    generate_dataset(data, n_sequences=1, n_frames=8, preset="crowded", seed=1, width=64, height=64, split="val")
    track_data = ["--data.train_dir", str(data), "--data.val_dir", str(data)]
    runs = [["adapt", "fit", *ADAPT, *extra, *COMMON, *DDP, "--trainer.default_root_dir", str(tmp / name),
             *_record(name, tmp)] for name, extra in ADAPT_RUNS.items()]
    runs.append(["track", "fit-parts", *TRACK, *track_data, "--data.clip_len", "1", *COMMON, *DDP,
                 "--trainer.default_root_dir", str(tmp / "parts"), *_record("parts", tmp)])
    runs.append(["track", "fit", *TRACK, *track_data, *TRACK_FIT, "--model.part_checkpoint", str(_parts_ckpt(tmp)),
                 *COMMON, *DDP, "--trainer.default_root_dir", str(tmp / "tracker"), *_record("tracker", tmp)])
    (tmp / "runs.json").write_text(json.dumps(runs))
    path = os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "helpers" / "ddp_runs.py"), str(tmp / "runs.json")],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return tmp


def _records(tmp: Path, name: str) -> tuple[list[dict], list[dict]]:
    ranks = []
    for rank in (0, 1):
        lines = (tmp / "records" / name / f"rank{rank}.jsonl").read_text().splitlines()
        ranks.append([json.loads(line) for line in lines])
    return ranks[0], ranks[1]


def _train(records: list[dict]) -> list[dict]:
    return [r for r in records if r["kind"] == "train"]


@pytest.mark.parametrize("name", [*ADAPT_RUNS, "parts", "tracker"])
def test_ranks_step_together_with_the_same_reduced_gradients_and_end_with_the_same_weights(
        ddp_run: Path, name: str) -> None:
    zero, one = (_train(r) for r in _records(ddp_run, name))
    assert [r["step"] for r in zero] == [r["step"] for r in one] == list(range(1, len(zero) + 1))
    assert len(zero) == 4 if name in ("parts", "tracker") else 6  # 2 epochs of 2 (track) or 3 (adapt) steps
    for a, b in zip(zero, one, strict=True):
        assert a["grads"] == b["grads"] > 0
        assert a["grad_sum"] == b["grad_sum"] and a["grad_abs"] == b["grad_abs"]  # DDP averaged them
        assert a["items"] != b["items"]  # but each rank read its own data
    final = [torch.load(ddp_run / "records" / name / f"rank{r}_final.pt", weights_only=True) for r in (0, 1)]
    # parameters: the same reduced step on every rank; buffers (batch-norm statistics): each forward
    # of the wrapped module starts from rank 0's (adapt: DomainAdaptationModule.on_train_batch_end),
    # and the last validation forward made them equal again
    for group in ("parameters", "buffers"):
        assert final[0][group].keys() == final[1][group].keys() and final[0][group], group
        for key, value in final[0][group].items():
            assert torch.equal(value, final[1][group][key]), key
    assert (ddp_run / name / "logs" / "version_0" / "checkpoints" / "last.ckpt").is_file()
    assert not (ddp_run / name / "logs" / "version_1").exists()  # one writer: no second run folder


def test_source_only_and_two_stage_leave_the_domain_classifier_out_of_the_reduction(ddp_run: Path) -> None:
    joint = {r["grads"] for r in _train(_records(ddp_run, "joint")[0])}
    source_only = {r["grads"] for r in _train(_records(ddp_run, "source_only")[0])}
    two_stage = _train(_records(ddp_run, "two_stage")[0])
    assert len(joint) == len(source_only) == 1 and max(source_only) < max(joint)  # the domain head: frozen
    # after a two-stage step the gradients are the second stage's when it ran (domain head left out)
    assert {r["grads"] for r in two_stage if r["self_learning_on"]} == source_only
    assert {r["grads"] for r in two_stage if not r["self_learning_on"]} == joint
    config = (ddp_run / "two_stage" / "logs" / "version_0" / "config.yaml").read_text()
    assert "strategy: ddp_find_unused_parameters_true" in config  # what `--trainer.strategy ddp` became
    assert "strategy: ddp\n" in (ddp_run / "source_only" / "logs" / "version_0" / "config.yaml").read_text()


@pytest.mark.parametrize("name", list(ADAPT_RUNS))
def test_adapt_ranks_partition_each_epoch_of_source_and_target(ddp_run: Path, name: str) -> None:
    zero, one = (_train(r) for r in _records(ddp_run, name))
    for epoch in (0, 1):
        for which in (0, 1):  # source indices, target pool indices
            mine = [i for r in zero if r["epoch"] == epoch for i in r["items"][which]]
            theirs = [i for r in one if r["epoch"] == epoch for i in r["items"][which]]
            assert len(mine) == len(theirs) == 3 * 16
            assert len(set(mine + theirs)) == 2 * 3 * 16  # disjoint, no image twice in an epoch


@pytest.mark.parametrize("name", ["joint", "two_stage"])
def test_every_rank_takes_the_same_self_learning_decisions(ddp_run: Path, name: str) -> None:
    zero, one = (_train(r) for r in _records(ddp_run, name))
    assert [r["gate"] for r in zero] == [r["gate"] for r in one]
    decisions = [r["self_learning_on"] for r in zero]
    assert decisions == [r["self_learning_on"] for r in one]
    assert zero[0]["gate"]["started"]
    if name == "joint":  # the per-epoch teacher logits: computed from the whole pool, the same on each rank
        assert [r["epoch_logits"] for r in zero] == [r["epoch_logits"] for r in one]
        assert zero[0]["epoch_logits"] is not None


def test_both_gate_decisions_occur(ddp_run: Path) -> None:
    decisions = {r["self_learning_on"] for name in ("joint", "two_stage")
                 for r in _train(_records(ddp_run, name)[0])}
    assert decisions == {0.0, 1.0}  # the gate switched: the equality above compared real decisions


def _val(records: list[dict]) -> dict[str, float]:
    return [r for r in records if r["kind"] == "val"][-1]["metrics"]


@pytest.mark.parametrize("name", list(ADAPT_RUNS))
def test_adapt_validation_on_two_processes_equals_one_process(ddp_run: Path, name: str, tmp_path: Path) -> None:
    zero, one = (_val(r) for r in _records(ddp_run, name))
    assert zero == one  # synced: every rank logs the value over both shards
    ckpt = ddp_run / name / "logs" / "version_0" / "checkpoints" / "last.ckpt"
    pool = ["--data.labeled_target.per_class", "1"] if name == "joint" else []  # the run's unlabeled pool
    cli = adapt_cli(["validate", *ADAPT_DATA, *pool, "--ckpt_path", str(ckpt), "--trainer.default_root_dir",
                     str(tmp_path), "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"])
    single = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    for key in ("val/source_acc", "report/target_acc"):
        assert zero[key] == pytest.approx(single[key], abs=1e-6), key
    assert zero["val/target_confidence"] == pytest.approx(single["val/target_confidence"], rel=1e-5)
    # the label-free validators: every rank computes them on the outputs gathered over both ranks
    for key in ("val/entropy", "val/snd", "val/dev"):
        if key in single:
            assert zero[key] == pytest.approx(single[key], rel=1e-5), key
    assert "val/snd" in zero and ("val/dev" in zero) == (name != "source_only")


def test_track_validation_on_two_processes_equals_one_process(ddp_run: Path, tmp_path: Path) -> None:
    zero, one = (_val(r) for r in _records(ddp_run, "parts"))
    assert zero == one
    data = str(ddp_run / "data")
    cli = track_cli(PartDetectorModule, "parts", [
        "validate", *TRACK, "--data.train_dir", data, "--data.val_dir", data, "--data.clip_len", "1",
        "--ckpt_path", str(_parts_ckpt(ddp_run)), "--trainer.default_root_dir", str(tmp_path),
        "--trainer.enable_progress_bar", "false", "--trainer.logger", "false"])
    single = {k: float(v) for k, v in cli.trainer.callback_metrics.items()}
    for key in ("val/loss", "val/heat", "val/size", "val/offset"):
        assert zero[key] == pytest.approx(single[key], rel=1e-5), key
    tracker = _val(_records(ddp_run, "tracker")[0])
    assert tracker == _val(_records(ddp_run, "tracker")[1]) and "val/part_hit" in tracker


def _clip_ids(dm: TrackDataModule, epoch: int, rank: int) -> list[list]:
    """The ``[sequence, track, first frame]`` of the clips rank ``rank`` of 2 reads in ``epoch``."""
    sampler = ResumableSampler(dm.train_set, dm.hparams.batch_size, lambda: (epoch, 0), rank, 2)
    clips = [dm.train_set[item] for item in sampler]
    return [[c.sequence, int(c.track_id), int(c.frame_indices[0])] for c in clips]


@pytest.mark.parametrize(("name", "extra"), [("parts", ["--data.clip_len", "1"]), ("tracker", TRACK_FIT)])
def test_track_ranks_read_their_own_share_of_each_epoch(ddp_run: Path, name: str, extra: list[str]) -> None:
    options = dict(zip(TRACK[::2], TRACK[1::2], strict=True)) | dict(zip(extra[::2], extra[1::2], strict=True))
    data_options = {k.removeprefix("--data."): v for k, v in options.items() if k.startswith("--data.")}
    types = {"image_size": int, "batch_size": int, "samples_per_epoch": int, "val_samples": int, "max_stride": int,
             "clip_len": int, "clip_order": str}
    dm = TrackDataModule(train_dir=str(ddp_run / "data"), **{k: types[k](v) for k, v in data_options.items()})
    dm.trainer = SimpleNamespace(global_rank=0, world_size=2)  # type: ignore[assignment]  # sizes the streams
    dm.setup("fit")
    records = _records(ddp_run, name)
    for rank, mine in enumerate(records):
        for epoch in (0, 1):
            read = [item for r in _train(mine) if r["epoch"] == epoch for item in r["items"]]
            assert read == _clip_ids(dm, epoch, rank)
    assert [r["items"] for r in _train(records[0])] != [r["items"] for r in _train(records[1])]


def test_example_ddp_configs_parse(capsys: pytest.CaptureFixture[str]) -> None:
    runs = ((lambda args: adapt_cli(["fit", *args]), ["configs/adapt/ddp.yaml"]),
            (lambda args: track_cli(TrackerModule, "tracker", ["fit", *args]),
             ["configs/track/tracker.yaml", "configs/track/tracker_ddp.yaml"]))
    for build, configs in runs:
        with pytest.raises(SystemExit) as stop:
            build([*(x for c in configs for x in ("--config", str(ROOT / c))), "--print_config"])
        assert stop.value.code in (0, None)
        printed = capsys.readouterr().out
        assert "strategy: ddp" in printed and "devices: 2" in printed, configs
