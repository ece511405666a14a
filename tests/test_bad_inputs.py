"""The bad-input matrix of both systems (issue 31): each bad file or value ends in exit code 2, one
``adaptrack <system> <command>: error: <file>…: <problem>`` line on stderr, no traceback and no
output file; 16-bit and CMYK images are converted, and checkpoints that need pickled code are
refused without running it."""

from __future__ import annotations

import contextlib
import csv
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import adaptrack.adapt
from adaptrack.adapt.cli import main as adapt_main
from adaptrack.common.errors import DataError
from adaptrack.common.images import decode_image
from adaptrack.track.cli import main as track_main
from adaptrack.track.inference.run import iter_frames

from .bad_inputs_cases import (
    ADAPT_TINY,
    CASES,
    NEEDS_NON_ROOT,
    Case,
    PickledCode,
    World,
    adapt_data_args,
    build_adapt_folders,
    build_track_checkpoints,
    build_track_set,
    is_root,
    write_code_checkpoint,
)

MAINS = {"adapt": adapt_main, "track": track_main}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The tiny data of both systems and one checkpoint of each (the adapt one through the CLI)."""
    root = tmp_path_factory.mktemp("world")
    adapt_data = build_adapt_folders(root / "adapt")
    out = root / "adapt_run"
    with contextlib.chdir(root):
        assert adapt_main(["fit", *adapt_data_args(adapt_data), *ADAPT_TINY, "--trainer.default_root_dir",
                           str(out), "--trainer.logger", "false", "--checkpoint.dirpath", str(out)]) == 0
    parts, tracker = build_track_checkpoints(root / "track_ckpt")
    return World(adapt_data, build_track_set(root / "track"), out / "last.ckpt", parts, tracker)


def files_under(folder: Path) -> set[Path]:
    """Every file below ``folder``."""
    return {p for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_error_and_leaves_no_output(case: Case, world: World, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    if case.id in NEEDS_NON_ROOT and is_root():
        pytest.skip("running as root: chmod 0o500 does not stop root (the 'under a file' cases cover root)")
    case_dir, out = tmp_path / "case", tmp_path / "out"
    case_dir.mkdir()
    argv, texts = case.build(world, case_dir, out)
    monkeypatch.chdir(tmp_path)  # a run writing to a default folder (runs/...) would write here
    before = files_under(tmp_path)
    code = MAINS[case.system](argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(f"adaptrack {case.system} {argv[0]}: error: ")]
    assert len(lines) == 1, err
    for text in texts:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"
    assert files_under(tmp_path) == before, "the failed run left files behind"
    assert not out.exists() or not any(out.iterdir())
    assert not (case_dir / "MARKER").exists(), "code pickled in a checkpoint ran"


def test_the_matrix_covers_every_kind_of_the_issue() -> None:
    ids = " ".join(c.id for c in CASES)
    kinds = ["zero-byte", "truncated-png", "truncated-jpeg", "text-named-png", "class-missing-in-labeled-target",
             "empty-target-folder", "mislabeled-mnist", "hdf5-missing-key", "mat-without-X", "json-missing-key",
             "negative-box", "zero-size-box", "out-of-image-box", "frame-does-not-exist", "duplicate-image-id",
             "zero-frames", "corrupt-checkpoint", "truncated-checkpoint", "track-checkpoint", "adapt-checkpoint",
             "code-checkpoint", "nan-in-yaml", "inf-on-command-line", "output-under-a-file", "dual-masking"]
    assert [k for k in kinds if k not in ids] == []
    assert {c.system for c in CASES} == {"adapt", "track"}


def test_console_script_exits_2_with_one_line(world: World, tmp_path: Path) -> None:
    """The real entry point, in new processes (both at once): exit code 2, one line on stderr, no usage
    dump, no traceback, nothing written."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(adaptrack.adapt.__file__).parents[2]),
                                                        os.environ.get("PYTHONPATH", "")])}
    commands = {
        "adapt": ["predict", "--ckpt_path", str(world.tracker_ckpt), "--data.predict_dir",
                  str(world.adapt_data / "tgt" / "train"), "--trainer.default_root_dir", str(tmp_path / "out")],
        "track": ["run", "--checkpoint", str(world.adapt_ckpt), "--source", str(world.frames()),
                  "--box", "[10, 10, 20, 30]", "--output", str(tmp_path / "out")],
    }
    running = {system: subprocess.Popen([sys.executable, "-m", "adaptrack.cli", system, *argv], cwd=tmp_path,
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for system, argv in commands.items()}
    for system, process in running.items():
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 2, stderr
        assert "Traceback" not in stderr and "usage:" not in stderr
        errors = [line for line in stderr.splitlines() if ": error: " in line]
        assert len(errors) == 1, stderr
        assert errors[0].startswith(f"adaptrack {system} {commands[system][0]}: error: ")
        assert str(world.tracker_ckpt if system == "adapt" else world.adapt_ckpt) in errors[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


# -- 16-bit and CMYK images are converted, not clipped -------------------------------------------------------

def _png16(path: Path, values: np.ndarray) -> Path:
    Image.fromarray(values.astype(np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I;16")
    return path


def test_16_bit_png_is_scaled_to_8_bits(tmp_path: Path) -> None:
    values = np.arange(64, dtype=np.int64).reshape(8, 8) * 1000  # 0 .. 63000
    path = _png16(tmp_path / "wide.png", values)
    gray, is_gray = decode_image(path, "L")
    assert is_gray and gray.dtype == np.uint8
    assert np.array_equal(gray, np.round(values * 255 / 65535).astype(np.uint8))
    rgb, _ = decode_image(path, "RGB")
    assert np.array_equal(rgb[..., 0], gray) and np.array_equal(rgb[..., 2], gray)
    frame = next(iter_frames(_folder_of(path, tmp_path / "frames")))[1]  # track run reads it the same way
    assert np.array_equal(frame[..., 1], gray)


def _folder_of(path: Path, folder: Path) -> Path:
    folder.mkdir()
    (folder / path.name).write_bytes(path.read_bytes())
    return folder


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path, quality=100)  # pure red in CMYK
    rgb, is_gray = decode_image(path, "RGB")
    assert not is_gray and rgb.shape == (8, 8, 3)
    assert rgb[..., 0].min() > 240 and rgb[..., 1].max() < 15 and rgb[..., 2].max() < 15


def test_predict_on_16_bit_and_cmyk_files_matches_their_8_bit_copies(world: World, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """End to end: `adapt predict` gives a 16-bit file the prediction of its 8-bit copy (not a white image)."""
    eight, wide = tmp_path / "eight", tmp_path / "wide"
    eight.mkdir()
    wide.mkdir()
    for i, png in enumerate(sorted((world.adapt_data / "src" / "test" / "a").glob("*.png"))):
        pixels = np.asarray(Image.open(png))
        Image.fromarray(pixels).save(eight / f"{i}.png")
        _png16(wide / f"{i}.png", pixels.astype(np.int64) * 257)  # the same image in 16 bits
    Image.fromarray(pixels).convert("CMYK").save(wide / "9.jpg", quality=100)
    Image.open(wide / "9.jpg").convert("L").save(eight / "9.png")
    monkeypatch.chdir(tmp_path)
    rows = {}
    for name, folder in (("eight", eight), ("wide", wide)):
        out = tmp_path / f"{name}.csv"
        assert adapt_main(["predict", "--ckpt_path", str(world.adapt_ckpt), "--data.predict_dir", str(folder),
                           "--predictions.output", str(out), "--trainer.logger", "false",
                           "--trainer.enable_progress_bar", "false"]) == 0
        with open(out, newline="") as handle:
            rows[name] = [(Path(r["file"]).stem, r["predicted_class"], float(r["confidence"]))
                          for r in csv.DictReader(handle)]
    assert len(rows["wide"]) == 4
    for (a, ca, pa), (b, cb, pb) in zip(rows["eight"], rows["wide"], strict=True):
        assert a == b and ca == cb and pa == pytest.approx(pb, abs=0.02)


# -- checkpoints that need pickled code -----------------------------------------------------------------------

def test_the_code_checkpoint_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    """Guard of the cases above: the payload does run code under a plain unpickler."""
    marker = tmp_path / "MARKER"
    pickle.loads(pickle.dumps(PickledCode(marker)))
    assert marker.exists()


@pytest.mark.parametrize("kind", ["code", "track", "truncated"])
def test_python_api_load_refuses_with_the_file_named(kind: str, world: World, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    if kind == "code":
        path, problem = write_code_checkpoint(tmp_path / "code.ckpt", marker), "needs pickled code"
    elif kind == "track":
        path, problem = world.tracker_ckpt, "checkpoint of `adaptrack track`"
    else:
        path, problem = tmp_path / "cut.ckpt", "truncated"
        path.write_bytes(world.adapt_ckpt.read_bytes()[:3000])
    with pytest.raises(DataError, match=problem) as info:
        adaptrack.adapt.load(str(path))
    assert str(path) in str(info.value)
    assert not marker.exists()
