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
    assert config["model"]["pseudo"]["threshold"] == 0.95
    assert config["model"]["update"] == "joint" and config["model"]["gate"]["start_ratio"] == 0.3
    assert config["data"]["labeled_target"]["per_class"] is None
    assert config["data"]["source"] == "synthetic_digits" and config["data"]["target"] == "sklearn_digits"
    assert config["checkpoint"]["monitor"] == "val/source_acc"


def test_adapt_rejects_unknown_method() -> None:
    result = subprocess.run([sys.executable, "-m", "adaptrack.cli", "adapt", "fit", "--model.method", "magic"],
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "magic" in result.stderr


ADAPT = Path(__file__).resolve().parents[1] / "configs" / "adapt"
CONFIGS = sorted(ADAPT.glob("*.yaml"))
RECIPES = sorted((ADAPT / "recipes").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_shipped_adapt_configs_parse(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from adaptrack.adapt.cli import main as adapt_main
    from adaptrack.adapt.methods import METHODS

    assert adapt_main(["fit", "--config", str(config), "--print_config"]) == 0
    parsed = yaml.safe_load(capsys.readouterr().out)
    assert parsed["model"]["method"] in METHODS
    assert parsed["data"]["source"] and parsed["data"]["target"]


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipes_layer_over_a_task_config(recipe: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each recipe only sets its embodiment's keys: layered over a task, the task's data stay."""
    from adaptrack.adapt.cli import main as adapt_main

    assert adapt_main(["fit", "--config", str(ADAPT / "usps_mnist.yaml"), "--config", str(recipe),
                       "--print_config"]) == 0
    parsed = yaml.safe_load(capsys.readouterr().out)
    assert parsed["data"]["source"] == "usps" and parsed["data"]["target"] == "mnist"
    assert yaml.safe_load(recipe.read_text()).keys() <= {"model", "data"}


def test_all_task_configs_are_shipped() -> None:
    assert {p.stem for p in CONFIGS} >= {"default", "mnist_usps", "usps_mnist", "svhn_mnist", "mnist_mnistm",
                                         "mnist_usps_1shot", "usps_mnist_1shot"}
