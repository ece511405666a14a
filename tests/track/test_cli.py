"""``adaptrack track`` end to end on tiny generated data, and its input errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adaptrack.track.cli import main
from adaptrack.track.data.synth import generate_dataset

TINY_ARGS = ["--model.channels", "[8, 8, 8, 8]", "--model.crop_size", "null", "--trainer.max_epochs", "1",
             "--trainer.enable_progress_bar", "false", "--data.image_size", "64", "--data.batch_size", "2",
             "--data.samples_per_epoch", "4", "--data.val_samples", "2", "--data.max_stride", "1"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated data, trained checkpoints and an ONNX export, all from the CLI."""
    root = tmp_path_factory.mktemp("cli")
    data = root / "data"
    generate_dataset(data, n_sequences=2, n_frames=8, preset="crowded", seed=0, width=64, height=64, split="train")
    generate_dataset(data, n_sequences=1, n_frames=8, preset="crowded", seed=1, width=64, height=64, split="val")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)  # loggers write runs/track/... below the working directory
        common = ["--data.train_dir", str(data), "--data.val_dir", str(data), *TINY_ARGS]
        assert main(["fit-parts", *common, "--data.clip_len", "1", "--checkpoint.dirpath", "parts",
                     "--trainer.default_root_dir", "parts_root"]) == 0
        assert main(["fit", *common, "--data.clip_len", "3", "--model.part_checkpoint", "parts/best.ckpt",
                     "--model.temporal_n", "2", "--checkpoint.dirpath", "tracker"]) == 0
    return root


def test_fit_writes_best_and_last_checkpoints_and_logs(workdir: Path) -> None:
    for name in ("parts", "tracker"):
        assert (workdir / name / "best.ckpt").is_file() and (workdir / name / "last.ckpt").is_file()
    assert list((workdir / "runs" / "track" / "tracker").rglob("metrics.csv"))
    assert list((workdir / "runs" / "track" / "tracker").rglob("events.out.tfevents.*"))
    # the default loggers follow --trainer.default_root_dir
    assert list((workdir / "parts_root").rglob("metrics.csv"))
    assert list((workdir / "parts_root").rglob("curves.png"))


