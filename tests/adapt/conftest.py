"""Small, fast data for adapt tests: a few hundred synthetic digits -> scikit-learn digits."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY_FIT = [
    "--data.source", "synthetic_digits", "--data.target", "sklearn_digits",
    "--data.synthetic_size", "256", "--data.batch_size", "16", "--data.steps_per_epoch", "4",
    "--data.eval_batch_size", "256",
    "--model.network.conv_channels", "[8, 16]", "--model.network.class_hidden", "[32]",
    "--model.network.domain_hidden", "[32]", "--model.gate.start_ratio", "0.0", "--model.pseudo.threshold", "0.0",
    "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false", "--trainer.log_every_n_steps", "1",
]


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a temporary directory: runs/adapt/... (logs, checkpoints) land there."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_dir(root: Path) -> Path:
    """The newest ``runs/adapt/logs/version_*`` folder under ``root``."""
    versions = sorted((root / "runs" / "adapt" / "logs").glob("version_*"), key=lambda p: p.stat().st_mtime)
    assert versions, f"no run folder under {root}"
    return versions[-1]
