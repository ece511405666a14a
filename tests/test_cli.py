"""The ``adaptrack`` console script's dispatch and LightningCLI conventions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adaptrack.cli import main


def test_usage_and_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "adapt" in capsys.readouterr().out
    assert main(["bogus"]) == 2
    assert "unknown command 'bogus'" in capsys.readouterr().err


def test_adapt_print_config_lists_every_option() -> None:
    out = subprocess.run([sys.executable, "-m", "adaptrack.cli", "adapt", "fit", "--print_config"],
                         capture_output=True, text=True, check=True).stdout
    config = yaml.safe_load(out)
    assert config["model"]["method"] == "self_learning"
    assert config["model"]["threshold"] == 0.95
    assert config["data"]["source"] == "synthetic_digits" and config["data"]["target"] == "sklearn_digits"
    assert config["checkpoint"]["monitor"] == "val/source_acc"


def test_adapt_rejects_unknown_method() -> None:
    result = subprocess.run([sys.executable, "-m", "adaptrack.cli", "adapt", "fit", "--model.method", "magic"],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "magic" in result.stderr


CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs" / "adapt").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_shipped_adapt_configs_parse(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from adaptrack.adapt.cli import main as adapt_main

    assert adapt_main(["fit", "--config", str(config), "--print_config"]) == 0
    parsed = yaml.safe_load(capsys.readouterr().out)
    assert parsed["model"]["method"] in ("source_only", "dann", "self_learning")
    assert parsed["data"]["source"] and parsed["data"]["target"]


def test_all_task_configs_are_shipped() -> None:
    assert {p.stem for p in CONFIGS} >= {"default", "mnist_usps", "usps_mnist", "svhn_mnist", "mnist_mnistm"}
