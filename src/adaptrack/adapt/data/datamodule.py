"""The source/target LightningDataModule: whole splits in memory, paired mini-batches (S1)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch.utils.data import BatchSampler, DataLoader, IterableDataset, SequentialSampler, TensorDataset

from adaptrack.adapt.batch import AdaptBatch
from adaptrack.adapt.data.augment import build_augmentation, convert_channels, resize_uint8, to_float
from adaptrack.adapt.data.base import ImageSet
from adaptrack.adapt.data.registry import check_same_classes, load_dataset, match_classes
from adaptrack.common.errors import DataError


class PairedBatches(IterableDataset):
    """Endless-free iterator of ``steps`` paired mini-batches per epoch.

    Source images are drawn without replacement (a fresh permutation when one is used up), target
    images likewise, independently; each epoch's order depends only on ``(seed, epoch)``.
    Yields uint8 tensors; augmentation happens batch-wise after transfer.
    """

    def __init__(self, source: ImageSet, target: ImageSet, batch_size: int, steps: int, seed: int) -> None:
        super().__init__()
        self.source, self.target = source, target
        self.batch_size, self.steps, self.seed = batch_size, steps, seed
        self.epoch = 0
        unknown = torch.full((len(target),), -1, dtype=torch.long)
        self.target_report_labels = target.labels if target.labels is not None else unknown

    def __len__(self) -> int:
        return self.steps

    def _indices(self, n: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
        while True:
            perm = torch.randperm(n, generator=generator)
            for start in range(0, n - self.batch_size + 1 if n >= self.batch_size else 1, self.batch_size):
                chunk = perm[start:start + self.batch_size]
                if chunk.numel() < self.batch_size:  # tiny sets: sample with replacement
                    chunk = torch.randint(n, (self.batch_size,), generator=generator)
                yield chunk

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        src, tgt = self._indices(len(self.source), g), self._indices(len(self.target), g)
        for _ in range(self.steps):
            i, j = next(src), next(tgt)
            assert self.source.labels is not None
            yield (self.source.images[i], self.source.labels[i],  # (B, C, H, W) uint8, (B,)
                   self.target.images[j], self.target_report_labels[j])


class DomainAdaptationDataModule(L.LightningDataModule):
    """Labeled source, unlabeled target, held in memory as uint8 at ``image_size``.

    Splits used: source ``train`` (training) and source ``test`` (validation: selects the best
    checkpoint); target ``train`` (unlabeled training images) and target ``test`` (reported only).
    Target labels, when the format has them, are carried separately for reporting pseudo-label and
    test accuracy and never reach a loss or the checkpoint selection.

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
        batch_size: Source images and target images per mini-batch (each).
        steps_per_epoch: Mini-batches per epoch; default one pass over the source set.
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
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self._sets: dict[str, ImageSet] = {}
        self.weak = build_augmentation("weak", channels, rotation, translate, (scale_min, scale_max))
        self.strong = build_augmentation("strong", channels, rotation, translate, (scale_min, scale_max))
        self.predict_files: list[str] = []

    # -- loading -------------------------------------------------------------------------------
    def image_set(self, role: Literal["source", "target", "predict"], split: Literal["train", "test"]) -> ImageSet:
        """One split of one role, loaded on first use and cached (uint8 at ``image_size``)."""
        key = f"{role}/{split}"
        if key in self._sets:
            return self._sets[key]
        hp = self.hparams
        name = {"source": hp.source, "target": hp.target, "predict": hp.predict_dataset or hp.target}[role]
        directory = {"source": hp.source_dir, "target": hp.target_dir, "predict": None}[role]
        if role == "predict" and hp.predict_dir is not None:
            name, directory = "folder", hp.predict_dir
        if (name == "folder" and split == "test" and directory is not None and role != "predict"
                and not (Path(directory) / "test").is_dir() and (Path(directory) / "train").is_dir()):
            self._sets[key] = self.image_set(role, "train")  # no test/ folder: evaluate on train/
            return self._sets[key]
        raw = load_dataset(name, split, root=hp.data_root, download=hp.download,
                           directory=None if directory is None else Path(directory),
                           image_size=hp.image_size, channels=hp.channels, skip_bad=hp.skip_bad,
                           synthetic_size=hp.synthetic_size if split == "train" else max(1000, hp.synthetic_size // 5),
                           seed=hp.seed + (0 if split == "train" else 1))
        if len(raw) == 0:
            raise DataError(f"the {role} {split} set {raw.name!r} is empty", directory)
        images = resize_uint8(convert_channels(raw.images, hp.channels), hp.image_size)  # (N, C, S, S) uint8
        labels = raw.labels
        if role == "source" and split == "train" and hp.source_limit is not None and hp.source_limit < len(raw):
            keep = torch.randperm(len(raw), generator=torch.Generator().manual_seed(hp.seed))[:hp.source_limit]
            images, labels = images[keep], None if labels is None else labels[keep]
        result = ImageSet(images, labels, raw.classes, raw.name, raw.files)
        if role == "source":
            if result.labels is None:
                raise DataError(f"the source set {raw.name!r} has no labels; the source domain must be labeled",
                                directory)
            if split == "test":
                check_same_classes(self.image_set("source", "train"), result)
        else:  # target / predict: classes matched to the source's by name
            result = match_classes(self.image_set("source", "train"), result)
        self._sets[key] = result
        return result

    @property
    def class_names(self) -> list[str]:
        """Class names of the labeled source set (index = label)."""
        return list(self.image_set("source", "train").classes)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def setup(self, stage: str) -> None:
        if stage in ("fit", "validate", "test"):
            for role in ("source", "target"):
                for split in ("train", "test"):
                    self.image_set(role, split)  # type: ignore[arg-type]
        if stage == "predict":
            predict = self.image_set("predict", self.hparams.predict_split)
            self.predict_files = predict.files or [f"{predict.name}#{i:06d}" for i in range(len(predict))]

    # -- loaders ---------------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        source, target = self.image_set("source", "train"), self.image_set("target", "train")
        steps = hp.steps_per_epoch or max(1, math.ceil(len(source) / hp.batch_size))
        return DataLoader(PairedBatches(source, target, hp.batch_size, steps, hp.seed), batch_size=None)

    def _eval_loader(self, images: ImageSet) -> DataLoader:
        labels = images.labels if images.labels is not None else torch.full((len(images),), -1, dtype=torch.long)
        dataset = TensorDataset(images.images, labels)
        sampler = BatchSampler(SequentialSampler(dataset), self.hparams.eval_batch_size, drop_last=False)
        return DataLoader(dataset, sampler=sampler, batch_size=None)

    def val_dataloader(self) -> list[DataLoader]:
        """[0] source test (selects checkpoints), [1] target test (reported only)."""
        return [self._eval_loader(self.image_set(role, "test")) for role in ("source", "target")]

    def test_dataloader(self) -> list[DataLoader]:
        return self.val_dataloader()

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader(self.image_set("predict", self.hparams.predict_split))

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, (list, tuple)) and len(batch) == 4:  # training pair (uint8)
            xs, ys, xt, yt = batch
            xs, xt = to_float(xs), to_float(xt)  # (B, C, H, W) in [-1, 1]
            with torch.no_grad():
                source = self.weak(xs) if self.hparams.augment_source else xs
                return AdaptBatch(source, ys, self.weak(xt), self.strong(xt), yt)
        images, labels = batch
        return to_float(images), labels
