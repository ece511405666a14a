"""Inference (FIG. 30): the predict CSV and the Python API agree with each other and the files."""

from __future__ import annotations

import contextlib
import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import adaptrack.adapt
from adaptrack.adapt.cli import main
from adaptrack.adapt.data.registry import load_dataset

from .conftest import TINY_FIT, run_dir


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny model shared by the tests of this module."""
    root = tmp_path_factory.mktemp("trained")
    with contextlib.chdir(root):
        assert main(["fit", *TINY_FIT]) == 0
    return run_dir(root) / "checkpoints" / "last.ckpt"


def write_pngs(folder: Path, n: int) -> list[Path]:
    digits = load_dataset("sklearn_digits", "test")
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        path = folder / f"img_{i:02d}.png"
        Image.fromarray(digits.images[i, 0].numpy()).resize((20, 20)).save(path)  # another size: resized
        paths.append(path)
    return paths


def test_predict_folder_writes_csv(trained: Path, workdir: Path) -> None:
    paths = write_pngs(workdir / "images", 5)
    out = workdir / "pred.csv"
    code = main(["predict", "--ckpt_path", str(trained), "--data.predict_dir", str(workdir / "images"),
                 "--predictions.output", str(out), "--predictions.top_k", "3",
                 "--trainer.enable_progress_bar", "false"])
    assert code == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [Path(r["file"]).name for r in rows] == [p.name for p in paths]
    classifier = adaptrack.adapt.load(trained)
    api = classifier.predict(paths)
    for row, name, conf, probs in zip(rows, api.names, api.confidence, api.probs, strict=True):
        assert row["predicted_class"] == name
        assert float(row["confidence"]) == pytest.approx(float(conf), abs=1e-3)
        top = row["top3"].split()
        assert len(top) == 3 and top[0].split(":")[0] == name
        values = [float(t.split(":")[1]) for t in top]
        assert values == sorted(values, reverse=True)
        assert float(probs.sum()) == pytest.approx(1.0, abs=1e-5)


def test_predict_dataset_split(trained: Path, workdir: Path) -> None:
    out = workdir / "split.csv"
    assert main(["predict", "--ckpt_path", str(trained), "--data.predict_dataset", "sklearn_digits",
                 "--predictions.output", str(out), "--trainer.enable_progress_bar", "false"]) == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(load_dataset("sklearn_digits", "test"))
    assert rows[0]["file"].startswith("sklearn_digits")


def test_python_api_accepts_arrays_and_tensors(trained: Path) -> None:
    classifier = adaptrack.adapt.load(trained)
    digits = load_dataset("sklearn_digits", "test").images[:4]  # (4, 1, 8, 8) uint8
    from_tensor = classifier.predict(digits)
    from_array = classifier.predict(digits.numpy())
    from_float = classifier.predict(digits.float() / 255.0)
    assert torch.equal(from_tensor.labels, from_array.labels)
    assert torch.equal(from_tensor.labels, from_float.labels)
    values, indices = from_tensor.top_k(2)
    assert values.shape == indices.shape == (4, 2)
    assert np.all(values[:, 0].numpy() >= values[:, 1].numpy())


def test_corrupt_image_is_named(trained: Path, workdir: Path) -> None:
    bad = workdir / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(Exception, match=r"broken\.png"):
        adaptrack.adapt.load(trained).predict([bad])


def test_load_rejects_non_checkpoint(workdir: Path) -> None:
    junk = workdir / "junk.ckpt"
    junk.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"junk\.ckpt"):
        adaptrack.adapt.load(junk)


def test_test_subcommand_reports_source_and_target(trained: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "--ckpt_path", str(trained), "--trainer.enable_progress_bar", "false",
                 "--trainer.logger", "false"]) == 0
    out = capsys.readouterr().out
    assert "val/source_acc" in out and "report/target_acc" in out


def test_predict_rebuilds_a_non_default_model_from_the_checkpoint_alone(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Network widths, dropout and input size come from the checkpoint, whatever directory predict runs in."""
    train_dir = tmp_path / "train"
    train_dir.mkdir()
    monkeypatch.chdir(train_dir)
    assert main(["fit", *TINY_FIT, "--data.image_size", "20", "--model.network.conv_channels", "[6, 12]",
                 "--model.network.class_hidden", "[24, 12]", "--model.network.dropout", "0.3"]) == 0
    ckpt = run_dir(train_dir) / "checkpoints" / "last.ckpt"
    elsewhere = tmp_path / "elsewhere"
    paths = write_pngs(elsewhere / "images", 3)
    monkeypatch.chdir(elsewhere)
    out = elsewhere / "pred.csv"
    assert main(["predict", "--ckpt_path", str(ckpt), "--data.predict_dir", "images",
                 "--predictions.output", str(out), "--trainer.enable_progress_bar", "false",
                 "--trainer.logger", "false"]) == 0
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    api = adaptrack.adapt.load(ckpt).predict(paths)
    assert [r["predicted_class"] for r in rows] == api.names
    assert adaptrack.adapt.load(ckpt).image_size == 20
