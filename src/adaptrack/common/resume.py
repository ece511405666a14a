"""Exact resume: a run killed at any step and restarted from ``last.ckpt`` ends as if never stopped.

What decides a training step, and how each part is made resumable:

* **weights, optimizer, LR schedule, loop counters, callbacks**: Lightning's checkpoint, written by
  :class:`AtomicCheckpointIO` (a temporary file in the same folder, ``fsync``, then an atomic
  rename: a kill during a save leaves the previous file intact) and read back with
  ``weights_only=True``.
* **randomness** (dropout, kornia augmentation, jitter, anything drawing from the global torch,
  NumPy or Python generators): :class:`StepRandomness` re-seeds the three global generators before
  every training step from ``(seed, global step, rank)``, so a step's draws depend on nothing that
  happened before it; :func:`step_random` does the same, in a fork, for work done before the step
  hook (batch-wise augmentation in ``on_after_batch_transfer``). The seed is kept in the
  checkpoint, so a resumed run keeps it even when ``seed_everything: true`` would draw a new one.
* **data order**: every training set draws its epoch from ``(seed, epoch)``; at a restart inside an
  epoch, :func:`fit_position` tells it how many of that epoch's batches were already trained, and
  it skips them (:class:`ResumableSampler` for map-style datasets).
* **state of the method** (the self-learning gate, per-epoch pseudo labels, the region-map store):
  the modules' ``on_save_checkpoint`` / ``on_load_checkpoint``.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch.utils.data import DistributedSampler

from adaptrack.common.errors import ConfigError
from adaptrack.common.files import atomic_torch_save, safe_torch_load

STEP_STREAM = 0
"""Stream of :func:`step_seed` used for the training step itself (dropout, jitter)."""

AUGMENT_STREAM = 1
"""Stream used for batch-wise augmentation before the step (``on_after_batch_transfer``)."""


def step_seed(seed: int, step: int, rank: int = 0, stream: int = STEP_STREAM) -> int:
    """A 63-bit seed that depends only on ``(seed, stream, rank, step)`` (NumPy's ``SeedSequence``).

    Args:
        seed: The run's seed.
        step: Global (optimizer) step the draws belong to.
        rank: Process rank (DDP): each rank draws differently.
        stream: Which use the draws are for (:data:`STEP_STREAM`, :data:`AUGMENT_STREAM`).
    """
    words = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, stream, rank, step]).generate_state(2)
    return (int(words[0]) << 31 | int(words[1]) >> 1) & 0x7FFF_FFFF_FFFF_FFFF


def seed_all(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), NumPy's and Python's global generators from one seed.

    The same states as ``torch.manual_seed(seed)``, for a fraction of its cost: that one also queues
    a lazy seeding of every accelerator backend (CUDA, XPU, MTIA, …), each recording a stack trace,
    about 1 ms per call, twice per training step. Here the CPU generator is seeded directly, and
    CUDA / MPS only when they are there.
    """
    torch.default_generator.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if torch.backends.mps.is_available():
        torch.mps.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def rng_states() -> dict[str, Any]:
    """The global generators' states as tensors and plain values (readable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": [list(random.getstate()[1]), random.getstate()[0], random.getstate()[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what :func:`rng_states` returned."""
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    internal, version, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class StepRandomness(pl.Callback):
    """Seed the global generators before every training step from ``(seed, global step, rank)``.

    A step's random draws (dropout, augmentation, sampling inside the step) then depend only on the
    step's number, never on how many draws came before: a run resumed at step ``s`` draws what an
    uninterrupted one draws at ``s``, whatever else (a new data-loader iterator, a validation pass)
    happened in between. Under DDP each rank draws its own numbers.

    The seed and the generators' states are saved in the checkpoint (``callbacks`` entry) and
    restored with it; a resumed run keeps the checkpoint's seed.

    Args:
        seed: The run's seed; ``None``: the one ``seed_everything`` set (``PL_GLOBAL_SEED``), else 0.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.seed is None:
            self.seed = int(os.environ.get("PL_GLOBAL_SEED", 0))

    def seed_for(self, trainer: pl.Trainer, stream: int) -> int:
        """The seed of the current step's ``stream`` on this rank."""
        return step_seed(self.seed or 0, trainer.global_step, trainer.global_rank, stream)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        seed_all(self.seed_for(trainer, STEP_STREAM))

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "rng": rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.seed = state_dict.get("seed", self.seed)
        if "rng" in state_dict:
            set_rng_states(state_dict["rng"])


def find_step_randomness(trainer: pl.Trainer | None) -> StepRandomness | None:
    """The trainer's :class:`StepRandomness` callback, if it has one."""
    if trainer is None:
        return None
    return next((cb for cb in trainer.callbacks if isinstance(cb, StepRandomness)), None)


@contextlib.contextmanager
def step_random(trainer: pl.Trainer | None, stream: int = AUGMENT_STREAM) -> Iterator[None]:
    """Run the block with the global generators seeded for the current step's ``stream``, then put them back.

    Without a :class:`StepRandomness` callback on ``trainer`` (or without a trainer) the block draws
    from the global generators as they are.
    """
    callback = find_step_randomness(trainer)
    if callback is None or trainer is None:
        yield
        return
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            seed_all(callback.seed_for(trainer, stream))
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


@contextlib.contextmanager
def replayed_rng(states: dict[str, Any]) -> Iterator[None]:
    """Run the block with the global generators set to ``states`` (:func:`rng_states`), then put them back.

    Draws made later from a state captured earlier are the draws that would have been made then:
    work whose result may not be needed (a view of a batch used only once self-learning starts) can
    capture the generators' state, skip the work, and do it later with the same outcome.
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            set_rng_states(states)
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def fit_position(trainer: pl.Trainer | None) -> tuple[int, int]:
    """``(epoch, batches of it already trained)`` of the fit loop, read when an epoch's iterator starts.

    At the start of an epoch the second number is 0; when ``fit`` restarts from a checkpoint saved
    inside an epoch it is the number of that epoch's batches the checkpoint had trained, which the
    training set must skip (Lightning counts them as done and stops the epoch after the rest).
    Without a trainer (a loader used on its own): ``(0, 0)``.
    """
    if trainer is None:
        return 0, 0
    loop = trainer.fit_loop
    done = int(loop.epoch_loop.batch_progress.current.completed)
    total = trainer.num_training_batches
    if not loop.restarting or (isinstance(total, (int, float)) and not math.isinf(total) and done >= total):
        done = 0
    return int(trainer.current_epoch), done


def process_shard(trainer: pl.Trainer | None) -> tuple[int, int]:
    """``(rank, world size)`` of this training process; ``(0, 1)`` without a trainer."""
    if trainer is None:
        return 0, 1
    return int(trainer.global_rank), int(trainer.world_size)


class Shardable(Protocol):
    """A map-style dataset that says which of its indices each of ``world`` processes reads."""

    def __len__(self) -> int: ...

    def shard(self, rank: int, world: int) -> list[int]:
        """Indices rank ``rank`` reads, in order; the ranks' lists partition the epoch's indices."""
        ...


class ResumableSampler(DistributedSampler):
    """Indices ``(epoch, index)`` of one epoch, this rank's share, skipping batches already trained.

    Yields ``(epoch, index)`` pairs, so a dataset that draws each item from ``(seed, epoch, index)``
    needs no ``set_epoch`` (which worker processes would not see). The epoch and the number of
    batches to skip come from ``position`` (:func:`fit_position` of the trainer) when the iterator
    starts. Under DDP rank ``r`` of ``w`` reads ``dataset.shard(r, w)`` when the dataset defines it,
    else every ``w``-th index from ``r``; the ranks' shares partition the epoch (the last
    ``len % w`` indices are left out so that every rank steps the same number of times).

    A :class:`~torch.utils.data.DistributedSampler` subclass only so that Lightning does not replace
    it under DDP.

    Args:
        dataset: The map-style dataset.
        batch_size: Items per batch (the skip is counted in batches).
        position: Returns ``(epoch, batches to skip)``.
        rank: This process's rank.
        world: Number of processes.
    """

    def __init__(self, dataset: Any, batch_size: int, position: Callable[[], tuple[int, int]],
                 rank: int = 0, world: int = 1) -> None:
        if world < 1 or not 0 <= rank < world:
            raise ConfigError(f"rank {rank} of {world} processes is not a valid shard")
        self.dataset = dataset
        self.batch_size = batch_size
        self.position = position
        self.rank, self.num_replicas = rank, world
        self.epoch = 0

    def indices(self) -> list[int]:
        """This rank's indices of an epoch, in order."""
        shard = getattr(self.dataset, "shard", None)
        if callable(shard):
            return list(shard(self.rank, self.num_replicas))
        n = len(self.dataset) - len(self.dataset) % self.num_replicas
        return list(range(self.rank, n, self.num_replicas))

    def __len__(self) -> int:
        return len(self.indices())

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch, skip = self.position()
        self.epoch = epoch
        for index in self.indices()[skip * self.batch_size:]:
            yield epoch, index

    def set_epoch(self, epoch: int) -> None:
        """Ignored: the epoch comes from ``position`` (kept for samplers' common interface)."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO that saves atomically and loads with ``weights_only=True``.

    Lightning's own save writes through an fsspec transaction whose temporary file lies in the
    system's temp folder; moved across file systems that is a copy, which a kill can cut short,
    leaving a truncated ``last.ckpt``. Here the temporary file is written next to the destination,
    flushed to disk and renamed over it: the old file stays whole until the new one is complete.
    Loading refuses any checkpoint that needs pickled code, naming the file.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None,
                        ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}")
        atomic_torch_save(checkpoint, path)

    def load_checkpoint(self, path: str | Path, map_location: Any | None = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        return safe_torch_load(path, map_location="cpu" if callable(map_location) or map_location is None
                               else map_location)
