"""Disk-backed image folders: layouts by name, the memory/disk choice, streamed batches (shapes, order,
resume skip, rank shards, bad files) and a short ``adaptrack adapt fit`` streaming from disk."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from adaptrack.adapt.batch import AdaptBatch, RawBatch
from adaptrack.adapt.cli import main
from adaptrack.adapt.data.augment import IMAGENET_MEAN, IMAGENET_STD, imagenet_affine, to_float
from adaptrack.adapt.data.base import FileSet, ImageSet
from adaptrack.adapt.data.datamodule import DomainAdaptationDataModule, OversampleConfig, PairedBatches
from adaptrack.adapt.data.registry import index_dataset, load_dataset
from adaptrack.adapt.data.stream import (
    ImageReader,
    StreamConfig,
    StreamingEval,
    StreamingPairs,
    centre_box,
    crop_box,
    epoch_draws,
)
from adaptrack.adapt.module import DomainAdaptationModule
from adaptrack.common.errors import ConfigError, DataError
from adaptrack.common.resume import ResumableSampler

CLASSES = ("back_pack", "bike", "mug")


def write_office(root: Path, per_class: int = 8, domains: tuple[str, ...] = ("amazon", "webcam"),
                 images_dir: bool = False) -> Path:
    """``root/<domain>/[images/]<class>/NNN.jpg``: tiny JPEGs of several sizes, a colour per class and domain."""
    rng = np.random.default_rng(0)
    for d, domain in enumerate(domains):
        for c, cls in enumerate(CLASSES):
            folder = root / domain / ("images" if images_dir else "") / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                h, w = 18 + i % 5, 22 + 3 * (i % 4)
                colour = np.array([40 + 80 * c, 50 + 60 * d, 210 - 70 * c], np.uint8)
                pixels = colour + rng.integers(0, 25, (h, w, 3)).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i:03d}.jpg", quality=90)
    return root


def office_module(root: Path, cache: str = "disk", workers: int = 0, **options: object) -> DomainAdaptationDataModule:
    settings: dict[str, object] = {"batch_size": 6, "eval_batch_size": 10, "steps_per_epoch": 5, "image_size": 16}
    settings.update(options)
    return DomainAdaptationDataModule(
        source="office31", target="office31", source_dir=str(root), target_dir=str(root), source_domain="amazon",
        target_domain="webcam", channels=3, stream=StreamConfig(cache=cache, num_workers=workers),  # type: ignore[arg-type]
        **settings)  # type: ignore[arg-type]


def batches(loader: DataLoader) -> list[RawBatch]:
    return list(loader)


def same(a: list[RawBatch], b: list[RawBatch]) -> bool:
    fields = ("source", "source_labels", "target", "target_report_labels", "target_index", "labeled",
              "labeled_labels", "source_index")
    return len(a) == len(b) and all(torch.equal(getattr(x, f), getattr(y, f)) for x, y in zip(a, b, strict=True)
                                    for f in fields)


# -- layouts by name ---------------------------------------------------------------------------
@pytest.mark.parametrize("images_dir", [False, True], ids=["domain-class", "domain-images-class"])
def test_office31_lists_a_domain_with_classes_by_folder_name(tmp_path: Path, images_dir: bool) -> None:
    write_office(tmp_path, per_class=4, images_dir=images_dir)
    files = index_dataset("office31", "train", directory=tmp_path, domain="webcam")
    assert isinstance(files, FileSet) and len(files) == 12
    assert files.classes == sorted(CLASSES) and files.labels is not None
    assert all(Path(f).parent.name == files.classes[k] for f, k in zip(files.files, files.labels.tolist(), strict=True))
    assert all("/webcam/" in f for f in files.files)
    decoded = load_dataset("office_home", "test", directory=tmp_path, domain="amazon", image_size=8, channels=3)
    assert decoded.images.shape == (12, 3, 8, 8) and decoded.images.dtype == torch.uint8


def test_a_missing_domain_names_the_folder_and_the_domains_there(tmp_path: Path) -> None:
    write_office(tmp_path, per_class=1)
    with pytest.raises(DataError, match=r"dslr.*domains there: \['amazon', 'webcam'\]"):
        index_dataset("office31", "train", directory=tmp_path, domain="dslr")
    with pytest.raises(DataError, match="needs a domain"):
        index_dataset("office_home", "train", directory=tmp_path)


def write_visda(root: Path, lines: list[str]) -> Path:
    for cls in ("bicycle", "aeroplane"):
        (root / "train" / cls).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            Image.fromarray(np.full((9, 9, 3), 10 * i, np.uint8)).save(root / "train" / cls / f"{i}.png")
    (root / "train" / "image_list.txt").write_text("\n".join(lines) + "\n")
    return root


def test_visda_image_list_gives_classes_by_folder_name_sorted(tmp_path: Path) -> None:
    write_visda(tmp_path, ["bicycle/0.png 0", "bicycle/1.png 0", "aeroplane/0.png 1", "aeroplane/1.png 1"])
    files = index_dataset("visda2017", "train", directory=tmp_path, domain="train")
    assert isinstance(files, FileSet) and files.classes == ["aeroplane", "bicycle"]
    assert files.labels is not None and files.labels.tolist() == [1, 1, 0, 0]  # re-indexed to sorted names


@pytest.mark.parametrize(("lines", "message"), [
    (["bicycle/0.png 0", "aeroplane/0.png 0"], "label 0 is folder 'aeroplane' here but 'bicycle'"),
    (["bicycle/0.png zero"], "is not '<path> <integer label>'"),
    (["bicycle/7.png 0"], "listed on line 1"),
], ids=["two-folders-one-label", "bad-label", "missing-file"])
def test_visda_bad_lists_name_the_file_and_line(tmp_path: Path, lines: list[str], message: str) -> None:
    write_visda(tmp_path, lines)
    with pytest.raises(DataError, match=message):
        index_dataset("visda2017", "train", directory=tmp_path, domain="train")


# -- memory or disk ----------------------------------------------------------------------------
def test_auto_keeps_tiny_sets_in_memory_and_streams_above_the_threshold(tmp_path: Path) -> None:
    write_office(tmp_path, per_class=4)
    assert StreamConfig(cache="auto", cache_limit_mb=1.0).in_memory(1000, 3, 16)  # 768,000 bytes
    assert not StreamConfig(cache="auto", cache_limit_mb=0.5).in_memory(1000, 3, 16)
    small = office_module(tmp_path, cache="auto")
    assert isinstance(small.image_set("source", "train"), ImageSet)
    big = DomainAdaptationDataModule(
        source="office31", target="office31", source_dir=str(tmp_path), target_dir=str(tmp_path),
        source_domain="amazon", target_domain="webcam", channels=3, image_size=16,
        stream=StreamConfig(cache="auto", cache_limit_mb=12 * 3 * 16 * 16 / 2**20 - 1e-6))  # one byte short
    assert isinstance(big.image_set("source", "train"), FileSet)
    assert isinstance(big.image_set("target", "test"), FileSet)
    with pytest.raises(ConfigError, match=r"data\.stream\.cache"):
        StreamConfig(cache="ram")  # type: ignore[arg-type]


def test_streamed_and_in_memory_batches_have_the_same_shapes_dtypes_and_indices(tmp_path: Path) -> None:
    write_office(tmp_path)
    disk, memory = office_module(tmp_path, "disk"), office_module(tmp_path, "memory")
    d_batches, m_batches = batches(disk.train_dataloader()), batches(memory.train_dataloader())
    assert len(d_batches) == len(m_batches) == 5
    for d, m in zip(d_batches, m_batches, strict=True):
        assert d.source.shape == m.source.shape == (6, 3, 16, 16) and d.source.dtype == m.source.dtype == torch.uint8
        assert d.target.shape == (6, 3, 16, 16) and d.labeled.shape == (0, 3, 16, 16)
        assert torch.equal(d.source_index, m.source_index) and torch.equal(d.target_index, m.target_index)
        assert torch.equal(d.source_labels, m.source_labels) and d.source_labels.dtype == torch.int64
        assert torch.equal(d.target_report_labels, m.target_report_labels)
    batch = disk.on_after_batch_transfer(d_batches[0], 0)
    assert isinstance(batch, AdaptBatch)
    strong = batch.strong_target()  # made on first read
    assert batch.source.dtype == strong.dtype == torch.float32
    assert batch.target.shape == strong.shape == (6, 3, 16, 16)
    images, labels = next(iter(disk.val_dataloader()[1]))
    assert images.shape == (10, 3, 16, 16) and images.dtype == torch.uint8 and labels.dtype == torch.int64


def test_rgb_photos_get_imagenet_normalisation_inside_the_model(tmp_path: Path) -> None:
    write_office(tmp_path, per_class=2)
    assert office_module(tmp_path).input_norm == "imagenet"
    assert DomainAdaptationDataModule(channels=1).input_norm == "symmetric"
    with pytest.raises(ConfigError, match="needs RGB"):
        DomainAdaptationDataModule(channels=1, normalize="imagenet")
    pixels = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)  # (B, C, H, W)
    scale, shift = imagenet_affine()
    mapped = to_float(pixels) * scale.view(1, 3, 1, 1) + shift.view(1, 3, 1, 1)
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.allclose(mapped, (pixels.float() / 255 - mean) / std, atol=1e-5)
    model = DomainAdaptationModule(num_classes=3, in_channels=3, image_size=32, input_norm="imagenet",
                                   network={"preset": "dtn", "conv_channels": (4, 4, 4)})  # type: ignore[arg-type]
    model.eval()
    seen: list[torch.Tensor] = []
    model.net.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    model(to_float(torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)))
    white = (1 - mean) / std  # what a white pixel becomes
    model(torch.ones(1, 3, 32, 32))
    assert torch.allclose(seen[-1][0, :, 0, 0], white.flatten(), atol=1e-5)
    with pytest.raises(ConfigError, match="input_norm"):
        DomainAdaptationModule(in_channels=1, input_norm="imagenet")


# -- transforms ----------------------------------------------------------------------------------
def test_crop_boxes_stay_inside_the_image_and_follow_the_seed() -> None:
    for seed in range(50):
        box = crop_box(37, 21, np.random.default_rng(seed), (0.3, 1.0), (0.75, 4 / 3))
        left, top, right, bottom = box
        assert 0 <= left < right <= 37 and 0 <= top < bottom <= 21
        assert box == crop_box(37, 21, np.random.default_rng(seed), (0.3, 1.0), (0.75, 4 / 3))
    assert centre_box(40, 20, 1.25) == (12.0, 2.0, 28.0, 18.0)


def test_training_crops_flip_and_evaluation_is_the_centre(tmp_path: Path) -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, 20:] = 255  # right half white
    path = tmp_path / "half.png"
    Image.fromarray(pixels).save(path)
    reader = ImageReader(3, 8, StreamConfig(crop_scale=(1.0, 1.0), crop_ratio=(2.0, 2.0), flip=True))
    centre = reader.decode(str(path), None)  # (3, 8, 8): the centre square, left dark, right light
    assert centre.shape == (3, 8, 8) and centre.dtype == torch.uint8
    assert int(centre[:, :, 0].max()) < 30 and int(centre[:, :, -1].min()) > 225
    crops = [reader.decode(str(path), np.random.default_rng(s)) for s in range(12)]  # whole image, maybe flipped
    flipped = [bool(c[0, 0, 0] > 128) for c in crops]
    assert any(flipped) and not all(flipped)
    gray = ImageReader(1, 8, StreamConfig()).decode(str(path), None)
    assert gray.shape == (1, 8, 8)


# -- order, resume skip, rank shards ------------------------------------------------------------
def test_order_is_a_function_of_seed_and_epoch_whatever_the_workers(tmp_path: Path) -> None:
    write_office(tmp_path)
    epoch = [0]
    loaders = {}
    for workers in (0, 2):
        dm = office_module(tmp_path, workers=workers)
        dm._position = lambda: (epoch[0], 0)  # type: ignore[method-assign]
        loaders[workers] = dm.train_dataloader()
    first = batches(loaders[0])
    assert same(first, batches(loaders[2]))  # 0 vs 2 workers: the same images, crops and order
    assert same(first, batches(loaders[2]))  # persistent workers, next iterator: the same epoch again
    epoch[0] = 1
    second = batches(loaders[2])
    assert not torch.equal(first[0].source_index, second[0].source_index)
    assert same(second, batches(loaders[0]))
    other = office_module(tmp_path, seed=1)
    assert not same(first, batches(other.train_dataloader()))


def test_streamed_order_is_the_in_memory_order() -> None:
    images = torch.zeros(30, 1, 2, 2, dtype=torch.uint8)
    source = ImageSet(images, torch.arange(30) % 3, ["a", "b", "c"], "s")
    target = ImageSet(images[:20], None, ["a", "b", "c"], "t")
    paired = list(PairedBatches(source, target, 4, 9, seed=3))
    d = epoch_draws(30, 20, 0, 4, 0, 9, seed=3, epoch=0)
    assert all(torch.equal(b.source_index, d.source[s]) and torch.equal(b.target_index, d.target[s])
               for s, b in enumerate(paired))


def streaming_set(root: Path, rank: int = 0, world: int = 1, batch: int = 4) -> StreamingPairs:
    dm = office_module(root)
    sets = dm.training_sets()
    return StreamingPairs(sets["source"], sets["target"], batch, 5, 7, dm.reader, rank=rank, world=world)


def test_a_mid_epoch_restart_yields_the_rest_of_the_epoch(tmp_path: Path) -> None:
    write_office(tmp_path)
    data = streaming_set(tmp_path)
    full = list(DataLoader(data, batch_size=None, sampler=ResumableSampler(data, 1, lambda: (2, 0)), num_workers=2))
    rest = list(DataLoader(data, batch_size=None, sampler=ResumableSampler(data, 1, lambda: (2, 3)), num_workers=2))
    assert len(full) == 5 and len(rest) == 2
    assert same(rest, full[3:])


def test_ranks_read_their_slices_of_the_one_process_batches(tmp_path: Path) -> None:
    write_office(tmp_path)
    one = streaming_set(tmp_path, batch=8)
    ranks = [streaming_set(tmp_path, rank, 2, batch=4) for rank in (0, 1)]
    for step in range(5):
        whole = one[(0, step)]
        parts = [r[(0, step)] for r in ranks]
        assert torch.equal(torch.cat([p.source_index for p in parts]), whole.source_index)
        assert torch.equal(torch.cat([p.target_index for p in parts]), whole.target_index)
        assert torch.equal(torch.cat([p.source for p in parts]), whole.source)  # crops seeded by global position
    samplers = [ResumableSampler(r, 1, lambda: (0, 0), rank, 2) for rank, r in enumerate(ranks)]
    assert [len(s) for s in samplers] == [5, 5]  # every rank steps the whole epoch


def test_evaluation_shards_partition_the_set_in_order(tmp_path: Path) -> None:
    write_office(tmp_path)
    dm = office_module(tmp_path)
    target = dm.image_set("target", "test")
    assert isinstance(target, FileSet) and target.labels is not None
    whole = list(DataLoader(StreamingEval(target, target.labels, 5, dm.reader), batch_size=None, num_workers=2))
    parts = [list(DataLoader(StreamingEval(target, target.labels, 5, dm.reader, rank, 2), batch_size=None,
                             num_workers=2)) for rank in (0, 1)]
    assert [x.shape[0] for x, _ in whole] == [5] * 4 + [4]
    flat = [b for part in parts for b in part]
    assert len(flat) == len(whole)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(flat, whole, strict=True))
    assert torch.equal(torch.cat([y for _, y in whole]), target.labels)


# -- bad files and unsupported options -----------------------------------------------------------
def test_a_bad_file_raises_naming_it_or_is_replaced_with_skip_bad(tmp_path: Path) -> None:
    write_office(tmp_path)
    bad = tmp_path / "amazon" / "bike" / "003.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"003\.jpg"):
        batches(office_module(tmp_path, workers=2).train_dataloader())
    dm = office_module(tmp_path, skip_bad=True)
    with pytest.warns(UserWarning, match=r"003\.jpg"):
        read = batches(dm.train_dataloader())
    assert len(read) == 5
    source = dm.training_sets()["source"]
    assert isinstance(source, FileSet)
    bad_index = source.files.index(str(bad))
    assert all(bad_index not in b.source_index.tolist() for b in read)  # its next file was read instead


def test_oversampling_a_streamed_set_is_refused_with_the_keys(tmp_path: Path) -> None:
    write_office(tmp_path, per_class=2)
    dm = office_module(tmp_path, oversample=OversampleConfig(source=True))
    with pytest.raises(ConfigError, match=r"data.oversample.source.*data.stream.cache=memory"):
        dm.training_sets()


# -- a short fit -----------------------------------------------------------------------------------
def test_fit_streams_an_office_layout_from_disk_with_two_workers(tmp_path: Path) -> None:
    write_office(tmp_path / "office")
    out = tmp_path / "run"
    code = main(["fit", "--data.source", "office31", "--data.target", "office31",
                 "--data.source_dir", str(tmp_path / "office"), "--data.target_dir", str(tmp_path / "office"),
                 "--data.source_domain", "amazon", "--data.target_domain", "webcam", "--data.channels", "3",
                 "--data.image_size", "32", "--data.stream.cache", "disk", "--data.stream.num_workers", "2",
                 "--data.batch_size", "8", "--data.steps_per_epoch", "3", "--data.eval_batch_size", "16",
                 "--model.network.preset", "dtn", "--model.network.conv_channels", "[4, 8, 8]",
                 "--model.network.class_hidden", "[16]", "--model.network.domain_hidden", "[16]",
                 "--model.pseudo.scope", "epoch", "--model.gate.start_ratio", "0.0", "--model.pseudo.threshold", "0.0",
                 "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false",
                 "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(out)])
    assert code == 0
    report = json.loads(next(out.rglob("report.json")).read_text())
    assert report["steps"] == 6 and report["source"] == "office31"
    assert report["training_sets"]["source"]["loaded"] == [8, 8, 8]
    ckpt = torch.load(next(out.rglob("last.ckpt")), map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["input_norm"] == "imagenet"


def test_sigkill_then_resume_of_a_streamed_run_ends_with_the_uninterrupted_weights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_exact_resume import COMMON, KILL_STEP, _kill_during, _last

    monkeypatch.chdir(tmp_path)
    write_office(tmp_path / "office")
    args = ["fit", "--data.source", "office31", "--data.target", "office31",
            "--data.source_dir", str(tmp_path / "office"), "--data.target_dir", str(tmp_path / "office"),
            "--data.source_domain", "amazon", "--data.target_domain", "webcam", "--data.channels", "3",
            "--data.image_size", "16", "--data.stream.cache", "disk", "--data.stream.num_workers", "2",
            "--data.batch_size", "6", "--data.steps_per_epoch", "3", "--data.eval_batch_size", "16",
            "--data.labeled_target.per_class", "1", "--model.network.preset", "lenet",
            "--model.network.conv_channels", "[4, 8]", "--model.network.class_hidden", "[16]",
            "--model.network.domain_hidden", "[16]", "--model.pseudo.scope", "epoch", "--model.gate.start_ratio",
            "0.3", "--model.pseudo.threshold", "0.0", *COMMON]
    assert main([*args, "--trainer.default_root_dir", "full"]) == 0
    _kill_during("adapt", [*args, "--trainer.default_root_dir", "killed"], tmp_path)
    assert 0 < _last(tmp_path / "killed")["global_step"] <= KILL_STEP
    last = tmp_path / "killed" / "logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert main([*args, "--trainer.default_root_dir", "killed", "--ckpt_path", str(last)]) == 0
    full, resumed = _last(tmp_path / "full"), _last(tmp_path / "killed")
    assert full["global_step"] == resumed["global_step"] == 9
    for key, value in full["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key


def test_two_ddp_processes_stream_disjoint_shares_of_each_epoch(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    write_office(tmp_path / "office", per_class=12)
    run = ["adapt", "fit", "--data.source", "office31", "--data.target", "office31",
           "--data.source_dir", str(tmp_path / "office"), "--data.target_dir", str(tmp_path / "office"),
           "--data.source_domain", "amazon", "--data.target_domain", "webcam", "--data.channels", "3",
           "--data.image_size", "16", "--data.stream.cache", "disk", "--data.stream.num_workers", "1",
           "--data.batch_size", "6", "--data.steps_per_epoch", "3", "--data.eval_batch_size", "8",
           "--model.network.conv_channels", "[4, 8]", "--model.network.class_hidden", "[16]",
           "--model.network.domain_hidden", "[16]", "--model.pseudo.scope", "epoch", "--trainer.max_epochs", "2",
           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
           "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.devices", "2",
           "--trainer.default_root_dir", str(tmp_path / "run"),
           "--trainer.callbacks+=tests.helpers.ddp_record.RecordRanks", "--trainer.callbacks.out",
           str(tmp_path / "records")]
    (tmp_path / "runs.json").write_text(json.dumps([run]))
    path = os.pathsep.join([str(root), str(root / "src"), os.environ.get("PYTHONPATH", "")])
    script = root / "tests" / "helpers" / "ddp_runs.py"
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "runs.json")], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [[json.loads(line) for line in (tmp_path / "records" / f"rank{r}.jsonl").read_text().splitlines()]
               for r in (0, 1)]
    for epoch in (0, 1):
        for which in (0, 1):  # source indices, target pool indices
            shares = [[i for rec in rank if rec.get("kind") == "train" and rec["epoch"] == epoch
                       for i in rec["items"][which]] for rank in records]
            assert len(shares[0]) == len(shares[1]) == 3 * 6
            assert len(set(shares[0] + shares[1])) == 36  # 36 images per domain: one permutation, split in two
