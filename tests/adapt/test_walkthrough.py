"""The README's adapt walkthrough with tiny sizes: every recipe, the shipped 1-shot configs, the benchmarks."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from adaptrack.adapt.cli import main
from adaptrack.common.paths import shared_data_dir

from .conftest import TINY_FIT, run_dir

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "configs" / "adapt" / "recipes").glob("*.yaml"))
SHARED = shared_data_dir()
needs_shared = pytest.mark.skipif(SHARED is None, reason="../shared/data (MNIST, USPS) is absent")
QUICK = ["--trainer.num_sanity_val_steps", "0", "--report.html", "false"]
"""Less work per run, same commands: no sanity validation, no HTML report (its PNGs took most of a
tiny run's time; ``report.html`` is tested in ``test_selection_report.py`` and by the first recipe)."""
TINY_REAL = ["--data.batch_size", "16", "--data.steps_per_epoch", "3", "--data.eval_batch_size", "2048",
             "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
             "--trainer.enable_model_summary", "false", "--model.network.conv_channels", "[8, 16]",
             "--model.network.class_hidden", "[32]", "--model.network.domain_hidden", "[32]",
             "--trainer.limit_val_batches", "1", *QUICK]
"""MNIST/USPS runs at a tiny size: 3 steps, and validation on one batch of each set (the validators'
numbers are not checked here; the whole 60,000-image pool made validation the slowest part)."""


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_every_recipe_trains_over_the_embedded_default(recipe: Path, workdir: Path) -> None:
    config = ROOT / "configs" / "adapt" / "default.yaml"
    recipe_config = yaml.safe_load(recipe.read_text())
    dual = recipe_config.get("model", {}).get("pseudo", {}).get("masking") == "dual"
    threshold = ["--model.pseudo.threshold", "0.6"] if dual else []  # TINY_FIT's 0 is below the recipe's t2
    quick = [] if recipe.stem == "e1_self_learning" else QUICK  # one recipe writes the whole report
    assert main(["fit", "--config", str(config), *TINY_FIT, "--config", str(recipe), *threshold, *quick]) == 0
    report = json.loads((run_dir(workdir) / "report.json").read_text())
    assert (run_dir(workdir) / "report.html").is_file() == (not quick)
    assert report["steps"] == 4
    sets = report["training_sets"]
    data = recipe_config.get("data", {})
    if (data.get("labeled_target") or {}).get("per_class"):
        assert sets["labeled_target"]["drawn"] == [1] * 10
    if (data.get("oversample") or {}).get("labeled_target"):
        assert sum(sets["labeled_target"]["after_padder"]) == sum(sets["source"]["after_doa"])
    if data.get("image_filter"):
        assert "removed_by_filter" in sets["target"]


@needs_shared
@pytest.mark.parametrize("task", ["mnist_usps_1shot", "usps_mnist_1shot"])
def test_shipped_one_shot_configs_run(task: str, workdir: Path) -> None:
    config = ROOT / "configs" / "adapt" / f"{task}.yaml"
    assert main(["fit", "--config", str(config), "--data.data_root", str(SHARED), *TINY_REAL]) == 0
    report = json.loads((run_dir(workdir) / "report.json").read_text())
    assert report["training_sets"]["labeled_target"]["drawn"] == [1] * 10
    loaded = report["training_sets"]["target"]["loaded"]
    assert loaded == (7291 if task.startswith("mnist_usps") else 60000) - 10  # the drawn images left the pool


@needs_shared
def test_ablation_benchmark_runs_in_parts(tmp_path: Path) -> None:
    out = tmp_path / "ablation"
    base = [sys.executable, str(ROOT / "benchmarks" / "adapt_ablation.py"), "--out", str(out), "--tasks",
            "mnist_usps", "--seeds", "0", "--jobs", "2"]
    first = subprocess.run([*base, "--rows", "source_only", "k1", "--", *TINY_REAL], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["row"] for r in rows) == ["k1", "source_only"]
    again = subprocess.run([*base, "--rows", "source_only", "--", *TINY_REAL], capture_output=True, text=True)
    assert again.returncode == 0 and "0 runs to do" in again.stdout  # finished runs are skipped
    assert "source only" in (out / "ablation.md").read_text()
    assert (out / "ablation.png").stat().st_size > 1000


def test_step_profile_benchmark_prints_a_table() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "adapt_step_profile.py"), "--task", "default",
                             "--steps", "2"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "adaptrack self_learning" in result.stdout and "plain LeNet" in result.stdout
