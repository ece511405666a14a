"""Every output of a run lands under ``--trainer.default_root_dir`` (given on the command line or in a
YAML config, also for ``adapt compare``), nothing under ``runs/``; ``adapt predict`` rebuilds a model
trained with non-default settings from its checkpoint alone, from another working directory."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

import adaptrack.adapt
from adaptrack.adapt.cli import main as adapt_main
from adaptrack.track.cli import main as track_main

from .bad_inputs_cases import ADAPT_TINY, TRACK_TINY, adapt_data_args, build_adapt_folders, build_track_set


def names(root: Path) -> set[str]:
    """The kinds of files below ``root`` (file names, checkpoints and TensorBoard files by kind)."""
    found = set()
    for path in root.rglob("*"):
        if path.is_file():
            name = path.name
            found.add("tfevents" if name.startswith("events.out.tfevents") else
                      "ckpt" if name.endswith(".ckpt") else name)
    return found


@pytest.mark.parametrize("how", ["option", "yaml", "compare"])
def test_adapt_outputs_go_under_default_root_dir(how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = build_adapt_folders(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "my_root"
    options = [*adapt_data_args(data), *ADAPT_TINY]
    if how == "option":
        assert adapt_main(["fit", *options, "--trainer.default_root_dir", str(root)]) == 0
    elif how == "yaml":
        config = tmp_path / "root.yaml"
        config.write_text(f"trainer:\n  default_root_dir: {root}\n")
        assert adapt_main(["fit", "--config", str(config), *options]) == 0
    else:
        assert adapt_main(["compare", "--methods", "source_only", "--", *options,
                           "--trainer.default_root_dir", str(root)]) == 0
    assert {"metrics.csv", "hparams.yaml", "config.yaml", "report.json", "curves.png", "ckpt",
            "tfevents"} <= names(root)
    assert not (tmp_path / "runs").exists()
    assert {p.name for p in tmp_path.iterdir()} <= {"data", "my_root", "root.yaml"}


@pytest.mark.parametrize("how", ["option", "yaml"])
def test_track_outputs_go_under_default_root_dir(how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = build_track_set(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "my_root"
    options = ["--data.train_dir", str(data), "--data.val_dir", str(data / "annotations" / "train"), *TRACK_TINY]
    if how == "option":
        assert track_main(["fit-parts", *options, "--trainer.default_root_dir", str(root)]) == 0
    else:
        config = tmp_path / "root.yaml"
        config.write_text(f"trainer:\n  default_root_dir: {root}\n")
        assert track_main(["fit-parts", "--config", str(config), *options]) == 0
    assert {"metrics.csv", "hparams.yaml", "config.yaml", "curves.png", "ckpt", "tfevents"} <= names(root)
    assert not (tmp_path / "runs").exists()


def test_predict_rebuilds_a_folder_trained_model_from_the_checkpoint_alone(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Classes ``a``/``b`` (not the default ten digits), 16x16 input, 4-channel convs: predict gets only
    ``--ckpt_path`` and ``--data.predict_dir``, in a folder where the training data is not found."""
    data = build_adapt_folders(tmp_path / "train_here" / "data")
    monkeypatch.chdir(tmp_path / "train_here")
    assert adapt_main(["fit", "--data.source", "folder", "--data.source_dir", "data/src", "--data.target", "folder",
                       "--data.target_dir", "data/tgt", *ADAPT_TINY, "--model.network.dropout", "0.2"]) == 0
    ckpt = next((tmp_path / "train_here" / "runs" / "adapt").rglob("last.ckpt"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    images = data / "tgt" / "train"
    assert adapt_main(["predict", "--ckpt_path", str(ckpt), "--data.predict_dir", str(images),
                       "--predictions.output", "pred.csv", "--trainer.enable_progress_bar", "false"]) == 0
    with open(elsewhere / "pred.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    classifier = adaptrack.adapt.load(str(ckpt))
    assert classifier.class_names == ["a", "b"] and classifier.image_size == 16
    expected = classifier.predict(sorted(images.glob("*.png")))
    assert [r["predicted_class"] for r in rows] == expected.names
    assert [float(r["confidence"]) for r in rows] == pytest.approx(expected.confidence.tolist(), abs=1e-3)


def test_a_shipped_config_s_checkpoint_folder_follows_default_root_dir(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    data = build_track_set(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "my_root"
    config = Path(__file__).resolve().parents[1] / "configs" / "track" / "parts.yaml"  # dirpath: runs/track/parts/...
    assert track_main(["fit-parts", "--config", str(config), "--data.train_dir", str(data), "--data.val_dir",
                       str(data / "annotations" / "train"), *TRACK_TINY, "--model.fine_maps", "false",
                       "--model.crop_size", "null", "--trainer.default_root_dir", str(root)]) == 0
    assert (root / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "runs").exists()
