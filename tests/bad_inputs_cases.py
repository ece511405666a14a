"""Tiny data, checkpoints and bad inputs for ``tests/test_bad_inputs.py`` (both systems, both CLIs).

Everything is built in temporary folders: a labeled source folder of 8x8 PNGs (classes ``a`` and
``b``) with a flat unlabeled target folder, a one-sequence PoseTrack18 set of four 64x64 frames, and
one checkpoint of each system. Each :class:`Case` copies what it needs into its own folder, breaks
one thing and returns the command line that must fail on it.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import scipy.io
import torch
from PIL import Image

from adaptrack.track.data.synth import generate_dataset
from adaptrack.track.train.module import PartDetectorModule, TrackerModule
from tests.track.conftest import TINY, _fit

ADAPT_TINY = [
    "--data.image_size", "16", "--data.batch_size", "2", "--data.steps_per_epoch", "1",
    "--data.eval_batch_size", "8", "--data.augment_source", "false",
    "--model.network.conv_channels", "[4, 4]", "--model.network.class_hidden", "[8]",
    "--model.network.domain_hidden", "[8]", "--model.gate.start_ratio", "0.0",
    "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false", "--trainer.log_every_n_steps", "1",
]
"""Smallest adapt run: 16x16 input, 4-channel convs, one step."""

TRACK_TINY = [
    "--model.channels", "[8, 8, 8, 8]", "--model.crop_size", "null", "--trainer.max_epochs", "1",
    "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    "--data.image_size", "64", "--data.batch_size", "1", "--data.samples_per_epoch", "1",
    "--data.val_samples", "1", "--data.max_stride", "1", "--data.clip_len", "2",
]
"""Smallest track run: 8-channel networks on 64x64 frames, one clip of two frames."""


def write_png(path: Path, seed: int, size: int = 8) -> Path:
    """A random 8-bit gray PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def build_adapt_folders(root: Path) -> Path:
    """``root/src/{train,test}/{a,b}/*.png`` (3 per class) and ``root/tgt/train/*.png`` (4 images)."""
    seed = 0
    for split in ("train", "test"):
        for cls in ("a", "b"):
            for i in range(3):
                seed += 1
                write_png(root / "src" / split / cls / f"{i}.png", seed)
    for i in range(4):
        write_png(root / "tgt" / "train" / f"{i}.png", 100 + i)
    return root


def adapt_data_args(root: Path) -> list[str]:
    """Options that train on the folders of :func:`build_adapt_folders` under ``root``."""
    return ["--data.source", "folder", "--data.source_dir", str(root / "src"),
            "--data.target", "folder", "--data.target_dir", str(root / "tgt")]


def build_track_set(root: Path) -> Path:
    """One generated sequence of four 64x64 frames in PoseTrack18 format (``annotations/train``)."""
    generate_dataset(root, n_sequences=1, n_frames=4, preset="crowded", seed=0, width=64, height=64, split="train")
    return root


def build_track_checkpoints(root: Path) -> tuple[Path, Path]:
    """A ``fit-parts`` and a ``fit`` checkpoint of the smallest networks (one step each)."""
    torch.manual_seed(0)
    parts = _fit(PartDetectorModule(**TINY, warmup_steps=1), root / "parts", 1)
    tracker = _fit(TrackerModule(str(parts), **TINY, warmup_steps=1, input_size=64), root / "tracker", 1)
    return parts, tracker


class PickledCode:
    """An object whose unpickling calls ``Path.touch(marker)``: a stand-in for code hidden in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[Path], None], tuple[Path]]:
        return Path.touch, (self.marker,)


def write_code_checkpoint(path: Path, marker: Path) -> Path:
    """A checkpoint-shaped file (``state_dict``, ``hyper_parameters``) that runs code when unpickled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {}, "hyper_parameters": {"network": {}}, "payload": PickledCode(marker)}, path)
    return path


