"""Streaming image files from disk: decoding, random-resized-crop / flip or centre crop in ``DataLoader`` workers.

A split listed as a :class:`~adaptrack.adapt.data.base.FileSet` is never held in memory: each
worker process opens, decodes (Pillow), crops and resizes the images of the batches it is given and
sends back uint8 ``(B, C, S, S)`` tensors; the main process holds only file names and labels, so its
memory is flat whatever the size of the set. Batches are the same :class:`~adaptrack.adapt.batch.RawBatch`
as the in-memory path, so ``on_after_batch_transfer`` (kornia weak/strong views, scaling) is unchanged.

Exact resume and DDP: the training set is map-style over the *steps* of an epoch, sampled by
:class:`~adaptrack.common.resume.ResumableSampler` (which skips the steps already trained after a
restart); a step's image indices come from ``(seed, epoch)`` exactly as
:class:`~adaptrack.adapt.data.datamodule.PairedBatches` draws them (same permutations, same rank
slices), and each image's crop and flip from a generator seeded by ``(seed, epoch, step, set,
position in the global batch)``: nothing depends on the worker, the number of workers or the
global generators.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from adaptrack.adapt.batch import RawBatch
from adaptrack.adapt.data.base import AnySet, FileSet, ImageSet
from adaptrack.common.distributed import batch_shard
from adaptrack.common.errors import ConfigError, DataError
from adaptrack.common.images import decode_image

CacheMode = Literal["auto", "memory", "disk"]
"""``memory``: decode every image once and keep the split as uint8 (today's path); ``disk``: stream it;
``auto``: memory when the split's estimated size (images × C × S × S bytes) is at most ``cache_limit_mb``."""

SOURCE, TARGET, LABELED = 0, 1, 2
"""Codes of the three training sets in the crop seeds."""


@dataclass(frozen=True)
class StreamConfig:
    """How sets of image files are read: cached in memory or streamed from disk, and the streaming transforms.

    Attributes:
        cache: ``auto``, ``memory`` or ``disk`` (see :data:`CacheMode`). Archive formats (MNIST, USPS, …)
            are always in memory.
        cache_limit_mb: ``auto`` keeps a split in memory up to this estimated size (MiB, per split).
        num_workers: ``DataLoader`` worker processes that decode streamed images (0: in the main process).
        crop_scale: Random-resized-crop area range (fraction of the image) of streamed training images.
        crop_ratio: Its aspect-ratio range (width / height).
        flip: Random horizontal flip of streamed training images.
        eval_resize: Streamed evaluation images: the shorter side is resized to ``image_size × eval_resize``,
            then the centre ``image_size × image_size`` is kept (256/224 = 1.143 as for ImageNet).
    """

    cache: CacheMode = "auto"
    cache_limit_mb: float = 1024.0
    num_workers: int = 2
    crop_scale: tuple[float, float] = (0.35, 1.0)
    crop_ratio: tuple[float, float] = (0.75, 4.0 / 3.0)
    flip: bool = True
    eval_resize: float = 1.143

    def __post_init__(self) -> None:
        if self.cache not in ("auto", "memory", "disk"):
            raise ConfigError(f"data.stream.cache={self.cache!r} must be 'auto', 'memory' or 'disk'")
        if not (math.isfinite(self.cache_limit_mb) and self.cache_limit_mb >= 0):
            raise ConfigError(f"data.stream.cache_limit_mb={self.cache_limit_mb} must be a number >= 0")
        if self.num_workers < 0:
            raise ConfigError(f"data.stream.num_workers={self.num_workers} must be >= 0")
        for key, lo_min in (("crop_scale", 0.0), ("crop_ratio", 0.0)):
            value = tuple(float(v) for v in getattr(self, key))
            object.__setattr__(self, key, value)
            if len(value) != 2 or not all(math.isfinite(v) for v in value) or not lo_min < value[0] <= value[1]:
                raise ConfigError(f"data.stream.{key}={list(value)} must be [low, high] with 0 < low <= high")
        if self.crop_scale[1] > 1.0:
            raise ConfigError(f"data.stream.crop_scale={list(self.crop_scale)}: the high end must be <= 1")
        if not (math.isfinite(self.eval_resize) and self.eval_resize >= 1.0):
            raise ConfigError(f"data.stream.eval_resize={self.eval_resize} must be >= 1")

    def in_memory(self, n: int, channels: int, size: int) -> bool:
        """Whether a split of ``n`` images is cached in memory (``auto``: by its estimated uint8 bytes)."""
        if self.cache != "auto":
            return self.cache == "memory"
        return n * channels * size * size <= self.cache_limit_mb * 2**20


def crop_box(width: int, height: int, rng: np.random.Generator, scale: tuple[float, float],
             ratio: tuple[float, float]) -> tuple[int, int, int, int]:
    """A random-resized-crop box ``(left, top, right, bottom)`` (the Inception / torchvision rule).

    Up to ten draws of an area fraction in ``scale`` and a log-uniform aspect ratio in ``ratio``;
    the first that fits is placed uniformly; otherwise the largest centred box within ``ratio``.
    """
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, round(width / ratio[0])
    elif aspect > ratio[1]:
        w, h = round(height * ratio[1]), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def centre_box(width: int, height: int, resize: float) -> tuple[float, float, float, float]:
    """The box of the centre crop after resizing the shorter side to ``resize`` times the output side."""
    side = min(width, height) / resize
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


class PackedPaths(Sequence[str]):
    """File names in one NumPy byte array: worker processes read them without touching a Python object
    per name (a list of ``str`` is copied page by page into every forked worker as its reference counts
    change, which grows with the set's size).

    Args:
        files: The paths.
    """

    def __init__(self, files: Sequence[str]) -> None:
        self.names = np.array([os.fsencode(f) for f in files])  # (N,) fixed-width bytes

    def __len__(self) -> int:
        return int(self.names.shape[0])

    def __getitem__(self, index: int) -> str:  # type: ignore[override]
        return os.fsdecode(self.names[index])


@dataclass(frozen=True)
class ImageReader:
    """Decodes one image file to ``(C, S, S)`` uint8: a random-resized crop (+ flip) or the centre crop.

    Attributes:
        channels: 1 (luminance) or 3 (RGB).
        size: Output side ``S``.
        config: Crop and flip settings.
        skip_bad: An unreadable file is replaced by the next readable one of its set (its label too),
            with a warning, instead of raising.
    """

    channels: int
    size: int
    config: StreamConfig
    skip_bad: bool = False

    def decode(self, path: str, rng: np.random.Generator | None) -> torch.Tensor:
        """``(C, S, S)`` uint8 of ``path``: training crop when ``rng`` is given, else the evaluation crop.

        Raises:
            DataError: The file is missing or unreadable (naming it).
        """
        array, _ = decode_image(path, "L" if self.channels == 1 else "RGB")  # (H, W[, 3]) uint8
        image = Image.fromarray(array)
        c = self.config
        if rng is None:
            box: tuple[float, float, float, float] = centre_box(image.width, image.height, c.eval_resize)
        else:
            box = crop_box(image.width, image.height, rng, c.crop_scale, c.crop_ratio)
        out = np.asarray(image.resize((self.size, self.size), Image.Resampling.BILINEAR, box=box))  # (S, S[, 3])
        if rng is not None and c.flip and rng.random() < 0.5:
            out = out[:, ::-1]
        if out.ndim == 2:
            out = out[:, :, None]  # (S, S, 1)
        return torch.from_numpy(np.array(out)).permute(2, 0, 1)  # (C, S, S), a writable copy

    def read(self, files: Sequence[str], index: int, rng: np.random.Generator | None) -> tuple[torch.Tensor, int]:
        """Image ``index`` of ``files`` and the index actually read (another one after a bad file with ``skip_bad``).

        Raises:
            DataError: The file is unreadable and ``skip_bad`` is off, or no file of the set is readable.
        """
        for attempt in range(len(files)):
            j = (index + attempt) % len(files)
            try:
                return self.decode(files[j], rng), j
            except DataError as exc:
                if not self.skip_bad:
                    raise
                warnings.warn(f"skipped an unreadable image, reading the next one instead: {exc}", UserWarning,
                              stacklevel=2)
        raise DataError(f"no readable image among {len(files)} file(s), e.g. {files[0]}")


def take_images(data: AnySet | PackedPaths, index: torch.Tensor, reader: ImageReader,
                seeds: list[list[int]] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``index`` of a set as ``(B, C, S, S)`` uint8, and the indices actually read ``(B,)``.

    An in-memory set is indexed as is; files (a set on disk or its :class:`PackedPaths`) are decoded,
    image ``b`` cropped with a generator seeded by ``seeds[b]`` (training) or centre-cropped
    (``seeds`` ``None``).
    """
    if isinstance(data, ImageSet):
        return data.images[index], index
    files = data.files if isinstance(data, FileSet) else data
    images: list[torch.Tensor] = []
    read: list[int] = []
    for b, i in enumerate(index.tolist()):
        rng = None if seeds is None else np.random.default_rng(seeds[b])
        image, j = reader.read(files, i, rng)
        images.append(image)
        read.append(j)
    if not images:
        return torch.empty(0, reader.channels, reader.size, reader.size, dtype=torch.uint8), index
    return torch.stack(images), torch.tensor(read, dtype=torch.int64)  # (B, C, S, S), (B,)


def _draws(n: int, size: int, world: int, rank: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """This rank's slices of size ``size`` of global batches of ``size * world`` indices of ``range(n)``."""
    total = size * world
    mine = slice(rank * size, (rank + 1) * size)
    while True:
        if n < total:  # tiny sets: sample with replacement
            yield torch.randint(n, (total,), generator=generator)[mine]
            continue
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n - total + 1, total):
            yield perm[start:start + total][mine]


@dataclass(frozen=True)
class EpochDraws:
    """The image indices of every step of one epoch on one rank.

    Attributes:
        source: ``(steps, B)`` int64 indices into the source set.
        target: ``(steps, B)`` int64 indices into the unlabeled target pool.
        labeled: ``(steps, Bl)`` int64 indices into the labeled target set, or ``None``.
    """

    source: torch.Tensor
    target: torch.Tensor
    labeled: torch.Tensor | None


def epoch_draws(n_source: int, n_target: int, n_labeled: int, batch_size: int, labeled_batch_size: int, steps: int,
                seed: int, epoch: int, rank: int = 0, world: int = 1) -> EpochDraws:
    """Indices of each step of epoch ``epoch``: a function of ``(seed, epoch)`` and the rank only.

    The three sets are drawn without replacement, independently (a fresh permutation when one is used
    up; a set smaller than its global batch with replacement), interleaved step by step from one
    generator seeded by ``(seed, epoch)``. Every rank draws the same permutations and keeps its own
    slice of each global batch of ``batch_size * world``.
    """
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    src = _draws(n_source, batch_size, world, rank, g)
    tgt = _draws(n_target, batch_size, world, rank, g)
    lab = _draws(n_labeled, labeled_batch_size, world, rank, g) if labeled_batch_size else None
    s, t, k = [], [], []
    for _ in range(steps):
        s.append(next(src))
        t.append(next(tgt))
        if lab is not None:
            k.append(next(lab))
    return EpochDraws(torch.stack(s), torch.stack(t), torch.stack(k) if lab is not None else None)


class StreamingPairs(Dataset):
    """One training mini-batch per item ``(epoch, step)``: source, unlabeled target and labeled target images.

    The indices are :func:`epoch_draws` (the order of :class:`~adaptrack.adapt.data.datamodule.PairedBatches`);
    sets on disk are decoded with a random-resized crop and flip seeded by ``(seed, epoch, step, set,
    position in the global batch)``, in-memory sets indexed as they are. Read with
    :class:`~adaptrack.common.resume.ResumableSampler` (``batch_size=1``: one item is one step) and
    ``batch_size=None`` in the ``DataLoader``.

    Args:
        source: Labeled source set (in memory or on disk).
        target: The unlabeled target pool.
        batch_size: Source and target images per mini-batch (each), on each rank.
        steps: Mini-batches per epoch (on each rank).
        seed: Seed of the order and the crops.
        reader: Decoder of the files.
        labeled: Labeled target images, or ``None``.
        labeled_batch_size: Labeled target images per mini-batch.
        rank: This process's rank.
        world: Number of processes.
    """

    def __init__(self, source: AnySet, target: AnySet, batch_size: int, steps: int, seed: int, reader: ImageReader,
                 labeled: AnySet | None = None, labeled_batch_size: int = 0, rank: int = 0, world: int = 1) -> None:
        super().__init__()
        if source.labels is None:
            raise DataError(f"the source set {source.name!r} has no labels")
        self.source, self.target, self.reader = _packed(source), _packed(target), reader
        self.labeled = None if labeled is None else _packed(labeled)
        self.source_labels, self.labeled_labels = source.labels, None if labeled is None else labeled.labels
        self.batch_size, self.steps, self.seed = batch_size, steps, seed
        self.labeled_batch_size = labeled_batch_size if labeled is not None and len(labeled) else 0
        self.rank, self.world = rank, world
        unknown = torch.full((len(target),), -1, dtype=torch.long)
        self.target_report_labels = target.labels if target.labels is not None else unknown  # (N_pool,)
        self._cached: tuple[int, EpochDraws] | None = None

    def __len__(self) -> int:
        return self.steps

    def shard(self, rank: int, world: int) -> list[int]:
        """Every step: each rank reads every step, its own slice of each global batch (set at construction)."""
        return list(range(self.steps))

    def draws(self, epoch: int) -> EpochDraws:
        """The epoch's indices on this rank (computed once per epoch in each worker)."""
        if self._cached is None or self._cached[0] != epoch:
            n_lab = len(self.labeled) if self.labeled is not None else 0
            self._cached = (epoch, epoch_draws(len(self.source), len(self.target), n_lab, self.batch_size,
                                               self.labeled_batch_size, self.steps, self.seed, epoch, self.rank,
                                               self.world))
        return self._cached[1]

    def _seeds(self, epoch: int, step: int, role: int, size: int) -> list[list[int]]:
        offset = self.rank * size  # position in the global batch: the same crop as one process would draw
        return [[self.seed & 0xFFFFFFFF, epoch, step, role, offset + b] for b in range(size)]

    def __getitem__(self, item: tuple[int, int]) -> RawBatch:
        epoch, step = item
        d = self.draws(epoch)
        i, j = d.source[step], d.target[step]  # (B,), (B,)
        xs, i = take_images(self.source, i, self.reader, self._seeds(epoch, step, SOURCE, self.batch_size))
        xt, j = take_images(self.target, j, self.reader, self._seeds(epoch, step, TARGET, self.batch_size))
        if d.labeled is not None and self.labeled is not None and self.labeled_labels is not None:
            xl, k = take_images(self.labeled, d.labeled[step], self.reader,
                                self._seeds(epoch, step, LABELED, self.labeled_batch_size))
            labeled_labels = self.labeled_labels[k]  # (Bl,)
        else:
            xl = xs.new_empty((0, *xs.shape[1:]))  # (0, C, S, S)
            labeled_labels = torch.empty(0, dtype=torch.long)
        return RawBatch(xs, self.source_labels[i], xt, self.target_report_labels[j], j, xl, labeled_labels, i)


class StreamingEval(IterableDataset):
    """Consecutive evaluation batches of a set on disk: this rank's contiguous run of them, in order.

    The batches are those of :class:`~adaptrack.adapt.data.datamodule.EvalBatches` (rank ``r`` reads
    its whole batches of the one-process batching, :func:`~adaptrack.common.distributed.batch_shard`);
    worker ``w`` of ``n`` decodes every ``n``-th of them, which the ``DataLoader`` returns in order.
    Images are centre-cropped.

    Args:
        data: The set on disk.
        labels: ``(N,)`` labels, -1 where unknown.
        batch_size: Images per batch.
        reader: Decoder of the files.
        rank: This process's rank.
        world: Number of processes.
        what: The set's name (for the error of a set with fewer batches than processes).
    """

    def __init__(self, data: FileSet, labels: torch.Tensor, batch_size: int, reader: ImageReader, rank: int = 0,
                 world: int = 1, what: str = "the evaluation set") -> None:
        super().__init__()
        self.files, self.labels, self.batch_size, self.reader = PackedPaths(data.files), labels, batch_size, reader
        self.part = batch_shard(len(data), batch_size, rank, world, what)

    def __len__(self) -> int:
        return math.ceil(len(self.part) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        starts = range(self.part.start, self.part.stop, self.batch_size)
        for number, start in enumerate(starts):
            if number % workers != worker:
                continue
            index = torch.arange(start, min(start + self.batch_size, self.part.stop))  # (b,)
            images, read = take_images(self.files, index, self.reader, None)
            yield images, self.labels[read]  # (b, C, S, S) uint8, (b,)


class DeferredLoader(DataLoader):
    """A ``DataLoader`` whose iterator starts at its first batch, not when ``iter()`` is called.

    With worker processes a ``DataLoader`` iterator reads its sampler as soon as it is created (to
    hand the workers their first indices). Lightning creates the training iterator while setting up
    the data, which on a resumed fit happens before the checkpoint's loop state is restored; the
    :class:`~adaptrack.common.resume.ResumableSampler` would then read the position of a fresh run
    (epoch 0, nothing to skip). Deferred, it reads the restored position, as the in-memory
    :class:`~adaptrack.adapt.data.datamodule.PairedBatches` (a generator) does.
    """

    def __iter__(self) -> Iterator:  # type: ignore[override]
        return _DeferredIterator(self)


class _DeferredIterator(Iterator):
    """Calls ``DataLoader.__iter__`` of its loader at the first ``next``."""

    def __init__(self, loader: DataLoader) -> None:
        self.loader = loader
        self.iterator: Iterator | None = None

    def __iter__(self) -> _DeferredIterator:
        return self

    def __next__(self) -> object:
        if self.iterator is None:
            self.iterator = DataLoader.__iter__(self.loader)
        return next(self.iterator)

    def __len__(self) -> int:
        return len(self.loader)


def _packed(data: AnySet) -> ImageSet | PackedPaths:
    """An in-memory set as it is, the files of a set on disk packed (:class:`PackedPaths`)."""
    return data if isinstance(data, ImageSet) else PackedPaths(data.files)


def describe(data: AnySet) -> str:
    """``"in memory"`` or ``"streamed from disk"``, for logs."""
    return "in memory" if isinstance(data, ImageSet) else f"streamed from disk ({len(data)} files)"


__all__ = ["CacheMode", "DeferredLoader", "EpochDraws", "ImageReader", "PackedPaths", "StreamConfig",
           "StreamingEval", "StreamingPairs", "centre_box", "crop_box", "describe", "epoch_draws", "take_images"]
