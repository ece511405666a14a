"""The source/target LightningDataModule: whole splits in memory, mini-batches of three sources (S1, S31).

Before training (``setup("fit")``) the training sets are prepared in the patent's order, and every
count is logged and kept in :attr:`DomainAdaptationDataModule.preparation` (written to the report):

1. labeled target images (third embodiment): ``k`` per class drawn by seed from the target *train*
   split (they leave the unlabeled pool), or a class folder;
2. S40, DOA unit 21/21a: the source classes oversampled to equal counts with rotated copies;
3. S41, padder 21b (claim 9): the labeled target images oversampled the same way, equal per class,
   their total equal to the source total;
4. the preprocessing unit 22: an :class:`~adaptrack.adapt.data.filters.ImageFilter` removes
   unwanted images from the (oversampled) source, the labeled target and the unlabeled target.

Test splits are never changed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, IterableDataset

from adaptrack.adapt.batch import AdaptBatch, RawBatch
from adaptrack.adapt.data.augment import build_augmentation, convert_channels, resize_uint8, to_float
from adaptrack.adapt.data.balance import class_counts, draw_per_class, equal_counts, oversample
from adaptrack.adapt.data.base import AnySet, FileSet, ImageSet, take
from adaptrack.adapt.data.filters import ImageFilter
from adaptrack.adapt.data.folders import load_labeled_folder
from adaptrack.adapt.data.layouts import materialize
from adaptrack.adapt.data.registry import check_same_classes, index_dataset, load_dataset, match_classes
from adaptrack.adapt.data.stream import (
    DeferredLoader,
    ImageReader,
    StreamConfig,
    StreamingEval,
    StreamingPairs,
    describe,
    epoch_draws,
)
from adaptrack.common.distributed import batch_shard
from adaptrack.common.errors import ConfigError, DataError
from adaptrack.common.resume import (
    AUGMENT_STREAM,
    ResumableSampler,
    fit_position,
    process_shard,
    replayed_rng,
    rng_states,
    step_random,
)

log = logging.getLogger(__name__)

NormalizeName = Literal["auto", "symmetric", "imagenet"]
"""How uint8 images become the network's input: ``symmetric`` maps [0, 255] to [-1, 1]; ``imagenet`` then
applies ImageNet's per-channel mean and standard deviation (RGB only); ``auto``: ``imagenet`` for RGB sets
of image files (``folder``, ``office31``, ``office_home``, ``visda2017``), else ``symmetric``."""

PHOTO_SETS = frozenset({"folder", "office31", "office_home", "visda2017"})
"""Data sets of image files (photos), which ``normalize: auto`` gives ImageNet normalisation when RGB."""


def resolve_normalize(normalize: str, channels: int, source: str) -> str:
    """The network input normalisation ``data.normalize`` stands for (see :data:`NormalizeName`).

    Raises:
        ConfigError: An unknown name, or ``imagenet`` with gray images.
    """
    if normalize not in ("auto", "symmetric", "imagenet"):
        raise ConfigError(f"data.normalize={normalize!r} must be 'auto', 'symmetric' or 'imagenet'")
    if normalize == "imagenet" and int(channels) != 3:
        raise ConfigError(f"data.normalize='imagenet' needs RGB images (data.channels=3), got data.channels={channels}")
    if normalize == "auto":
        return "imagenet" if int(channels) == 3 and source in PHOTO_SETS else "symmetric"
    return normalize


@dataclass(frozen=True)
class LabeledTargetConfig:
    """The third embodiment's few labeled target images (the third image acquisition unit 20).

    Attributes:
        per_class: ``k`` images per class. Drawn by ``seed`` from the target *train* split (which
            must be labeled; the drawn images leave the unlabeled pool), or from ``directory``;
            ``None`` with no ``directory``: no labeled target images.
        directory: A labeled class folder (``<class>/*.png``) of target images; classes are matched
            to the source's by name. Without ``per_class`` every image in it is used.
        seed: Seed of the draw.
        batch_size: Labeled target images per mini-batch; default ``min(batch_size, their number)``.
    """

    per_class: int | None = None
    directory: str | None = None
    seed: int = 0
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.per_class is not None and self.per_class < 1:
            raise ConfigError(f"data.labeled_target.per_class={self.per_class} must be >= 1 or null")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"data.labeled_target.batch_size={self.batch_size} must be >= 1 or null")

    @property
    def enabled(self) -> bool:
        return self.per_class is not None or self.directory is not None


@dataclass(frozen=True)
class OversampleConfig:
    """Class balancing by rotated copies before training (second and third modifications of the third embodiment).

    Attributes:
        source: S40 (DOA unit 21/21a): every source class brought to the count of the largest.
        labeled_target: S41 (padder 21b, claim 9): the labeled target images brought to equal
            counts per class, their total equal to the source total (after S40).
        max_angle: New images are existing ones rotated by an angle in ``[-max_angle, max_angle]`` degrees.
        seed: Seed of the copies and angles.
    """

    source: bool = False
    labeled_target: bool = False
    max_angle: float = 15.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_angle) and 0 <= self.max_angle <= 180):
            raise ConfigError(f"data.oversample.max_angle={self.max_angle} must be in [0, 180] degrees")


def _empty_like(images: torch.Tensor) -> torch.Tensor:
    return images.new_empty((0, *images.shape[1:]))


class PairedBatches(IterableDataset):
    """Iterator of ``steps`` mini-batches per epoch: source, unlabeled target and labeled target images.

    Each of the three sets is drawn without replacement, independently (a fresh permutation when
    one is used up; a set smaller than its batch is drawn with replacement); each epoch's order
    depends only on ``(seed, epoch)``. Yields :class:`~adaptrack.adapt.batch.RawBatch` of uint8
    tensors; augmentation happens batch-wise after transfer.

    Resume and DDP: ``position`` (:func:`~adaptrack.common.resume.fit_position` of the trainer)
    gives the epoch and the number of its batches already trained when the iterator starts; those
    are skipped, so a run restarted inside an epoch sees the batches an uninterrupted run would.
    With ``world`` processes every rank draws the same permutations and takes its own ``rank``-th
    slice of each run of ``world`` consecutive batches: the ranks' indices partition the epoch, as
    one process with a ``world`` times larger batch would draw them.

    Args:
        source: Labeled source images.
        target: The unlabeled target pool.
        batch_size: Source and target images per mini-batch (each), on each rank.
        steps: Mini-batches per epoch (on each rank).
        seed: Seed of the order.
        labeled: Labeled target images, or ``None``.
        labeled_batch_size: Labeled target images per mini-batch.
        position: Returns ``(epoch, batches to skip)``; ``None``: epochs counted by the iterator
            itself, nothing skipped.
        rank: This process's rank.
        world: Number of processes.
    """

    def __init__(self, source: ImageSet, target: ImageSet, batch_size: int, steps: int, seed: int,
                 labeled: ImageSet | None = None, labeled_batch_size: int = 0,
                 position: Callable[[], tuple[int, int]] | None = None, rank: int = 0, world: int = 1) -> None:
        super().__init__()
        self.source, self.target, self.labeled = source, target, labeled
        self.batch_size, self.steps, self.seed = batch_size, steps, seed
        self.labeled_batch_size = labeled_batch_size if labeled is not None and len(labeled) else 0
        self.position, self.rank, self.world = position, rank, world
        self.epoch = 0
        unknown = torch.full((len(target),), -1, dtype=torch.long)
        self.target_report_labels = target.labels if target.labels is not None else unknown

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[RawBatch]:
        epoch, skip = self.position() if self.position is not None else (self.epoch, 0)
        self.epoch = epoch + 1
        n_lab = len(self.labeled) if self.labeled is not None else 0
        d = epoch_draws(len(self.source), len(self.target), n_lab, self.batch_size, self.labeled_batch_size,
                        self.steps, self.seed, epoch, self.rank, self.world)
        assert self.source.labels is not None
        for step in range(skip, self.steps):  # the steps trained before a restart are skipped
            i, j = d.source[step], d.target[step]  # (B,), (B,)
            k = d.labeled[step] if d.labeled is not None else None
            if k is not None and self.labeled is not None and self.labeled.labels is not None:
                labeled, labeled_labels = self.labeled.images[k], self.labeled.labels[k]
            else:
                labeled = _empty_like(self.source.images)
                labeled_labels = torch.empty(0, dtype=torch.long)
            yield RawBatch(self.source.images[i], self.source.labels[i],  # (B, C, H, W) uint8, (B,)
                           self.target.images[j], self.target_report_labels[j], j, labeled, labeled_labels, i)


class EvalBatches(IterableDataset):
    """Consecutive batches of one evaluation set: this rank's contiguous run of them, in order.

    With ``world`` processes rank ``r`` reads its whole batches of the one-process batching
    (:func:`~adaptrack.common.distributed.batch_shard`) and nothing else: the ranks' parts
    partition the set without repeating an image, so validation and test metrics reduced over the
    ranks (torchmetrics) are exactly the one-process ones. An iterable dataset, so Lightning adds
    no sampler of its own under DDP.

    Args:
        images: ``(N, C, H, W)`` uint8 images.
        labels: ``(N,)`` labels, -1 where unknown.
        batch_size: Images per batch.
        rank: This process's rank.
        world: Number of processes.
        what: The set's name (for the error of a set with fewer batches than processes).
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, rank: int = 0,
                 world: int = 1, what: str = "the evaluation set") -> None:
        super().__init__()
        self.images, self.labels, self.batch_size = images, labels, batch_size
        self.part = batch_shard(images.shape[0], batch_size, rank, world, what)

    def __len__(self) -> int:
        return math.ceil(len(self.part) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(self.part.start, self.part.stop, self.batch_size):
            stop = min(start + self.batch_size, self.part.stop)
            yield self.images[start:stop], self.labels[start:stop]  # (b, C, H, W) uint8, (b,)


class DomainAdaptationDataModule(L.LightningDataModule):
    """Labeled source, unlabeled target and optionally labeled target, held in memory as uint8 at ``image_size``.

    Splits used: source ``train`` (training) and source ``test`` (validation: selects the best
    checkpoint); target ``train`` (the unlabeled training pool, and where ``labeled_target.per_class``
    images are drawn from) and target ``test`` (reported only, never drawn from). Target labels of
    the unlabeled pool, when the format has them, are carried separately for reporting pseudo-label
    and development accuracy and never reach a loss or the checkpoint selection.

    Args:
        source: Source dataset name from the registry (``adaptrack.adapt.data.registry``).
        target: Target dataset name.
        data_root: Data root; default ``$ADAPTRACK_DATA`` or ``~/.cache/adaptrack``.
        download: Fetch missing files from the official locations (checksums verified).
        source_dir: For ``source=folder``: root with ``train/`` and ``test/`` class sub-folders.
        target_dir: For ``target=folder``: root with ``train/`` (flat or class sub-folders) and
            optionally ``test/`` (class sub-folders, for reporting).
        image_size: Square size every image is resized to.
        channels: 1 (gray) or 3 (RGB); images are converted.
        batch_size: Source images and target images per mini-batch (each), on each process under DDP
            (the pseudo-label caps apply to this per-process mini-batch).
        steps_per_epoch: Mini-batches per epoch (on each process under DDP); default one pass over the
            source set, shared among the processes.
        source_limit: Use only the first N source training images (after a seeded shuffle).
        synthetic_size: Number of images rendered for ``synthetic_digits`` (train split).
        skip_bad: Skip unreadable images of folder datasets with a warning instead of failing.
        rotation: Max rotation (degrees) of the weak augmentation.
        translate: Max translation (fraction) of the weak augmentation.
        scale_min: Lower bound of the weak augmentation's scale range.
        scale_max: Upper bound of the weak augmentation's scale range.
        augment_source: Augment source images (weak pipeline).
        eval_batch_size: Batch size of validation, test and prediction.
        predict_dir: A folder of images to classify with ``predict``.
        predict_dataset: Or a registry dataset to classify with ``predict`` (default: the target).
        predict_split: Split of ``predict_dataset``.
        seed: Seed of the mini-batch order and of the synthetic data.
        labeled_target: The few labeled target images (third embodiment).
        oversample: S40 (DOA) and S41 (padder).
        image_filter: The preprocessing filter (unit 22), e.g. ``NoiseFilter``; ``None`` keeps every image.
        known_classes: The class names of a trained model (index = label), so that ``predict`` needs
            no source data (``adaptrack adapt predict`` sets them from ``--ckpt_path``); ``None``:
            those of the source set.
        source_domain: Domain of a multi-domain ``source`` (``office31``: ``amazon``; ``office_home``:
            ``Art``; ``visda2017``: ``train``).
        target_domain: Domain of a multi-domain ``target`` (``webcam``, ``Clipart``, ``validation``, …).
        normalize: Network input normalisation (:data:`NormalizeName`); linked into the model.
        stream: Sets of image files: cached in memory or streamed from disk through ``DataLoader``
            workers, and the streaming transforms (:class:`~adaptrack.adapt.data.stream.StreamConfig`).
    """

    def __init__(
        self,
        source: str = "synthetic_digits",
        target: str = "sklearn_digits",
        data_root: str | None = None,
        download: bool = False,
        source_dir: str | None = None,
        target_dir: str | None = None,
        image_size: int = 28,
        channels: int = 1,
        batch_size: int = 64,
        steps_per_epoch: int | None = None,
        source_limit: int | None = None,
        synthetic_size: int = 20000,
        skip_bad: bool = False,
        rotation: float = 10.0,
        translate: float = 0.1,
        scale_min: float = 0.9,
        scale_max: float = 1.1,
        augment_source: bool = True,
        eval_batch_size: int = 512,
        predict_dir: str | None = None,
        predict_dataset: str | None = None,
        predict_split: Literal["train", "test"] = "test",
        seed: int = 0,
        labeled_target: LabeledTargetConfig = LabeledTargetConfig(),
        oversample: OversampleConfig = OversampleConfig(),
        image_filter: ImageFilter | None = None,
        known_classes: list[str] | None = None,
        source_domain: str | None = None,
        target_domain: str | None = None,
        normalize: NormalizeName = "auto",
        stream: StreamConfig = StreamConfig(),
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if channels not in (1, 3):
            raise ConfigError(f"data.channels={channels} must be 1 or 3")
        for key in ("batch_size", "eval_batch_size", "image_size"):
            if int(getattr(self.hparams, key)) < 1:
                raise ConfigError(f"data.{key}={getattr(self.hparams, key)} must be >= 1")
        self.labeled_config = labeled_target if isinstance(labeled_target, LabeledTargetConfig) else (
            LabeledTargetConfig(**labeled_target))
        self.oversample_config = oversample if isinstance(oversample, OversampleConfig) else (
            OversampleConfig(**oversample))
        self.stream_config = stream if isinstance(stream, StreamConfig) else StreamConfig(**stream)
        self.input_norm = resolve_normalize(normalize, channels, source)
        self.reader = ImageReader(channels, image_size, self.stream_config, skip_bad)
        if self.oversample_config.labeled_target and not self.labeled_config.enabled:
            raise ConfigError("data.oversample.labeled_target=true pads the labeled target images, but there are "
                              "none: set data.labeled_target.per_class or data.labeled_target.directory")
        if image_filter is not None and not isinstance(image_filter, ImageFilter):
            raise ConfigError(f"data.image_filter must be an ImageFilter (class_path + init_args), "
                              f"got {type(image_filter).__name__}")
        self.image_filter = image_filter
        self._sets: dict[str, ImageSet] = {}
        self._train: dict[str, ImageSet] | None = None
        self.preparation: dict[str, Any] = {}
        self.weak = build_augmentation("weak", channels, rotation, translate, (scale_min, scale_max))
        self.strong = build_augmentation("strong", channels, rotation, translate, (scale_min, scale_max))
        self.predict_files: list[str] = []
        self.known_classes = None if known_classes is None else [str(c) for c in known_classes]

    # -- loading -------------------------------------------------------------------------------
    def image_set(self, role: Literal["source", "target", "predict"], split: Literal["train", "test"]) -> AnySet:
        """One split of one role, loaded on first use and cached: uint8 at ``image_size`` in memory
        (:class:`ImageSet`), or a :class:`FileSet` streamed from disk (``data.stream.cache``)."""
        key = f"{role}/{split}"
        if key in self._sets:
            return self._sets[key]
        hp = self.hparams
        name = {"source": hp.source, "target": hp.target, "predict": hp.predict_dataset or hp.target}[role]
        directory = {"source": hp.source_dir, "target": hp.target_dir, "predict": None}[role]
        domain = {"source": hp.source_domain, "target": hp.target_domain, "predict": hp.target_domain}[role]
        if role == "predict" and hp.predict_dir is not None:
            name, directory = "folder", hp.predict_dir
        if (name == "folder" and split == "test" and directory is not None and role != "predict"
                and not (Path(directory) / "test").is_dir() and (Path(directory) / "train").is_dir()):
            self._sets[key] = self.image_set(role, "train")  # no test/ folder: evaluate on train/
            return self._sets[key]
        raw = self._read(name, split, directory, domain)
        if len(raw) == 0:
            raise DataError(f"the {role} {split} set {raw.name!r} is empty", directory)
        result = raw
        if isinstance(raw, ImageSet):
            images = resize_uint8(convert_channels(raw.images, hp.channels), hp.image_size)  # (N, C, S, S) uint8
            result = ImageSet(images, raw.labels, raw.classes, raw.name, raw.files)
        if role == "source" and split == "train" and hp.source_limit is not None and hp.source_limit < len(raw):
            keep = torch.randperm(len(raw), generator=torch.Generator().manual_seed(hp.seed))[:hp.source_limit]
            result = take(result, keep)
        if role == "source":
            if result.labels is None:
                raise DataError(f"the source set {raw.name!r} has no labels; the source domain must be labeled",
                                directory)
            if split == "test":
                check_same_classes(self.image_set("source", "train"), result)
            elif self.known_classes is not None and self.known_classes != result.classes:
                raise ConfigError(f"data.known_classes={self.known_classes} differ from the classes of the source "
                                  f"set {raw.name!r}: {result.classes}")
        else:  # target / predict: classes matched to the source's by name
            result = match_classes(self._class_reference(role), result)
        log.info("%s %s set %s: %d images, %s", role, split, result.name, len(result), describe(result))
        self._sets[key] = result
        return result

    def _read(self, name: str, split: Literal["train", "test"], directory: str | None, domain: str | None) -> AnySet:
        """A split from the registry: listed and kept on disk, or decoded into memory (``data.stream.cache``)."""
        hp = self.hparams
        where = None if directory is None else Path(directory)
        files = index_dataset(name, split, root=hp.data_root, directory=where, domain=domain)
        if files is not None:  # a set of image files: stream it, or decode it once
            if not self.stream_config.in_memory(len(files), hp.channels, hp.image_size):
                return files
            return materialize(files, size=(hp.image_size, hp.image_size), channels=hp.channels,
                               skip_bad=hp.skip_bad)
        return load_dataset(name, split, root=hp.data_root, download=hp.download, directory=where,
                            image_size=hp.image_size, channels=hp.channels, skip_bad=hp.skip_bad,
                            synthetic_size=hp.synthetic_size if split == "train" else max(1000, hp.synthetic_size // 5),
                            seed=hp.seed + (0 if split == "train" else 1), domain=domain)

    def _class_reference(self, role: str) -> AnySet:
        """The set whose classes ``role``'s are matched to: the source training set, or for ``predict``
        with ``known_classes`` given, an empty set of those classes (no source data is loaded)."""
        if role == "predict" and self.known_classes is not None:
            s, c = self.hparams.image_size, self.hparams.channels
            return ImageSet(torch.empty(0, c, s, s, dtype=torch.uint8), torch.empty(0, dtype=torch.long),
                            list(self.known_classes), "the model's classes")
        return self.image_set("source", "train")

    @property
    def class_names(self) -> list[str]:
        """Class names of the labeled source set (index = label), or ``known_classes`` when given."""
        if self.known_classes is not None:
            return list(self.known_classes)
        return list(self.image_set("source", "train").classes)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate", "test"):
            for role in ("source", "target"):
                for split in ("train", "test"):
                    self.image_set(role, split)  # type: ignore[arg-type]
        if stage == "fit":
            self.training_sets()
        if stage == "predict":
            predict = self.image_set("predict", self.hparams.predict_split)
            self.predict_files = predict.files or [f"{predict.name}#{i:06d}" for i in range(len(predict))]
            if isinstance(predict, FileSet) and self.hparams.skip_bad:
                raise ConfigError("data.skip_bad would replace an unreadable image of a streamed prediction set by "
                                  "another one and write a wrong row for it; set data.stream.cache=memory to drop "
                                  "unreadable images, or data.skip_bad=false")

    # -- training sets (labeled target, S40, S41, preprocessing) ---------------------------------
    def training_sets(self) -> dict[str, AnySet]:
        """The prepared training sets: ``source``, ``target`` (the unlabeled pool) and, when configured,
        ``labeled_target``; built once (see the module docstring for the order)."""
        if self._train is not None:
            return self._train
        source, target = self.image_set("source", "train"), self.image_set("target", "train")
        assert source.labels is not None
        k = len(source.classes)
        counts: dict[str, dict[str, Any]] = {"source": {"loaded": class_counts(source.labels, k)}}
        labeled, drawn = self._labeled_target(source, target)
        if labeled is not None:
            keep = torch.ones(len(target), dtype=torch.bool)
            if drawn is not None:  # drawn from target train: they leave the pool
                keep[drawn] = False
            target = replace(take(target, keep), name=f"{target.name} (unlabeled pool)")
            assert labeled.labels is not None
            counts["labeled_target"] = {"drawn": class_counts(labeled.labels, k)}
        counts["target"] = {"loaded": len(target)}
        over = self.oversample_config
        self._require_memory(source, target, labeled)
        if over.source:  # S40
            wanted = [max(counts["source"]["loaded"])] * k
            images, labels = oversample(source.images, source.labels, wanted, over.max_angle, over.seed)
            source = ImageSet(images, labels, source.classes, f"{source.name} (DOA)")
            counts["source"]["after_doa"] = class_counts(labels, k)
        if over.labeled_target and labeled is not None:  # S41: equal per class, total = source total
            assert labeled.labels is not None
            missing = [source.classes[c] for c, n in enumerate(class_counts(labeled.labels, k)) if n == 0]
            if missing:
                raise ConfigError(f"data.oversample.labeled_target=true needs a labeled target image of every "
                                  f"class; classes {missing} have none")
            images, labels = oversample(labeled.images, labeled.labels, equal_counts(len(source), k),
                                        over.max_angle, over.seed + 1)
            labeled = ImageSet(images, labels, labeled.classes, f"{labeled.name} (padded)")
            counts["labeled_target"]["after_padder"] = class_counts(labels, k)
        if self.image_filter is not None:  # preprocessing unit 22
            source = self._filter("source", source, counts)
            target = self._filter("target", target, counts)
            if labeled is not None:
                labeled = self._filter("labeled_target", labeled, counts)
        for name, entry in counts.items():
            log.info("training set %s: %s", name, entry)
        self.preparation = counts
        self._train = {"source": source, "target": target}
        if labeled is not None:
            self._train["labeled_target"] = labeled
        return self._train

    def _require_memory(self, source: AnySet, target: AnySet, labeled: AnySet | None) -> None:
        """S40, S41 and the image filter work on decoded images: refuse them for sets streamed from disk.

        Raises:
            ConfigError: One of them is on with a set on disk; the message names the keys.
        """
        over = self.oversample_config
        wanted = {"data.oversample.source": (over.source, source),
                  "data.oversample.labeled_target": (over.labeled_target, labeled),
                  "data.image_filter": (self.image_filter is not None, source)}
        for key, (on, data) in wanted.items():
            streamed = isinstance(data, FileSet) or (key == "data.image_filter" and any(
                isinstance(d, FileSet) for d in (target, labeled)))
            if on and streamed:
                raise ConfigError(f"{key} works on images held in memory, but {data.name if data else 'a set'} "
                                  f"is streamed from disk; set data.stream.cache=memory (or raise "
                                  f"data.stream.cache_limit_mb) or turn {key} off")

    def _labeled_target(self, source: AnySet, target: AnySet) -> tuple[AnySet | None, torch.Tensor | None]:
        """The labeled target images, and their indices in ``target`` when drawn from it."""
        cfg = self.labeled_config
        if not cfg.enabled:
            return None, None
        hp = self.hparams
        if cfg.directory is not None:
            folder = load_labeled_folder(Path(cfg.directory), size=(hp.image_size, hp.image_size),
                                         channels=hp.channels, skip_bad=hp.skip_bad,
                                         name=f"labeled target {cfg.directory}")
            folder = ImageSet(resize_uint8(convert_channels(folder.images, hp.channels), hp.image_size),
                              folder.labels, folder.classes, folder.name, folder.files)
            pool = match_classes(source, folder, require_all=True)  # a folder per source class
            what = f"data.labeled_target.directory={cfg.directory}"
        else:
            if target.labels is None:
                raise ConfigError(f"data.labeled_target.per_class={cfg.per_class} draws labeled images from the "
                                  f"target train split, but {target.name} has no labels; give "
                                  "data.labeled_target.directory (a class folder) instead")
            pool, what = target, target.name
        assert pool.labels is not None
        if cfg.per_class is None:
            index = torch.arange(len(pool))
        else:
            index = draw_per_class(pool.labels, cfg.per_class, source.classes, cfg.seed, what)
        labeled = replace(take(pool, index), classes=list(source.classes), name=f"labeled target ({what})")
        return labeled, (index if cfg.directory is None else None)

    def _filter(self, name: str, images: AnySet, counts: dict[str, dict[str, Any]]) -> AnySet:
        assert self.image_filter is not None and isinstance(images, ImageSet)
        if name not in self.image_filter.sets:
            return images
        keep = self.image_filter.keep(images.images)
        if keep.shape != (len(images),) or keep.dtype != torch.bool:
            raise ConfigError(f"data.image_filter {type(self.image_filter).__name__}.keep returned "
                              f"{tuple(keep.shape)} {keep.dtype}; it must return a ({len(images)},) bool tensor")
        removed = int((~keep).sum())
        counts[name]["removed_by_filter"] = removed
        if removed == len(images):
            raise DataError(f"the image filter {type(self.image_filter).__name__} removed every image of the "
                            f"{name} set {images.name}; loosen it")
        files = None if images.files is None else [f for f, k in zip(images.files, keep.tolist(), strict=True) if k]
        return ImageSet(images.images[keep], None if images.labels is None else images.labels[keep],
                        images.classes, images.name, files)

    def unlabeled_target(self) -> AnySet:
        """The unlabeled target pool training draws from (target train less drawn and filtered images)."""
        return self.training_sets()["target"]

    # -- loaders ---------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        """Mini-batches of the three sets: :class:`PairedBatches` when all are in memory, else
        :class:`~adaptrack.adapt.data.stream.StreamingPairs` decoded by ``data.stream.num_workers`` workers."""
        hp = self.hparams
        sets = self.training_sets()
        source = sets["source"]
        labeled = sets.get("labeled_target")
        labeled_batch = 0
        if labeled is not None:
            labeled_batch = self.labeled_config.batch_size or min(hp.batch_size, len(labeled))
        rank, world = process_shard(self.trainer)
        steps = hp.steps_per_epoch or max(1, math.ceil(len(source) / (hp.batch_size * world)))
        position = self._position
        if all(isinstance(d, ImageSet) for d in sets.values()):
            return DataLoader(PairedBatches(source, sets["target"], hp.batch_size, steps, hp.seed, labeled,
                                            labeled_batch, position=position, rank=rank, world=world),
                              batch_size=None)
        data = StreamingPairs(source, sets["target"], hp.batch_size, steps, hp.seed, self.reader, labeled,
                              labeled_batch, rank=rank, world=world)
        return self._worker_loader(data, ResumableSampler(data, 1, position, rank, world), deferred=True)

    def _position(self) -> tuple[int, int]:
        """``(epoch, batches already trained)`` of the fit loop (:func:`~adaptrack.common.resume.fit_position`)."""
        return fit_position(self.trainer)

    def _worker_loader(self, data: Any, sampler: Any = None, deferred: bool = False) -> DataLoader:
        """A loader of whole batches decoded in ``data.stream.num_workers`` (persistent) worker processes.

        Its own generator: creating an iterator draws no number from the global generators.
        ``deferred``: a :class:`~adaptrack.adapt.data.stream.DeferredLoader`, whose sampler is read at
        the first batch (the training position of a resumed fit is restored by then).
        """
        workers = self.stream_config.num_workers
        kind = DeferredLoader if deferred else DataLoader
        return kind(data, batch_size=None, sampler=sampler, num_workers=workers, persistent_workers=workers > 0,
                    generator=torch.Generator().manual_seed(self.hparams.seed))

    def _eval_loader(self, images: AnySet, shard: bool = True) -> DataLoader:
        """Batches of ``images`` in order; under DDP (``shard``) this rank's part only (:class:`EvalBatches`,
        or :class:`~adaptrack.adapt.data.stream.StreamingEval` for a set on disk)."""
        labels = images.labels if images.labels is not None else torch.full((len(images),), -1, dtype=torch.long)
        rank, world = process_shard(self.trainer) if shard else (0, 1)
        what = f"{images.name} (data.eval_batch_size {self.hparams.eval_batch_size})"
        if isinstance(images, FileSet):
            return self._worker_loader(StreamingEval(images, labels, self.hparams.eval_batch_size, self.reader, rank,
                                                     world, what))
        return DataLoader(EvalBatches(images.images, labels, self.hparams.eval_batch_size, rank, world, what),
                          batch_size=None)

    def uint8_batches(self, images: AnySet, batch_size: int = 1024) -> Iterator[torch.Tensor]:
        """Every image of a set, in order, as uint8 ``(b, C, S, S)`` batches (a set on disk: centre crops,
        decoded by the workers); for whole-set passes (per-epoch pseudo labels, the report)."""
        if isinstance(images, ImageSet):
            for start in range(0, len(images), batch_size):
                yield images.images[start:start + batch_size]  # (b, C, S, S) uint8
            return
        labels = torch.full((len(images),), -1, dtype=torch.long)
        data = StreamingEval(images, labels, batch_size, self.reader, what=images.name)
        workers = self.stream_config.num_workers
        loader = DataLoader(data, batch_size=None, num_workers=workers, generator=torch.Generator().manual_seed(0))
        for batch, _ in loader:
            yield batch

    def val_dataloader(self) -> list[DataLoader]:
        """[0] source test, [1] target test (reported only), [2] the unlabeled target pool (its labels
        unread): the label-free validators (:mod:`adaptrack.adapt.validators`) read 0 and 2; each rank its part."""
        return [*(self._eval_loader(self.image_set(role, "test")) for role in ("source", "target")),
                self._eval_loader(self.unlabeled_target())]

    def test_dataloader(self) -> list[DataLoader]:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        """Every image on every rank (not sharded): rank 0 writes the whole CSV in the files' order."""
        return self._eval_loader(self.image_set("predict", self.hparams.predict_split), shard=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, RawBatch):  # training mini-batch (uint8)
            xs, xt, xl = to_float(batch.source), to_float(batch.target), to_float(batch.labeled)  # [-1, 1]
            with torch.no_grad(), step_random(self.trainer, AUGMENT_STREAM):  # a function of the step only
                source = self.weak(xs) if self.hparams.augment_source else xs
                labeled = self.weak(xl) if xl.shape[0] else xl
                # the target views are drawn last, so a view left out changes no other draw; the strong
                # view is made only when a step reads it (self-learning started), from the generators'
                # state here: the same images as if it had been made now
                target = self.weak(xt) if self._reads_weak_target() else xt
                make_strong = partial(self._strong_view, xt, rng_states())
                return AdaptBatch(source, batch.source_labels, target, None, batch.target_report_labels,
                                  batch.target_index, labeled, batch.labeled_labels, batch.source_index,
                                  make_strong=make_strong)
        images, labels = batch
        return to_float(images), labels

    def _reads_weak_target(self) -> bool:
        """Whether training steps read the weak target view: asked of the LightningModule
        (``reads_weak_target_view()``), true when it does not say. Unread, the view is left un-augmented."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        reads = getattr(module, "reads_weak_target_view", None)
        return bool(reads()) if callable(reads) else True

    def _strong_view(self, images: torch.Tensor, states: dict[str, Any]) -> torch.Tensor:
        """The strong view ``(Bt, C, H, W)`` of float target ``images``, drawn from the generator ``states``
        (:func:`~adaptrack.common.resume.rng_states`) captured after the weak views."""
        with torch.no_grad(), replayed_rng(states):
            return self.strong(images)
