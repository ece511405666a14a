"""Each fit command, killed with SIGKILL inside its second epoch and resumed from ``last.ckpt``,
ends with the same weights and metrics as an uninterrupted run (``--deterministic true``, CPU)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from adaptrack.adapt.cli import main as adapt_main
from adaptrack.track.cli import main as track_main
from adaptrack.track.data.synth import generate_dataset

ROOT = Path(__file__).resolve().parents[1]
KILL_STEP = 5
"""Global step after which the process is killed: inside the second of three 3-step epochs."""

COMMON = ["--trainer.max_epochs", "3", "--trainer.enable_progress_bar", "false",
          "--trainer.enable_model_summary", "false", "--trainer.log_every_n_steps", "1",
          "--checkpoint.last_every_n_steps", "1", "--seed_everything", "7", "--deterministic", "true"]

ADAPT = ["--data.source", "synthetic_digits", "--data.target", "sklearn_digits", "--data.synthetic_size", "256",
         "--data.batch_size", "16", "--data.steps_per_epoch", "3", "--data.eval_batch_size", "256",
         "--model.network.conv_channels", "[8, 16]", "--model.network.class_hidden", "[32]",
         "--model.network.domain_hidden", "[32]", "--model.gate.start_ratio", "0.3",
         "--model.pseudo.threshold", "0.11", "--model.pseudo.scope", "epoch", "--data.labeled_target.per_class", "1"]

TRACK = ["--model.channels", "[8, 8, 8, 8]", "--model.crop_size", "40", "--data.image_size", "64",
         "--data.batch_size", "2", "--data.samples_per_epoch", "6", "--data.val_samples", "2",
         "--data.max_stride", "1", "--trainer.check_val_every_n_epoch", "1"]


@pytest.fixture(scope="module")
def track_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("resume") / "data"
    generate_dataset(data, n_sequences=2, n_frames=8, preset="crowded", seed=0, width=64, height=64, split="train")
    generate_dataset(data, n_sequences=1, n_frames=8, preset="crowded", seed=1, width=64, height=64, split="val")
    return data


def _args(system: str, command: str, data: Path, part_checkpoint: Path | None) -> list[str]:
    if system == "adapt":
        return [command, *ADAPT, *COMMON]
    args = [command, *TRACK, *COMMON, "--data.train_dir", str(data), "--data.val_dir", str(data)]
    if command == "fit-parts":
        return [*args, "--data.clip_len", "1"]
    assert part_checkpoint is not None
    # the in-order pass with the region-map store: the store must survive the kill too
    return [*args, "--data.clip_len", "3", "--model.part_checkpoint", str(part_checkpoint), "--model.temporal_n", "2",
            "--data.clip_order", "sequential"]


def _main(system: str, args: list[str]) -> int:
    return adapt_main(args) if system == "adapt" else track_main(args)


def _kill_during(system: str, args: list[str], cwd: Path) -> None:
    """Run the command in a subprocess that SIGKILLs itself after :data:`KILL_STEP`."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    code = f"import sys; from adaptrack.{system}.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, *args, "--trainer.callbacks+=tests.helpers.kill.KillAtStep",
                           "--trainer.callbacks.step", str(KILL_STEP)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]


def _epoch_values(root: Path, key: str) -> dict[str, str]:
    """``{epoch: value}`` of ``key`` in the run's CSV log (a resumed run appends; the last row of an epoch wins)."""
    with (root / "logs" / "version_0" / "metrics.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r.get(key)]
    values = {r["epoch"]: r[key] for r in rows}
    assert "1" in values and float(values["1"]) > 0, values  # the epoch of the kill, with known pseudo labels
    return values


def _last(root: Path) -> dict:
    return torch.load(root / "logs" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.mark.parametrize(("system", "command"), [("adapt", "fit"), ("track", "fit-parts"), ("track", "fit")])
def test_sigkill_then_resume_from_last_ends_with_the_weights_of_an_uninterrupted_run(
        system: str, command: str, track_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    parts = None
    if command == "fit":  # the tracker needs a part detector
        assert track_main(["fit-parts", *TRACK, "--data.train_dir", str(track_data), "--data.clip_len", "1",
                           "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
                           "--trainer.default_root_dir", "parts"]) == 0
        parts = tmp_path / "parts" / "logs" / "version_0" / "checkpoints" / "last.ckpt"
    args = _args(system, command, track_data, parts)
    assert _main(system, [*args, "--trainer.default_root_dir", "full"]) == 0
    _kill_during(system, [*args, "--trainer.default_root_dir", "killed"], tmp_path)
    killed_at = _last(tmp_path / "killed")
    assert 0 < killed_at["global_step"] <= KILL_STEP  # the kill came mid-run, after some last.ckpt saves
    assert _main(system, [*args, "--trainer.default_root_dir", "killed", "--ckpt_path",
                          str(tmp_path / "killed" / "logs" / "version_0" / "checkpoints" / "last.ckpt")]) == 0
    full, resumed = _last(tmp_path / "full"), _last(tmp_path / "killed")
    assert full["global_step"] == resumed["global_step"] == 9
    assert full["state_dict"].keys() == resumed["state_dict"].keys()
    for key, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    best = [cb for name, cb in full["callbacks"].items() if "Checkpoint" in name]
    best_resumed = [cb for name, cb in resumed["callbacks"].items() if "Checkpoint" in name]
    assert [cb["best_model_score"] for cb in best] == [cb["best_model_score"] for cb in best_resumed]
    if system == "adapt":  # the final metrics, as the report gives them
        report = json.loads((tmp_path / "full" / "logs" / "version_0" / "report.json").read_text())
        report_resumed = json.loads((tmp_path / "killed" / "logs" / "version_0" / "report.json").read_text())
        accuracies = [k for k in report if "acc" in k]
        assert accuracies and {k: report[k] for k in accuracies} == {k: report_resumed[k] for k in accuracies}
        # the epoch the kill fell in logs its whole-epoch means (the running means are in the checkpoint)
        key = "pseudo/accuracy"
        assert _epoch_values(tmp_path / "full", key) == _epoch_values(tmp_path / "killed", key)
        # the validators' history (the ranking against the oracle) survives the kill too
        assert report["validation_history"] == report_resumed["validation_history"]
        assert len(report["validation_history"]) == 3 and report["selection"] == report_resumed["selection"]
    if system == "track" and command == "fit":
        store, store_resumed = full["region_map_store"], resumed["region_map_store"]
        assert store["keys"] == store_resumed["keys"] and store["last"] == store_resumed["last"]
        assert store["keys"], "the in-order pass stored no region maps: the test would not cover the store"


@pytest.fixture(autouse=True)
def _nondeterministic_afterwards() -> None:
    """``--deterministic true`` switches torch's deterministic algorithms on for the whole process."""
    yield
    torch.use_deterministic_algorithms(False)


def test_deterministic_flag_seeds_everything_and_repeats_a_run_bit_for_bit(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)  # set by the runs of earlier tests in this process
    args = ["fit", *ADAPT, *COMMON[:-4], "--trainer.max_epochs", "1", "--seed_everything", "true", "--deterministic",
            "true"]
    for root in ("a", "b"):
        assert adapt_main([*args, "--trainer.default_root_dir", root]) == 0
    assert torch.are_deterministic_algorithms_enabled()
    a, b = _last(tmp_path / "a"), _last(tmp_path / "b")
    assert all(torch.equal(v, b["state_dict"][k]) for k, v in a["state_dict"].items())
    config = (tmp_path / "a" / "logs" / "version_0" / "config.yaml").read_text()
    assert "seed_everything: 0" in config and "deterministic: true" in config