def test_evaluate_prints_table_with_baselines(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = workdir / "eval"
    assert main(["evaluate", "--checkpoints", f"[{workdir / 'tracker' / 'best.ckpt'}]", "--names", "[tiny]",
                 "--data", str(workdir / "data"), "--split", "val", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    for method in ("element product", "(a) peak in box", "(b) nearest expected", "ground truth", "wrong %"):
        assert method in printed
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    # ours + 2 baselines, each with the tracker's box and with the ground truth
    assert [(r["method"], r["box"]) for r in rows] == [
        ("element product", "tracker"), ("(a) peak in box", "tracker"), ("(b) nearest expected", "tracker"),
        ("element product", "ground truth"), ("(a) peak in box", "ground truth"),
        ("(b) nearest expected", "ground truth")]
    for row in rows:
        assert row["hit %"] + row["wrong %"] + row["miss %"] == pytest.approx(100.0)
        assert row["frames"] == rows[0]["frames"] > 0
    assert math.isnan(rows[3]["AUC"]) and not math.isnan(rows[0]["AUC"])
    # per-track outcomes of the tracker's output: one letter per frame after the first
    tracks = json.loads((out / "metrics.json").read_text())["tracks"]
    assert len(tracks) == 1 and tracks[0]["model"] == "tiny" and len(tracks[0]["timeline"]) == 7
    assert set(tracks[0]["timeline"]) <= set("hWmaXf-") and tracks[0]["frames"] == rows[0]["frames"]
    # hidden frames: the bare element product cannot abstain, so each is wrong-person or a false report
    assert rows[0]["abstain % (hidden)"] in (0.0,) or math.isnan(rows[0]["abstain % (hidden)"])
    assert tracks[0]["timeline"] in (out / "tracks.md").read_text()
    assert ("tracks with wrong-person frames" in printed) == (tracks[0]["wrong %"] > 0)
    assert main(["evaluate", "--checkpoints", f"[{workdir / 'tracker' / 'best.ckpt'}]", "--data",
                 str(workdir / "data"), "--split", "val", "--ground_truth_prior", "false", "--output", str(out)]) == 0
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    assert [r["box"] for r in rows].count("ground truth") == 2  # the baselines' only


def test_evaluate_states_where_tracks_start(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["evaluate", "--checkpoints", f"[{workdir / 'tracker' / 'best.ckpt'}]", "--data", str(workdir / "data"),
              "--split", "val", "--ground_truth_prior", "false"]
    assert main(common) == 0  # the primary protocol is the default
    printed = capsys.readouterr().out
    assert "each track starts at its first annotated frame (primary protocol); 1 tracks scored, none left out" \
        in printed
    assert main([*common, "--init_visibility", "0.99"]) == 0
    printed = capsys.readouterr().out
    assert "each track starts at the first frame with its parts at least 99% visible (secondary protocol)" in printed
    assert main([*common, "--init_visibility", "1.0", "--max_sequences", "1"]) == 0
    printed = capsys.readouterr().out
    assert "tracks scored" in printed and ("left out" in printed)
    assert main([*common, "--init_visibility", "1.5"]) == 2  # an option error: one line, no traceback
    assert "adaptrack track evaluate: error: init_visibility must be a share in" in capsys.readouterr().err


def test_evaluate_with_a_part_window_adds_its_row_beside_the_bare_element_product(workdir: Path) -> None:
    out = workdir / "eval_window"
    assert main(["evaluate", "--checkpoints", f"[{workdir / 'tracker' / 'best.ckpt'}]", "--data",
                 str(workdir / "data"), "--split", "val", "--part_window", "0.15", "--output", str(out)]) == 0
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    assert [r["method"] for r in rows[:2]] == ["element product", "+ part window"] and len(rows) == 8
    assert [(r["method"], r["box"]) for r in rows[4:6]] == [("element product", "ground truth"),
                                                          ("+ part window", "ground truth")]
    assert rows[0]["frames"] == rows[1]["frames"] > 0


def test_evaluate_with_a_part_exponent_names_the_output_row_after_it(workdir: Path) -> None:
    out = workdir / "eval_exponent"
    assert main(["evaluate", "--checkpoints", f"[{workdir / 'tracker' / 'best.ckpt'}]", "--data",
                 str(workdir / "data"), "--split", "val", "--part_window", "0.15", "--part_exponent", "0.25",
                 "--ground_truth_prior", "false", "--output", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["method"] for r in metrics["rows"][:2]] == ["element product", "heat^0.25 x region + part window"]
    assert {t["model"] for t in metrics["tracks"]} == {"tracker"} and metrics["tracks"]


def _frames(workdir: Path) -> list[Path]:
    return sorted((workdir / "data" / "images" / "val").rglob("*.jpg"))


def test_run_on_frame_folder_and_gif_writes_json_csv_gif(workdir: Path) -> None:
    frames = _frames(workdir)
    ann = json.loads(next((workdir / "data" / "annotations" / "val").glob("*.json")).read_text())
    first = min(ann["images"], key=lambda im: im["frame_id"])["id"]
    box = next(a["bbox"] for a in ann["annotations"] if a["image_id"] == first and a["track_id"] == 0)
    box_arg = ",".join(f"{v:.1f}" for v in box)
    out = workdir / "run_folder"
    assert main(["run", "--checkpoint", str(workdir / "tracker" / "best.ckpt"), "--source", str(frames[0].parent),
                 "--box", f"[{box_arg}]", "--output", str(out)]) == 0
    records = json.loads((out / "tracks.json").read_text())["frames"]
    assert len(records) == len(frames) and records[1]["parts"][0]["name"] == "head"
    assert (out / "tracks.csv").read_text().count("\n") == len(frames) + 1
    gif = workdir / "clip.gif"
    images = [Image.open(f).convert("RGB") for f in frames]
    images[0].save(gif, save_all=True, append_images=images[1:], duration=100)
    out_gif = workdir / "run_gif"
    assert main(["run", "--checkpoint", str(workdir / "tracker" / "best.ckpt"), "--source", str(gif),
                 "--box", f"[{box_arg}]", "--output", str(out_gif), "--video", "gif"]) == 0
    with Image.open(out_gif / "annotated.gif") as im:
        assert im.n_frames == len(frames)


def test_run_on_mp4_writes_annotated_mp4(workdir: Path) -> None:
    import imageio.v3 as iio

    frames = _frames(workdir)
    clip = workdir / "clip.mp4"
    iio.imwrite(clip, np.stack([np.asarray(Image.open(f).convert("RGB")) for f in frames]), extension=".mp4",
                plugin="FFMPEG", fps=10, codec="libx264", macro_block_size=1)
    out = workdir / "run_mp4"
    assert main(["run", "--checkpoint", str(workdir / "tracker" / "best.ckpt"), "--source", str(clip),
                 "--box", "[10, 10, 20, 40]", "--output", str(out)]) == 0
    records = json.loads((out / "tracks.json").read_text())["frames"]
    assert len(records) == len(frames) and records[0]["name"].endswith("clip.mp4#0")
    annotated = iio.imread(out / "annotated.mp4", plugin="FFMPEG")
    assert annotated.shape[0] == len(frames) and annotated.shape[-1] == 3
    assert sorted(p.name for p in out.iterdir()) == ["annotated.mp4", "tracks.csv", "tracks.json"]


def test_export_then_run_with_onnxruntime(workdir: Path) -> None:
    onnx_dir = workdir / "onnx"
    assert main(["export", "--checkpoint", str(workdir / "tracker" / "best.ckpt"), "--output", str(onnx_dir),
                 "--input_size", "64"]) == 0
    assert main(["run", "--checkpoint", str(onnx_dir), "--source", str(_frames(workdir)[0].parent),
                 "--box", "[10, 10, 20, 40]", "--output", str(workdir / "run_onnx"), "--video", "none"]) == 0
    assert (workdir / "run_onnx" / "tracks.json").is_file()


def test_video_with_zero_frames_is_a_clear_error(workdir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.gif"
    empty.write_bytes(b"")
    code = main(["run", "--checkpoint", str(workdir / "tracker" / "best.ckpt"), "--source", str(empty),
                 "--box", "[1, 1, 5, 5]", "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "empty.gif" in err and "zero frames" in err
    assert not (tmp_path / "out").exists()  # nothing half-written
    (tmp_path / "frames").mkdir()
    assert main(["run", "--checkpoint", str(workdir / "tracker" / "best.ckpt"), "--source",
                 str(tmp_path / "frames"), "--box", "[1, 1, 5, 5]"]) == 2
    assert "no frames" in capsys.readouterr().err


def test_initial_box_outside_the_frame_names_file_and_frame(workdir: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    frames = _frames(workdir)
    code = main(["run", "--checkpoint", str(workdir / "tracker" / "best.ckpt"), "--source", str(frames[0].parent),
                 "--box", "[500, 500, 20, 40]", "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and frames[0].name in err and "outside the 64x64 frame" in err
    assert not (tmp_path / "out").exists()


def test_unknown_subcommand_and_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 2
    assert "unknown command" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoints", f"[{tmp_path / 'missing.ckpt'}]", "--data", str(tmp_path)]) == 2
    assert "missing.ckpt" in capsys.readouterr().err