@dataclass(frozen=True)
class World:
    """The shared inputs of the cases.

    Attributes:
        adapt_data: Root of :func:`build_adapt_folders`.
        track_data: Root of :func:`build_track_set`.
        adapt_ckpt: A checkpoint of ``adaptrack adapt fit`` on ``adapt_data``.
        parts_ckpt: A ``fit-parts`` checkpoint.
        tracker_ckpt: A ``fit`` checkpoint.
    """

    adapt_data: Path
    track_data: Path
    adapt_ckpt: Path
    parts_ckpt: Path
    tracker_ckpt: Path

    def frames(self) -> Path:
        """The frame folder of the generated sequence."""
        return next((self.track_data / "images" / "train").iterdir())


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes:
        id: Test id.
        system: ``adapt`` or ``track``.
        build: ``(world, case folder, output folder) -> (argv, texts)``: the command line (without
            the system) and the texts stderr must hold (the file, the frame or key, the problem).
    """

    id: str
    system: str
    build: Callable[[World, Path, Path], tuple[list[str], list[str]]]


# -- adapt -------------------------------------------------------------------------------------------------

def _adapt_copy(world: World, case: Path) -> Path:
    shutil.copytree(world.adapt_data / "src", case / "src")
    shutil.copytree(world.adapt_data / "tgt", case / "tgt")
    return case


def _adapt_fit(case: Path, out: Path, *extra: str) -> list[str]:
    return ["fit", *adapt_data_args(case), *ADAPT_TINY, "--trainer.default_root_dir", str(out), *extra]


def _broken_source_image(kind: str) -> Callable[[World, Path, Path], tuple[list[str], list[str]]]:
    def build(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
        _adapt_copy(world, case)
        good = case / "src" / "train" / "a" / "1.png"
        if kind == "zero-byte":
            bad = case / "src" / "train" / "a" / "0.png"
            bad.write_bytes(b"")
            return _adapt_fit(case, out), [str(bad), "unreadable", "cannot identify image file"]
        if kind == "truncated-png":
            bad = case / "src" / "train" / "a" / "0.png"
            bad.write_bytes(good.read_bytes()[:60])
            return _adapt_fit(case, out), [str(bad), "unreadable", "truncated"]
        if kind == "text-as-png":
            bad = case / "src" / "train" / "b" / "0.png"
            bad.write_text("this is not an image\n")
            return _adapt_fit(case, out), [str(bad), "cannot identify image file"]
        bad = case / "src" / "train" / "a" / "3.jpg"  # truncated JPEG
        Image.fromarray(np.random.default_rng(5).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(bad)
        bad.write_bytes(bad.read_bytes()[:400])
        return _adapt_fit(case, out), [str(bad), "unreadable", "Truncated"]

    return build


def _class_missing_in_labeled_target(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    _adapt_copy(world, case)
    labeled = case / "labeled"
    shutil.copytree(case / "src" / "test" / "a", labeled / "a")  # no folder of class b
    return (_adapt_fit(case, out, "--data.labeled_target.directory", str(labeled)),
            [str(labeled), "['b']", "no folder"])


def _empty_target_folder(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    _adapt_copy(world, case)
    for png in (case / "tgt" / "train").glob("*.png"):
        png.unlink()
    return _adapt_fit(case, out), [str(case / "tgt" / "train"), "no images"]


def _empty_class_folder(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    _adapt_copy(world, case)
    for png in (case / "src" / "train" / "b").glob("*.png"):
        png.unlink()
    return _adapt_fit(case, out), [str(case / "src" / "train" / "b"), "holds no images"]


def _idx(path: Path, magic: int, shape: tuple[int, ...], data: bytes) -> None:
    path.write_bytes(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in shape) + data)


def _mislabeled_mnist(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    mnist = case / "mnist"
    mnist.mkdir(parents=True)
    _adapt_copy(world, case)
    n = 4
    images = bytes(range(256)) * (n * 28 * 28 // 256 + 1)
    for split in ("train", "t10k"):
        # the image file's header says idx1 (a label file: 0x0801) of n values but holds n images
        _idx(mnist / f"{split}-images-idx3-ubyte", 0x0801, (n,), images[:n * 28 * 28])
        _idx(mnist / f"{split}-labels-idx1-ubyte", 0x0801, (n,), bytes([0, 1, 2, 3]))
    bad = mnist / "train-images-idx3-ubyte"
    return (["fit", "--data.source", "mnist", "--data.source_dir", str(mnist), "--data.target", "folder",
             "--data.target_dir", str(case / "tgt"), *ADAPT_TINY, "--trainer.default_root_dir", str(out)],
            [str(bad), "trailing bytes", "header declares shape (4,)"])


def _hdf5_missing_key(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    _adapt_copy(world, case)
    usps = case / "usps"
    usps.mkdir()
    with h5py.File(usps / "usps.h5", "w") as handle:  # train/target is missing
        handle.create_dataset("train/data", data=np.zeros((4, 256), dtype=np.float32))
        handle.create_dataset("test/data", data=np.zeros((4, 256), dtype=np.float32))
        handle.create_dataset("test/target", data=np.zeros(4, dtype=np.int64))
    return (["fit", "--data.source", "usps", "--data.source_dir", str(usps), "--data.target", "folder",
             "--data.target_dir", str(case / "tgt"), *ADAPT_TINY, "--trainer.default_root_dir", str(out)],
            [str(usps / "usps.h5"), "'train/target'"])


def _mat_without_x(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    _adapt_copy(world, case)
    svhn = case / "svhn"
    svhn.mkdir()
    for split in ("train", "test"):
        scipy.io.savemat(svhn / f"{split}_32x32.mat", {"y": np.ones((4, 1), dtype=np.uint8)})
    return (["fit", "--data.source", "svhn", "--data.source_dir", str(svhn), "--data.target", "folder",
             "--data.target_dir", str(case / "tgt"), *ADAPT_TINY, "--trainer.default_root_dir", str(out)],
            [str(svhn / "train_32x32.mat"), "'X'"])


def _nan_in_yaml(key: str, value: str) -> Callable[[World, Path, Path], tuple[list[str], list[str]]]:
    def build(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
        _adapt_copy(world, case)
        group, name = key.rsplit(".", 1)
        lines, indent = [], ""
        for part in group.split("."):
            lines.append(f"{indent}{part}:")
            indent += "  "
        lines.append(f"{indent}{name}: {value}")
        config = case / "bad.yaml"
        config.write_text("\n".join(lines) + "\n")
        return (["fit", "--config", str(config), *_adapt_fit(case, out)[1:]],
                [f"{key}={float(value.replace('.', ''))}", "finite"])

    return build


def _inf_on_command_line(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    _adapt_copy(world, case)
    return _adapt_fit(case, out, "--data.scale_max", ".inf"), ["data.scale_max=inf", "finite"]


def _dual_equal_thresholds(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    _adapt_copy(world, case)
    return (_adapt_fit(case, out, "--model.pseudo.masking", "dual", "--model.pseudo.threshold", "0.6",
                       "--model.pseudo.lower_threshold", "0.6"),
            ["model.pseudo.lower_threshold=0.6", "model.pseudo.threshold=0.6", "dual"])


def _adapt_output_under_a_file(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    _adapt_copy(world, case)
    blocker = case / "a_file"
    blocker.write_text("not a folder\n")
    return (["fit", *adapt_data_args(case), *ADAPT_TINY, "--trainer.default_root_dir", str(blocker / "out")],
            ["trainer.default_root_dir", str(blocker / "out"), "not a folder"])


def _adapt_output_read_only(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    _adapt_copy(world, case)
    locked = case / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return (["fit", *adapt_data_args(case), *ADAPT_TINY, "--trainer.default_root_dir", str(locked / "out")],
            ["trainer.default_root_dir", str(locked / "out"), "not writable"])


def _adapt_ckpt(subcommand: str, kind: str) -> Callable[[World, Path, Path], tuple[list[str], list[str]]]:
    def build(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
        _adapt_copy(world, case)
        texts = {"corrupt": "not a readable checkpoint", "truncated": "truncated",
                 "track": "checkpoint of `adaptrack track`", "code": "needs pickled code"}[kind]
        if kind == "track":
            ckpt = world.tracker_ckpt
        elif kind == "code":
            ckpt = write_code_checkpoint(case / "code.ckpt", case / "MARKER")
        else:
            ckpt = case / f"{kind}.ckpt"
            ckpt.write_bytes(b"\x00garbage" * 8 if kind == "corrupt" else world.adapt_ckpt.read_bytes()[:3000])
        if subcommand == "fit":
            argv = _adapt_fit(case, out, "--ckpt_path", str(ckpt))
        elif subcommand == "predict":
            argv = ["predict", "--ckpt_path", str(ckpt), "--data.predict_dir", str(case / "tgt" / "train"),
                    "--predictions.output", str(out / "predictions.csv"), "--trainer.default_root_dir", str(out)]
        else:
            argv = [subcommand, "--ckpt_path", str(ckpt), *adapt_data_args(case), "--trainer.default_root_dir",
                    str(out)]
        return argv, [str(ckpt), texts]

    return build


def _predict_zero_byte_image(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    _adapt_copy(world, case)
    bad = case / "tgt" / "train" / "2.png"
    bad.write_bytes(b"")
    return (["predict", "--ckpt_path", str(world.adapt_ckpt), "--data.predict_dir", str(case / "tgt" / "train"),
             "--predictions.output", str(out / "predictions.csv"), "--trainer.default_root_dir", str(out)],
            [str(bad), "unreadable"])


def _weights_only_false(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    _adapt_copy(world, case)
    return (_adapt_fit(case, out, "--ckpt_path", str(world.adapt_ckpt), "--weights_only", "false"),
            ["weights_only=false", "pickled"])


# -- track -------------------------------------------------------------------------------------------------

def _posetrack(mutate: Callable[[dict, Path], list[str]]) -> Callable[[World, Path, Path], tuple[list[str], list[str]]]:
    """A ``fit-parts`` run on a copy of the track set whose JSON ``mutate`` breaks; it returns the texts."""

    def build(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
        data = case / "data"
        shutil.copytree(world.track_data, data)
        path = next((data / "annotations" / "train").glob("*.json"))
        content = json.loads(path.read_text())
        texts = mutate(content, data)
        path.write_text(json.dumps(content))
        return (["fit-parts", "--data.train_dir", str(data), *TRACK_TINY, "--trainer.default_root_dir", str(out)],
                [str(path), *texts])

    return build


def _missing_key(content: dict, root: Path) -> list[str]:
    del content["annotations"]
    return ["top level", "'annotations'", "missing"]


def _missing_bbox(content: dict, root: Path) -> list[str]:
    ann = content["annotations"][1]
    del ann["bbox"], ann["keypoints"]
    return ["annotations[1]", "'bbox'", "missing"]


def _box(value: list[float], texts: list[str]) -> Callable[[dict, Path], list[str]]:
    def mutate(content: dict, root: Path) -> list[str]:
        content["annotations"][0]["bbox"] = value
        return ["annotations[0]", "frame 0", "'bbox'", *texts]

    return mutate


def _missing_frame(content: dict, root: Path) -> list[str]:
    frame = root / content["images"][2]["file_name"]
    frame.unlink()
    return ["images[2]", "frame 2", str(frame), "missing"]


def _truncated_frame(content: dict, root: Path) -> list[str]:
    frame = root / content["images"][1]["file_name"]
    frame.write_bytes(frame.read_bytes()[:200])
    return ["images[1]", "frame 1", str(frame), "unreadable"]


def _duplicate_image_id(content: dict, root: Path) -> list[str]:
    first = content["images"][0]["id"]
    content["images"][3]["id"] = first
    return ["images[3]", "'id'", f"duplicate image id {first}", "images[0]"]


def _track_nan_yaml(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    config = case / "bad.yaml"
    config.write_text("model:\n  lr: .nan\n")
    return (["fit-parts", "--config", str(config), "--data.train_dir", str(world.track_data), *TRACK_TINY,
             "--trainer.default_root_dir", str(out)], ["model.lr=nan", "finite"])


def _track_fit_output_under_a_file(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    blocker = case / "a_file"
    blocker.write_text("x\n")
    return (["fit-parts", "--data.train_dir", str(world.track_data), *TRACK_TINY,
             "--trainer.default_root_dir", str(blocker / "out")], ["trainer.default_root_dir", "not a folder"])


def _bad_ckpt(case: Path, world: World, kind: str) -> tuple[Path, str]:
    """A checkpoint of ``kind`` and the problem stderr must name."""
    if kind == "adapt":
        return world.adapt_ckpt, "not an adaptrack track checkpoint"
    if kind == "code":
        return write_code_checkpoint(case / "code.ckpt", case / "MARKER"), "needs pickled code"
    if kind == "parts":
        return world.parts_ckpt, "part-detector checkpoint"
    if kind == "tracker-for-parts":
        return world.tracker_ckpt, "checkpoint of `adaptrack track fit`"
    path = case / f"{kind}.ckpt"
    path.write_bytes(b"\x00garbage" * 8 if kind == "corrupt" else world.tracker_ckpt.read_bytes()[:2000])
    return path, "not a readable checkpoint" if kind == "corrupt" else "truncated"


def _track_ckpt(command: str, kind: str) -> Callable[[World, Path, Path], tuple[list[str], list[str]]]:
    def build(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
        ckpt, problem = _bad_ckpt(case, world, kind)
        frames = str(world.frames())
        fit = ["--data.train_dir", str(world.track_data), *TRACK_TINY, "--trainer.default_root_dir", str(out)]
        argv = {
            "run": ["run", "--checkpoint", str(ckpt), "--source", frames, "--box", "[10, 10, 20, 30]",
                    "--output", str(out)],
            "evaluate": ["evaluate", "--checkpoints", f"[{ckpt}]", "--data", str(world.track_data), "--split",
                         "train", "--output", str(out)],
            "export": ["export", "--checkpoint", str(ckpt), "--output", str(out)],
            "fit-part-checkpoint": ["fit", *fit, "--model.part_checkpoint", str(ckpt)],
            "fit-ckpt_path": ["fit", *fit, "--model.part_checkpoint", str(world.parts_ckpt), "--ckpt_path",
                              str(ckpt)],
            "fit-parts-ckpt_path": ["fit-parts", *fit, "--ckpt_path", str(ckpt)],
        }[command]
        return argv, [str(ckpt), problem]

    return build


def _track_output(command: str) -> Callable[[World, Path, Path], tuple[list[str], list[str]]]:
    def build(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
        blocker = case / "a_file"
        blocker.write_text("x\n")
        target = str(blocker / "out")
        argv = {
            "run": ["run", "--checkpoint", str(world.tracker_ckpt), "--source", str(world.frames()),
                    "--box", "[10, 10, 20, 30]", "--output", target],
            "evaluate": ["evaluate", "--checkpoints", f"[{world.tracker_ckpt}]", "--data", str(world.track_data),
                         "--split", "train", "--output", target],
            "export": ["export", "--checkpoint", str(world.tracker_ckpt), "--output", target],
        }[command]
        return argv, ["--output", target, "not a folder"]

    return build


def _video(kind: str) -> Callable[[World, Path, Path], tuple[list[str], list[str]]]:
    def build(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
        video = case / "clip.mp4"
        if kind == "zero-frames":
            video.write_bytes(b"")
            problem = "zero frames"
        else:
            video.write_text("not a video\n")
            problem = "cannot read frames"
        return (["run", "--checkpoint", str(world.tracker_ckpt), "--source", str(video), "--box", "[1, 1, 5, 5]",
                 "--output", str(out)], [str(video), problem])

    return build


def _run_zero_byte_frame(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    frames = case / "frames"
    shutil.copytree(world.frames(), frames)
    bad = sorted(frames.iterdir())[2]
    bad.write_bytes(b"")
    return (["run", "--checkpoint", str(world.tracker_ckpt), "--source", str(frames), "--box", "[10, 10, 20, 30]",
             "--output", str(out)], [str(bad), "unreadable"])


def _run_nan_setting(world: World, case: Path, out: Path) -> tuple[list[str], list[str]]:
    return (["run", "--checkpoint", str(world.tracker_ckpt), "--source", str(world.frames()),
             "--box", "[10, 10, 20, 30]", "--output", str(out), "--settings", "{gate: .nan}"],
            ["settings.gate=nan", "finite"])


CASES: list[Case] = [
    # adapt: image files
    Case("adapt-zero-byte-png", "adapt", _broken_source_image("zero-byte")),
    Case("adapt-truncated-png", "adapt", _broken_source_image("truncated-png")),
    Case("adapt-truncated-jpeg", "adapt", _broken_source_image("truncated-jpeg")),
    Case("adapt-text-named-png", "adapt", _broken_source_image("text-as-png")),
    Case("adapt-predict-zero-byte-png", "adapt", _predict_zero_byte_image),
    # adapt: folders
    Case("adapt-class-missing-in-labeled-target", "adapt", _class_missing_in_labeled_target),
    Case("adapt-empty-target-folder", "adapt", _empty_target_folder),
    Case("adapt-empty-class-folder", "adapt", _empty_class_folder),
    # adapt: data set files
    Case("adapt-mislabeled-mnist-idx-header", "adapt", _mislabeled_mnist),
    Case("adapt-hdf5-missing-key", "adapt", _hdf5_missing_key),
    Case("adapt-mat-without-X", "adapt", _mat_without_x),
    # adapt: config values
    Case("adapt-nan-in-yaml-model", "adapt", _nan_in_yaml("model.pseudo.threshold", ".nan")),
    Case("adapt-nan-in-yaml-data", "adapt", _nan_in_yaml("data.rotation", ".nan")),
    Case("adapt-inf-on-command-line", "adapt", _inf_on_command_line),
    Case("adapt-dual-masking-equal-thresholds", "adapt", _dual_equal_thresholds),
    Case("adapt-weights-only-false", "adapt", _weights_only_false),
    # adapt: output folder
    Case("adapt-output-under-a-file", "adapt", _adapt_output_under_a_file),
    Case("adapt-output-read-only", "adapt", _adapt_output_read_only),
    # adapt: checkpoints
    *[Case(f"adapt-{sub}-{kind}-checkpoint", "adapt", _adapt_ckpt(sub, kind))
      for sub, kind in [("fit", "corrupt"), ("fit", "track"), ("validate", "truncated"), ("test", "code"),
                        ("predict", "corrupt"), ("predict", "track")]],
    # track: PoseTrack18 JSON and frames
    Case("track-json-missing-key", "track", _posetrack(_missing_key)),
    Case("track-json-missing-bbox", "track", _posetrack(_missing_bbox)),
    Case("track-json-negative-box", "track", _posetrack(_box([10, 10, -5, 20], ["zero or negative size"]))),
    Case("track-json-zero-size-box", "track", _posetrack(_box([10, 10, 0, 20], ["zero or negative size"]))),
    Case("track-json-out-of-image-box", "track", _posetrack(_box([500, 500, 10, 20], ["outside the 64x64"]))),
    Case("track-json-frame-does-not-exist", "track", _posetrack(_missing_frame)),
    Case("track-json-truncated-frame", "track", _posetrack(_truncated_frame)),
    Case("track-json-duplicate-image-id", "track", _posetrack(_duplicate_image_id)),
    # track: videos and frames
    Case("track-run-video-with-zero-frames", "track", _video("zero-frames")),
    Case("track-run-text-named-mp4", "track", _video("text")),
    Case("track-run-zero-byte-frame", "track", _run_zero_byte_frame),
    # track: config values and output folders
    Case("track-nan-in-yaml", "track", _track_nan_yaml),
    Case("track-run-nan-setting", "track", _run_nan_setting),
    Case("track-fit-output-under-a-file", "track", _track_fit_output_under_a_file),
    *[Case(f"track-{cmd}-output-under-a-file", "track", _track_output(cmd)) for cmd in ("run", "evaluate", "export")],
    # track: checkpoints
    *[Case(f"track-{cmd}-{kind}-checkpoint", "track", _track_ckpt(cmd, kind))
      for cmd, kind in [("run", "corrupt"), ("run", "truncated"), ("run", "adapt"), ("run", "code"),
                        ("evaluate", "adapt"), ("evaluate", "truncated"), ("export", "adapt"),
                        ("export", "parts"), ("fit-part-checkpoint", "adapt"),
                        ("fit-part-checkpoint", "truncated"), ("fit-ckpt_path", "adapt"),
                        ("fit-ckpt_path", "corrupt"), ("fit-parts-ckpt_path", "tracker-for-parts"),
                        ("fit-parts-ckpt_path", "code")]],
]
"""Every bad input of the matrix."""

NEEDS_NON_ROOT = {"adapt-output-read-only"}
"""Cases that permission bits cannot show to root (``chmod`` does not stop root)."""


def is_root() -> bool:
    """Whether the tests run as root (where ``chmod 0o500`` does not block writing)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0
