"""Ranking the validators against the oracle (a made-up metrics table), and the end-of-fit report.html."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from adaptrack.adapt.cli import main
from adaptrack.adapt.report_html import SECTIONS
from adaptrack.adapt.selection import rank_validators, select_epoch
from adaptrack.adapt.validators import VALIDATORS
from tests.adapt.conftest import TINY_FIT, run_dir

HISTORY = [  # made up: four validation epochs
    {"epoch": 0, "val/source_acc": 0.80, "val/entropy": 1.2, "val/snd": 3.0, "val/dev": 0.9, "report/target_acc": 0.50},
    {"epoch": 1, "val/source_acc": 0.90, "val/entropy": 0.4, "val/snd": 3.4, "val/dev": 0.7, "report/target_acc": 0.70},
    {"epoch": 2, "val/source_acc": 0.90, "val/entropy": 0.6, "val/snd": 3.1, "val/dev": float("nan"),
     "report/target_acc": 0.75},
    {"epoch": 3, "val/source_acc": 0.85, "val/entropy": 0.5, "val/snd": 3.2, "val/dev": 0.8, "report/target_acc": 0.60},
]


def test_each_validator_selects_its_first_best_epoch_and_is_ranked_against_the_oracle() -> None:
    rows = {r["selected by"]: r for r in rank_validators(HISTORY, list(VALIDATORS.values()), "val/snd")}
    # source_acc ties at epochs 1 and 2: the first is kept (as ModelCheckpoint keeps the first best)
    assert rows["val/source_acc"]["epoch"] == 1 and rows["val/source_acc"]["target acc %"] == pytest.approx(70.0)
    assert rows["val/entropy"]["epoch"] == 1  # min
    assert rows["val/snd (checkpoint)"]["epoch"] == 1 and rows["val/snd (checkpoint)"]["value"] == 3.4  # max
    assert rows["val/dev"]["epoch"] == 1  # the NaN epoch is skipped
    oracle = rows["oracle: best target acc (labels)"]
    assert oracle["epoch"] == 2 and oracle["target acc %"] == pytest.approx(75.0)
    assert rows["last epoch"]["epoch"] == 3 and rows["last epoch"]["below oracle (pp)"] == pytest.approx(15.0)
    assert rows["val/entropy"]["below oracle (pp)"] == pytest.approx(5.0)
    assert oracle["below oracle (pp)"] == 0.0


def test_without_target_labels_selection_still_works_and_accuracies_are_unknown() -> None:
    history = [{k: v for k, v in r.items() if k != "report/target_acc"} for r in HISTORY]
    rows = rank_validators(history, [VALIDATORS["entropy"]])
    assert rows[0]["epoch"] == 1 and math.isnan(rows[0]["target acc %"])
    assert rows[1]["epoch"] == "-"  # no oracle without labels
    assert select_epoch([], "val/snd", "max") is None


def test_fit_writes_the_ranking_and_an_offline_report_html(workdir: Path) -> None:
    args = ["fit", *TINY_FIT, "--trainer.max_epochs", "3", "--checkpoint.monitor", "val/entropy",
            "--report.embedding_points", "40"]
    assert main(args) == 0
    run = run_dir(workdir)
    report = json.loads((run / "report.json").read_text())
    assert report["checkpoint_monitor"] == "val/entropy" and len(report["validation_history"]) == 3
    for record in report["validation_history"]:
        assert {v.key for v in VALIDATORS.values()} <= record.keys()  # every validator logged every epoch
    rows = {r["selected by"]: r for r in report["selection"]}
    chosen = rows["val/entropy (checkpoint)"]
    # the checkpoint callback (mode auto -> min) kept the epoch the report says entropy selects
    best = [p.name for p in (run / "checkpoints").glob("best-*.ckpt")]
    assert best == [f"best-epoch={chosen['epoch']:02d}.ckpt"]
    entropies = [r["val/entropy"] for r in report["validation_history"]]
    assert chosen["value"] == min(entropies)
    assert rows["oracle: best target acc (labels)"]["target acc %"] == pytest.approx(
        100 * max(r["report/target_acc"] for r in report["validation_history"]))
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["callbacks"]["AdaptationReport"]["history"] == report["validation_history"]  # survives a resume
    page = (run / "report.html").read_text()
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page)  # nothing fetched: opens offline
    assert "http://" not in page and "https://" not in page
    for section in SECTIONS:
        assert f"id='{section}'" in page, section
    for png in ("report_validators.png", "report_pseudo.png", "report_per_class.png", "report_confusion.png",
                "report_embedding.png", "curves.png"):
        assert (run / png).stat().st_size > 1000, png
    assert page.count("data:image/png;base64,") == 6
    assert "No figure" not in page


def test_source_only_computes_no_dev_and_refuses_to_monitor_it(workdir: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", *TINY_FIT, "--model.method", "source_only", "--report.html", "false"]) == 0
    report = json.loads((run_dir(workdir) / "report.json").read_text())
    assert "val/dev" not in report["validation_history"][0] and "val/snd" in report["validation_history"][0]
    assert not (run_dir(workdir) / "report.html").exists()
    assert main(["fit", *TINY_FIT, "--model.method", "source_only", "--checkpoint.monitor", "val/dev"]) != 0
    assert "needs a trained domain classifier" in capsys.readouterr().err


def test_best_checkpoint_is_written_when_the_epoch_ends_on_a_step_count_save(workdir: Path) -> None:
    """4 steps an epoch, ``last.ckpt`` every 2 steps: the epoch's last step saves last.ckpt just before
    validation; the monitored validator's best checkpoint must still be written."""
    assert main(["fit", *TINY_FIT, "--trainer.max_epochs", "2", "--checkpoint.last_every_n_steps", "2",
                 "--checkpoint.monitor", "val/snd", "--report.html", "false"]) == 0
    run = run_dir(workdir)
    report = json.loads((run / "report.json").read_text())
    chosen = next(r for r in report["selection"] if r["selected by"] == "val/snd (checkpoint)")
    assert [p.name for p in (run / "checkpoints").glob("best-*.ckpt")] == [f"best-epoch={chosen['epoch']:02d}.ckpt"]
