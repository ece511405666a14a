"""The README's tracking commands, in order, from an empty folder, with tiny sizes."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest

from adaptrack.common.paths import shared_data_dir
from adaptrack.track.cli import main

ROOT = Path(__file__).resolve().parents[2]
TINY_FIT = ["--model.channels", "[8, 8, 8, 8]", "--model.crop_size", "null", "--trainer.max_epochs", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--data.image_size", "64", "--data.batch_size", "2", "--data.samples_per_epoch", "4",
            "--data.val_samples", "2", "--data.max_stride", "1", "--trainer.check_val_every_n_epoch", "1"]


def readme_tracking_commands(heading: str = "## Part-aware tracking") -> list[list[str]]:
    """The ``adaptrack track`` lines of the first shell block after ``heading`` in the README."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading):]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, f"README: no shell block after {heading!r}"
    lines = [line for line in block.group(1).splitlines() if line.startswith("adaptrack track ")]
    return [shlex.split(line)[2:] for line in lines]


def _tiny(args: list[str], root: Path) -> list[str]:
    """The same command at tiny sizes: 2 sequences of 6 frames of 64x64 pixels, 1 epoch of 2 steps."""
    cmd = args[0]
    if cmd == "generate":
        out = list(args)
        for key, value in (("--n_sequences", "2"), ("--n_frames", "6")):
            out[out.index(key) + 1] = value
        return [*out, "--width", "64", "--height", "64"]
    if cmd in ("fit-parts", "fit"):
        clip = ["--data.clip_len", "3"] if cmd == "fit" else []
        return [*args, *TINY_FIT, *clip]
    if cmd == "run":  # the README's box is in the full-size frames: take the tiny sequence's own
        out = list(args)
        source = Path(out[out.index("--source") + 1])
        ann = json.loads((root / "data" / "crowded" / "annotations" / source.parent.name /
                          f"{source.name}.json").read_text())
        first = min(ann["images"], key=lambda im: im["frame_id"])["id"]
        target = ann["adaptrack"]["target_track"]
        box = next(a["bbox"] for a in ann["annotations"] if a["image_id"] == first and a["track_id"] == target)
        out[out.index("--box") + 1] = json.dumps(box)
        return [*out, "--video", "gif"]
    return list(args)


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's tracking commands run at tiny sizes in an empty folder; returns the folder."""
    tmp_path = tmp_path_factory.mktemp("walkthrough")
    commands = readme_tracking_commands()
    assert [c[0] for c in commands] == ["generate", "generate", "generate", "fit-parts", "fit", "evaluate",
                                        "export", "run"]
    here = os.getcwd()
    os.chdir(tmp_path)
    try:
        for args in commands:
            args = [a.replace("configs/", f"{ROOT}/configs/") for a in args]
            assert main(_tiny(args, tmp_path)) == 0, args
    finally:
        os.chdir(here)
    return tmp_path


def test_readme_tracking_commands_run_in_order_from_an_empty_folder(walkthrough: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    tmp_path = walkthrough
    monkeypatch.chdir(tmp_path)
    assert (tmp_path / "runs" / "track" / "parts" / "checkpoints" / "best.ckpt").is_file()
    assert (tmp_path / "runs" / "track" / "tracker" / "checkpoints" / "best.ckpt").is_file()
    assert json.loads((tmp_path / "runs" / "track" / "onnx" / "meta.json").read_text())["input_size"] == 64
    frames = json.loads((tmp_path / "runs" / "track" / "run" / "tracks.json").read_text())["frames"]
    assert len(frames) == 6 and "visible" in frames[1]["parts"][0]
    # the third embodiment over an in-order pass (region maps kept across batches)
    temporal = ["fit", "--config", f"{ROOT}/configs/track/tracker.yaml", "--config",
                f"{ROOT}/configs/track/tracker_temporal_pass.yaml", *TINY_FIT, "--data.clip_len", "2"]
    assert main([*temporal, "--data.train_dir", "data/crowded", "--data.val_dir", "data/crowded",
                 "--data.max_stride", "1"]) == 0
    assert (tmp_path / "runs" / "track" / "tracker_temporal_pass" / "checkpoints" / "last.ckpt").is_file()
    assert main([*temporal, "--data.train_dir", "data/crowded", "--data.val_dir", "data/crowded",
                 "--data.max_stride", "4"]) == 2  # strides the store could never continue


def test_a_missing_split_names_the_split_to_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from adaptrack.track.data.synth import generate_dataset

    generate_dataset(tmp_path / "data", n_sequences=1, n_frames=4, preset="crowded", width=64, height=64,
                     split="train")
    assert main(["fit-parts", "--data.train_dir", str(tmp_path / "data"), "--data.val_dir", str(tmp_path / "data"),
                 "--trainer.default_root_dir", str(tmp_path / "runs"), *TINY_FIT, "--data.clip_len", "1"]) == 2
    err = capsys.readouterr().err
    assert "no 'val' split" in err and "adaptrack track generate" in err and "--split val" in err


def test_readme_real_video_commands_run_in_order_on_the_shared_clip(walkthrough: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's real-video block, with the shared 126-frame Town Centre clip standing in for the download,
    tiny training sizes, and only the trained tracker in ``evaluate-real`` (the OpenCV rows are tested in
    ``tests/track/test_baselines.py``)."""
    shared = shared_data_dir()
    clip = None if shared is None else shared / "towncentre"
    if clip is None or not (clip / "TownCentre-first126.mp4").is_file():
        pytest.skip("needs the shared Town Centre clip in ../shared/data/towncentre (see its README)")
    commands = readme_tracking_commands("### Real video")
    assert [c[0] for c in commands] == ["convert", "fit", "fit-parts", "evaluate-real", "run"]
    monkeypatch.chdir(walkthrough)
    data = walkthrough / "data" / "towncentre"
    data.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(clip / "TownCentre-groundtruth-first126.top", data / "TownCentre-groundtruth.top")
    shutil.copyfile(clip / "TownCentre-first126.mp4", data / "TownCentreXVID.mp4")
    for args in commands:
        args = [a.replace("configs/", f"{ROOT}/configs/").replace("TownCentreXVID.avi", "TownCentreXVID.mp4")
                for a in args]
        cmd = args[0]
        if cmd == "fit":
            args = [*args, *TINY_FIT, "--data.clip_len", "2", "--data.train_dir", "data/towncentre_labeled",
                    "--data.val_dir", "data/crowded", "--model.init_checkpoint", "null"]
        elif cmd == "fit-parts":
            args = [*args, *TINY_FIT, "--data.clip_len", "1", "--data.target_crop_size", "64",
                    "--data.target_batch_size", "2", "--data.labeled_batch_size", "2"]
        elif cmd == "evaluate-real":
            args[args.index("--trackers") + 1] = json.dumps(["runs/track/tracker_search/checkpoints/best.ckpt"])
        elif cmd == "run":
            args = [*args, "--max_frames", "5", "--video", "none"]
        assert main(args) == 0, args
    rows = json.loads((walkthrough / "runs" / "track" / "real_dev" / "metrics.json").read_text())["rows"]
    assert rows[0]["person-frames"] > 500 and 0 <= rows[0]["head hit %"] <= 100
    frames = json.loads((walkthrough / "runs" / "track" / "run" / "tracks.json").read_text())["frames"]
    assert len(frames) == 5
